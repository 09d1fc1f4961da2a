import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { activeRequests, sweepStale } from './active.js'

const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'

export const ActiveQuery = Type.Object({
  ids: Type.Optional(Type.String({ pattern: `^${UUID}(,${UUID}){0,99}$`, description: 'comma-separated usage ids (at most 100)' }))
}, { additionalProperties: false })

export const ActiveRequest = Type.Object({
  id: Uuid,
  request_id: Type.String(),
  status: Type.String(),
  model: Type.String(),
  provider: Nullable(Type.String()),
  api_format: Nullable(Type.String()),
  is_stream: Type.Boolean(),
  status_code: Nullable(Type.Integer()),
  error_message: Nullable(Type.String()),
  input_tokens: Type.Integer(),
  output_tokens: Type.Integer(),
  cache_creation_input_tokens: Type.Integer(),
  cache_read_input_tokens: Type.Integer(),
  cost: Type.Number(),
  actual_cost: Type.Number(),
  response_time_ms: Nullable(Type.Integer()),
  first_byte_time_ms: Nullable(Type.Integer()),
  created_at: Timestamp
})

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/usage/active',
    schema: { tags: ['usage'], summary: 'Requests in flight, or the current state of the given ones', description: 'Without ids: every request still pending or streaming. With ids: the current state of each, finished or not, so a page can poll the ones it shows.', querystring: ActiveQuery, response: { 200: Type.Object({ requests: Type.Array(ActiveRequest) }), ...errorResponses() } },
    action: 'usage.active',
    mode: 'admin',
    handle: async ({ db, query }) => {
      await sweepStale(app.pg, app.config.PENDING_TIMEOUT_MINUTES)
      return activeRequests(db, query.ids?.split(','))
    }
  })
}

export default routes
