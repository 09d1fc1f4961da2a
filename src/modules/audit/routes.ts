import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses, IsoDateTime, MAX_OFFSET, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { listAudit } from './service.js'

const AuditQuery = Type.Object({
  event_type: Type.Optional(Type.String({ maxLength: 64 })),
  action: Type.Optional(Type.String({ maxLength: 128 })),
  user_id: Type.Optional(Uuid),
  success: Type.Optional(Type.Boolean()),
  start_date: Type.Optional(IsoDateTime),
  end_date: Type.Optional(IsoDateTime),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 })
}, { additionalProperties: false })

const AuditItem = Type.Object({
  id: Uuid,
  event_type: Type.String(),
  action: Type.String(),
  principal_type: Type.String(),
  user_id: Nullable(Uuid),
  management_token_id: Nullable(Uuid),
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  request_id: Nullable(Type.String()),
  method: Nullable(Type.String()),
  path: Nullable(Type.String()),
  status_code: Nullable(Type.Integer()),
  success: Type.Boolean(),
  duration_ms: Nullable(Type.Integer()),
  metadata: Nullable(Type.Object({}, { additionalProperties: true })),
  error_message: Nullable(Type.String()),
  created_at: Timestamp
})

const AuditPage = Type.Object({ items: Type.Array(AuditItem), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/',
    schema: { tags: ['audit'], summary: 'Audit log, newest first', querystring: AuditQuery, response: { 200: AuditPage, ...errorResponses() } },
    action: 'audit_logs.list',
    mode: 'admin',
    handle: async ({ db, query }) => {
      const { items, total } = await listAudit(db, query)
      return {
        items: items.map((row) => ({
          id: row.id,
          event_type: row.eventType,
          action: row.action,
          principal_type: row.principalType,
          user_id: row.userId,
          management_token_id: row.managementTokenId,
          ip: row.ip,
          user_agent: row.userAgent,
          request_id: row.requestId,
          method: row.method,
          path: row.path,
          status_code: row.statusCode,
          success: row.success,
          duration_ms: row.durationMs,
          metadata: row.metadata as Record<string, unknown> | null,
          error_message: row.errorMessage,
          created_at: row.createdAt.toISOString()
        })),
        total,
        limit: query.limit,
        offset: query.offset
      }
    }
  })
}

export default routes
