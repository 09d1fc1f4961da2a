// The user's usage page as Aether's dashboard reads it (AETHER.md §6): one object with
// the caller's totals, summaries, heatmap and newest records, and the state of the
// caller's in-flight requests. Aether's paths: unknown query parameters are ignored,
// not refused (§1). Static paths, so they win over /users/me/usage/:usage_id.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses, IsoDateTime, Nullable, Uuid } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { dateRange } from '../../lib/time.js'
import { activeRequests, sweepStale } from '../usage/active.js'
import { ActiveQuery, ActiveRequest } from '../usage/routes.js'
import { viewerSchema, visibleTo } from '../accounting/visibility.js'
import { Count, Heatmap, recordFields, Usd } from './schemas.js'
import { OWN_RECORDS, ownUsage } from './summary.js'

const tags = ['usage']
/** default and widest range, as the stats routes */
const DEFAULT_DAYS = 30
const MAX_DAYS = 366

const OwnUsageQuery = Type.Object({
  start_date: Type.Optional(IsoDateTime),
  end_date: Type.Optional(IsoDateTime)
}, { description: 'default: the last 30 days; at most 366; other parameters are ignored' })

/** the admin records' fields the page reads (AETHER.md §6.1) */
const OwnUsageRecord = Type.Pick(Type.Object(recordFields), ['id', 'request_id', 'api_key', 'provider', 'model', 'target_model', 'api_format', 'is_stream', 'status',
  'status_code', 'error_message', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'total_tokens', 'cost', 'actual_cost',
  'response_time_ms', 'first_byte_time_ms', 'has_fallback', 'created_at'])

// the operator's cost (actual_*) for admins only: accounting/visibility.ts
const OwnUsage = viewerSchema(Type.Object({
  total_requests: Count,
  total_tokens: Count,
  total_input_tokens: Count,
  total_output_tokens: Count,
  total_cost: Usd,
  total_actual_cost: Type.Number({ description: 'USD: what the providers cost the operator' }),
  avg_response_time: Type.Number({ description: 'seconds' }),
  error_count: Count,
  quota_usd: Nullable(Type.Number({ description: 'USD; null: no quota' })),
  used_usd: Usd,
  activity_heatmap: Heatmap,
  summary_by_model: Type.Array(Type.Object({
    model: Type.String(),
    requests: Count,
    input_tokens: Count,
    output_tokens: Count,
    total_tokens: Count,
    total_cost_usd: Usd,
    actual_total_cost_usd: Type.Number({ description: 'USD: what the providers cost the operator' })
  }), { description: 'every finished request in the range, by requests descending' }),
  summary_by_provider: Type.Array(Type.Object({
    provider_id: Uuid,
    provider: Type.String(),
    requests: Count,
    total_tokens: Count,
    total_cost_usd: Usd,
    success_rate: Type.Number({ description: 'percent of the requests not failed, 2 decimals' }),
    avg_response_time_ms: Type.Number()
  }), { description: 'the finished requests that reached a provider that still exists, by requests descending' }),
  records: Type.Array(OwnUsageRecord, { description: `the newest ${OWN_RECORDS} records in the range, every status` })
}))

const OwnActive = viewerSchema(Type.Object({ requests: Type.Array(ActiveRequest) }))

const OwnActiveQuery = Type.Object(ActiveQuery.properties, { description: 'other parameters are ignored' })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/users/me/usage',
    schema: { tags, summary: 'Your usage in the range: totals, by model and provider, your heatmap, your newest records', description: 'Everything the user\'s usage page shows in one call. Default range: the last 30 days.', querystring: OwnUsageQuery, response: { 200: OwnUsage, ...errorResponses() } },
    action: 'own_usage.summary',
    mode: 'user',
    handle: async ({ query, user, db }) => visibleTo(user, OwnUsage, await ownUsage(app.statsPg, db, user.id, dateRange(query, DEFAULT_DAYS, MAX_DAYS), app.config.APP_TIMEZONE))
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/active',
    schema: { tags, summary: 'Your requests in flight, or the current state of the given ones of yours (others\' ids are dropped)', description: 'Without ids: your requests still running. With ids: their current state; ids of other users\' requests are dropped, never reported.', querystring: OwnActiveQuery, response: { 200: OwnActive, ...errorResponses() } },
    action: 'own_usage.active',
    mode: 'user',
    handle: async ({ db, query, user }) => {
      // as the admin's poll: a request the gateway never finished stops showing as in flight
      await sweepStale(app.pg, app.config.PENDING_TIMEOUT_MINUTES)
      return visibleTo(user, OwnActive, await activeRequests(db, query.ids?.split(','), user.id))
    }
  })
}

export default routes
