// A batch's own writes: its usage rows (one upsert), the completed requests' bodies and
// their candidates. The rollups and charges are written last, by the orchestrator.
import sql from 'sql-template-tag'
import { Columns, type Column } from '../../../db/columns.js'
import type { Sql } from '../../../db/prisma.js'
import { executedSql } from '../../accounting/rules.js'
import type { SentCandidate } from '../../accounting/rollups.js'
import type { BodyRow, CandidateRow } from './machine.js'
import { COST_COLUMNS } from '../../accounting/pricing.js'
import type { RowState } from './row.js'

/**
 * A row this batch read as absent was inserted by a concurrent batch before this one
 * wrote it (its request id was taken in usage_requests meanwhile): the batch is rolled
 * back and run again, and then reads that row.
 */
export class CreatedMeanwhile extends Error {}

// usage's insert trigger writes usage_requests: a second row for a request fails on its key
const TAKEN_REQUEST_ID = 'usage_requests_pkey'

const json = (value: unknown) => value === null || value === undefined ? null : JSON.stringify(value)

/**
 * A usage row's columns as ingestion writes them (usage's own names and types), the one
 * list its upsert's INSERT, unnest and SET are made of. `shared`: the ids and names a
 * batch's rows repeat.
 */
export const USAGE_COLUMNS = new Columns<RowState>([
  { name: 'id', type: 'uuid', value: (r) => r.id, keep: true },
  { name: 'request_id', type: 'text', value: (r) => r.requestId, keep: true },
  { name: 'user_id', type: 'uuid', value: (r) => r.userId, shared: true },
  { name: 'api_key_id', type: 'uuid', value: (r) => r.apiKeyId, shared: true },
  { name: 'provider_id', type: 'uuid', value: (r) => r.providerId, shared: true },
  { name: 'provider_endpoint_id', type: 'uuid', value: (r) => r.providerEndpointId, shared: true },
  { name: 'provider_api_key_id', type: 'uuid', value: (r) => r.providerApiKeyId, shared: true },
  { name: 'provider_name', type: 'text', value: (r) => r.providerName, shared: true },
  { name: 'model', type: 'text', value: (r) => r.model, shared: true },
  { name: 'target_model', type: 'text', value: (r) => r.targetModel },
  { name: 'api_format', type: 'text', value: (r) => r.apiFormat, shared: true },
  { name: 'is_stream', type: 'boolean', value: (r) => r.isStream },
  { name: 'status', type: 'usage_status', value: (r) => r.status },
  { name: 'status_code', type: 'int', value: (r) => r.statusCode },
  { name: 'error_message', type: 'text', value: (r) => r.errorMessage },
  { name: 'input_tokens', type: 'int', value: (r) => r.inputTokens },
  { name: 'output_tokens', type: 'int', value: (r) => r.outputTokens },
  { name: 'cache_creation_input_tokens', type: 'int', value: (r) => r.cacheCreationTokens },
  { name: 'cache_creation_5m_input_tokens', type: 'int', value: (r) => r.cacheCreation5m },
  { name: 'cache_creation_1h_input_tokens', type: 'int', value: (r) => r.cacheCreation1h },
  { name: 'cache_read_input_tokens', type: 'int', value: (r) => r.cacheReadTokens },
  { name: 'total_tokens', type: 'int', value: (r) => r.totalTokens },
  ...COST_COLUMNS.map(([field, column]): Column<RowState> => ({ name: column, type: 'bigint', value: (r) => r.costs[field] })),
  // of the actual costs only the total: the components are the costs × rate_multiplier (pricing.ts storedActualCostsSql)
  { name: 'actual_total_cost', type: 'bigint', value: (r) => r.actual.total },
  // the price version (a price_snapshots row): with the row's tokens, its tier, unit prices and tier facts (no copy on the row)
  { name: 'model_price_id', type: 'uuid', value: (r) => r.modelPriceId, shared: true },
  { name: 'rate_multiplier', type: 'numeric', value: (r) => r.rateMultiplier },
  { name: 'response_time_ms', type: 'int', value: (r) => r.responseTimeMs },
  { name: 'first_byte_time_ms', type: 'int', value: (r) => r.firstByteTimeMs },
  { name: 'metadata', type: 'jsonb', value: (r) => json(r.metadata) },
  { name: 'created_at', type: 'timestamptz', value: (r) => r.createdAt.getTime(), epochMs: true },
  { name: 'finished_at', type: 'timestamptz', value: (r) => r.finishedAt?.getTime() ?? null, epochMs: true }
])

export const UPSERT_USAGE = USAGE_COLUMNS.upsert({
  table: 'usage',
  target: 'u',
  // a row's id and created_at never change: the row this batch read, in its month's partition
  key: ['id', 'created_at'],
  // the batch's clock
  batch: [{ name: 'updated_at', type: 'timestamptz' }]
})

/** Inserts or updates the batch's rows, in request_id order (the order they were locked in). */
export async function upsertRows (db: Sql, rows: RowState[], now: Date): Promise<void> {
  if (rows.length === 0) return
  try {
    await db.query(UPSERT_USAGE, [...USAGE_COLUMNS.values(rows), now])
  } catch (error) {
    const { code, constraint } = error as { code?: string, constraint?: string }
    if (code === '23505' && constraint === TAKEN_REQUEST_ID) throw new CreatedMeanwhile('a request was created by another batch meanwhile')
    throw error
  }
}

/** The bodies of completed requests (a replayed one is kept as first stored). */
export async function insertBodies (db: Sql, bodies: BodyRow[]): Promise<void> {
  if (bodies.length === 0) return
  const query = sql`
    INSERT INTO usage_bodies (usage_id, created_at, request_headers, response_headers, request_body, response_body)
    SELECT usage_id, created_at, request_headers, response_headers, request_body, response_body
      FROM jsonb_to_recordset(${JSON.stringify(bodies)}::jsonb)
        AS b(usage_id uuid, created_at timestamptz, request_headers jsonb, response_headers jsonb, request_body jsonb, response_body jsonb)
    ON CONFLICT (usage_id, created_at) DO NOTHING`
  await db.query(query.text, query.values)
}

/** Inserts the candidates; returns the executed ones actually inserted (a replayed one is not), for the attempts rollup. */
export async function insertCandidates (db: Sql, candidates: CandidateRow[]): Promise<SentCandidate[]> {
  if (candidates.length === 0) return []
  const query = sql`
    WITH inserted AS (
    INSERT INTO request_candidates (request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, skip_reason, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at)
    SELECT request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, skip_reason, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at
      FROM jsonb_to_recordset(${JSON.stringify(candidates)}::jsonb) AS c(request_id text, candidate_index int, retry_index int, user_id uuid,
        api_key_id uuid, provider_id uuid, provider_endpoint_id uuid, provider_api_key_id uuid, status candidate_status, skip_reason text,
        is_cached boolean, status_code int, error_type text, error_message text, latency_ms int, started_at timestamptz, finished_at timestamptz,
        created_at timestamptz)
    ORDER BY request_id, candidate_index, retry_index
    ON CONFLICT (request_id, candidate_index, retry_index, created_at) DO NOTHING
    RETURNING request_id, provider_id, status, latency_ms, created_at
    )
    SELECT request_id, provider_id, status::text AS status, latency_ms, created_at FROM inserted
     WHERE ${executedSql('inserted')}`
  const { rows } = await db.query<SentCandidate>(query.text, query.values)
  return rows
}
