// A request's fallback trace as Aether's request drawer draws it (AETHER.md §5.2):
// GET /api/admin/monitoring/trace/:request_id, keyed by the usage's request_id string.
// Its candidates are request_candidates with the provider's and provider key's names;
// a request recorded without candidates is shown as the one attempt its usage row tells.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import sql from 'sql-template-tag'
import Type from 'typebox'
import type { Sql } from '../../db/prisma.js'
import { usageByRequestSql } from '../../db/partitions.js'
import { Errors } from '../../http/errors.js'
import { route } from '../../http/pipeline.js'
import { errorResponses, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { UNSENT_CANDIDATE_STATUSES } from '../accounting/rules.js'

// the gateway's request ids are 1-128 characters (usage/schemas.ts); control characters are never part of one
const TraceParams = Type.Object({
  request_id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: "the usage's request_id" })
}, { additionalProperties: false })

const CandidateStatus = Type.Union([
  Type.Literal('available'), Type.Literal('pending'), Type.Literal('streaming'), Type.Literal('success'), Type.Literal('failed'), Type.Literal('skipped')
])
type Status = 'available' | 'pending' | 'streaming' | 'success' | 'failed' | 'skipped'

const TraceCandidate = Type.Object({
  id: Type.String({ description: 'the candidate row\'s id; request_id:0:0 for one made from the usage row' }),
  request_id: Type.String(),
  candidate_index: Type.Integer(),
  retry_index: Type.Integer(),
  provider_id: Nullable(Uuid),
  provider_name: Nullable(Type.String()),
  endpoint_id: Nullable(Uuid),
  endpoint_name: Nullable(Type.String({ description: 'the endpoint\'s API format' })),
  key_id: Nullable(Uuid),
  key_name: Nullable(Type.String({ description: 'the provider key\'s name' })),
  key_preview: Nullable(Type.String({ description: 'the provider key, masked' })),
  status: CandidateStatus,
  skip_reason: Nullable(Type.String()),
  is_cached: Type.Boolean(),
  status_code: Nullable(Type.Integer()),
  error_type: Nullable(Type.String()),
  error_message: Nullable(Type.String()),
  latency_ms: Nullable(Type.Integer()),
  created_at: Timestamp,
  started_at: Nullable(Timestamp),
  finished_at: Nullable(Timestamp)
})

const Trace = Type.Object({
  request_id: Type.String(),
  total_candidates: Type.Integer(),
  final_status: Type.Union([Type.Literal('success'), Type.Literal('streaming'), Type.Literal('pending'), Type.Literal('failed')], { description: 'success if any candidate succeeded, else streaming, pending, then failed' }),
  total_latency_ms: Type.Integer({ description: 'the sum of the sent candidates\' latencies' }),
  candidates: Type.Array(TraceCandidate)
})

interface TraceRow {
  id: string | null
  candidate_index: number
  retry_index: number
  provider_id: string | null
  provider_name: string | null
  endpoint_id: string | null
  endpoint_name: string | null
  key_id: string | null
  key_name: string | null
  key_preview: string | null
  status: Status
  skip_reason: string | null
  is_cached: boolean
  status_code: number | null
  error_type: string | null
  error_message: string | null
  latency_ms: number | null
  created_at: Date
  started_at: Date | null
  finished_at: Date | null
}

/**
 * The request's candidates, in order; none recorded, the one attempt its usage row
 * tells (its provider, key, outcome and response time); no row at all when the request
 * id is unknown. request_candidates (request_id, created_at, candidate_index, retry_index) in each monthly partition, usage_requests' key then usage's.
 */
async function traceRows (db: Sql, requestId: string): Promise<TraceRow[]> {
  const { rows } = await db.query<TraceRow>(sql`
    WITH recorded AS (
      SELECT c.id::text AS id, c.candidate_index, c.retry_index, c.provider_id, p.name AS provider_name, c.provider_endpoint_id AS endpoint_id,
             e.api_format AS endpoint_name, c.provider_api_key_id AS key_id, pk.name AS key_name, pk.secret_display AS key_preview,
             c.status::text AS status, c.skip_reason, c.is_cached, c.status_code, c.error_type, c.error_message, c.latency_ms,
             c.created_at, c.started_at, c.finished_at
        FROM request_candidates c
        LEFT JOIN providers p ON p.id = c.provider_id
        LEFT JOIN provider_endpoints e ON e.id = c.provider_endpoint_id
        LEFT JOIN provider_api_keys pk ON pk.id = c.provider_api_key_id
       WHERE c.request_id = ${requestId}
    )
    SELECT * FROM recorded
    UNION ALL
    -- the usage row's own outcome, in the candidates' terms: a cancelled request did not succeed
    SELECT NULL, 0, 0, u.provider_id, COALESCE(p.name, u.provider_name), u.provider_endpoint_id, e.api_format, u.provider_api_key_id, pk.name, pk.secret_display,
           CASE u.status WHEN 'completed' THEN 'success' WHEN 'pending' THEN 'pending' WHEN 'streaming' THEN 'streaming' ELSE 'failed' END,
           NULL, false, u.status_code, CASE WHEN u.status = 'cancelled' THEN 'cancelled' END, u.error_message, u.response_time_ms,
           u.created_at, u.created_at, u.finished_at
      FROM ${usageByRequestSql()}
      LEFT JOIN providers p ON p.id = u.provider_id
      LEFT JOIN provider_endpoints e ON e.id = u.provider_endpoint_id
      LEFT JOIN provider_api_keys pk ON pk.id = u.provider_api_key_id
     WHERE q.request_id = ${requestId} AND NOT EXISTS (SELECT 1 FROM recorded)
     ORDER BY candidate_index, retry_index`)
  return rows
}

const FINAL_ORDER = ['success', 'streaming', 'pending'] as const
const sent = (status: Status) => !(UNSENT_CANDIDATE_STATUSES as readonly string[]).includes(status)

export async function requestTrace (db: Sql, requestId: string) {
  const rows = await traceRows(db, requestId)
  if (rows.length === 0) throw new Errors.NotFound('request not found')
  return {
    request_id: requestId,
    total_candidates: rows.length,
    final_status: FINAL_ORDER.find((status) => rows.some((row) => row.status === status)) ?? 'failed' as const,
    total_latency_ms: rows.reduce((sum, row) => sum + (sent(row.status) ? row.latency_ms ?? 0 : 0), 0),
    candidates: rows.map((row) => ({
      ...row,
      id: row.id ?? `${requestId}:${row.candidate_index}:${row.retry_index}`,
      request_id: requestId,
      created_at: row.created_at.toISOString(),
      started_at: row.started_at?.toISOString() ?? null,
      finished_at: row.finished_at?.toISOString() ?? null
    }))
  }
}

export const traceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/monitoring/trace/:request_id',
    schema: { tags: ['usage'], summary: "A request's fallback trace: its candidates, or the one attempt its usage row tells", description: 'Keyed by the request_id the gateway reported, not the usage record id. Each candidate tried, in order, with its provider, key, status and timing, as Aether\'s request drawer draws it. 404 when no usage has this request_id.', params: TraceParams, response: { 200: Trace, ...errorResponses(404) } },
    action: 'usage.trace',
    mode: 'admin',
    handle: async ({ params }) => requestTrace(app.statsPg, params.request_id)
  })
}
