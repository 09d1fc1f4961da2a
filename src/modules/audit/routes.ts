import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses, IsoDateTime, MAX_OFFSET, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import type { AuditLog } from '../../generated/prisma/client.js'
import { listAudit } from './service.js'
import { aetherAuditPage } from './aether.js'

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

// Aether's audit page: unknown parameters are ignored, not refused (AETHER.md §1)
const AetherAuditQuery = Type.Object({
  days: Type.Integer({ minimum: 1, maximum: 366, default: 7, description: 'the last days × 24 hours' }),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 20 }),
  offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 }),
  event_type: Type.Optional(Type.String({ maxLength: 64, description: 'an Aether event name (login_success, user_created, unauthorized_access, …) or keymeter\'s own event_type' })),
  user_id: Type.Optional(Type.String({ maxLength: 254, description: 'a user id, email or username' }))
})

const AetherAuditItem = Type.Object({
  ...AuditItem.properties,
  event_type: Type.String({ description: 'Aether\'s event name where it has one, else keymeter\'s event_type' }),
  keymeter_event_type: Type.String(),
  ip_address: Nullable(Type.String()),
  user_email: Nullable(Type.String()),
  user_username: Nullable(Type.String()),
  description: Type.String()
})

const AetherAuditPage = Type.Object({ items: Type.Array(AetherAuditItem), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() })

const toItem = (row: AuditLog) => ({
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
})

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/audit-logs',
    schema: { tags: ['audit'], summary: 'Audit log, newest first', description: 'Filter by event_type, action, user_id, success and a date range; paged with limit and offset. Every call of the admin and user APIs has a row, refusals included.', querystring: AuditQuery, response: { 200: AuditPage, ...errorResponses() } },
    action: 'audit_logs.list',
    mode: 'admin',
    handle: async ({ db, query }) => {
      const { items, total } = await listAudit(db, query)
      return {
        items: items.map(toItem),
        total,
        limit: query.limit,
        offset: query.offset
      }
    }
  })

  route(app, {
    method: 'GET',
    url: '/monitoring/audit-logs',
    schema: { tags: ['audit'], summary: 'Audit log as Aether\'s audit page reads it (successful reads left out unless event_type asks)', description: 'The same rows as GET /api/admin/audit-logs in the page shape Aether\'s audit page reads. Successful reads are left out unless event_type asks for them, so the page shows changes and refusals.', operationId: 'auditLogsListAether', querystring: AetherAuditQuery, response: { 200: AetherAuditPage, ...errorResponses() } },
    action: 'audit_logs.list',
    mode: 'admin',
    handle: async ({ db, query }) => {
      const { items, total } = await aetherAuditPage(db, query)
      return {
        items: items.map(({ row, event_type: eventType, ...more }) => ({ ...toItem(row), event_type: eventType, keymeter_event_type: row.eventType, ip_address: row.ip, ...more })),
        total,
        limit: query.limit,
        offset: query.offset
      }
    }
  })
}

export default routes
