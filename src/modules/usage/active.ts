// In-flight requests: what the dashboard polls, and the sweep that turns requests
// the gateway never finished into failures (504) so they stop counting as in flight.
import type pg from 'pg'
import sql, { empty } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { IN_FLIGHT_STATUSES, inFlightSql } from '../accounting/rules.js'
import type { CompleteEventBody } from './schemas.js'
import { ingestEvents, type IngestOptions } from './ingest.js'

/** Marks stale pending/streaming requests failed (504); returns how many. */
export async function sweepStale (pool: pg.Pool, timeoutMinutes: number, now = new Date(), onCommitted?: IngestOptions['onCommitted']): Promise<number> {
  const cutoff = new Date(now.getTime() - timeoutMinutes * 60_000)
  let swept = 0
  for (;;) {
    // served by usage_in_flight_key_idx (in-flight rows only)
    const { rows: stale } = await pool.query<{ request_id: string }>(
      sql`SELECT request_id FROM usage WHERE ${inFlightSql()} AND created_at < ${cutoff} ORDER BY request_id LIMIT 500`)
    if (stale.length === 0) return swept
    const events: CompleteEventBody[] = stale.map((row) => ({
      type: 'complete',
      request_id: row.request_id,
      status: 'failed',
      status_code: 504,
      error_message: `no completion reported within ${timeoutMinutes} minutes`,
      input_tokens: 0,
      output_tokens: 0
    }))
    const results = await ingestEvents(pool, events, { now, synthetic: true, ...(onCommitted !== undefined && { onCommitted }) })
    swept += results.filter((r) => r.outcome === 'recorded').length
    if (stale.length < 500) return swept
  }
}

/** The newest in-flight rows' ids (one user's, when given): the statuses as SQL constants (Prisma binds them as casts the planner cannot match to usage_in_flight_key_idx's predicate). */
async function inFlightIds (db: Db, userId: string | null): Promise<string[]> {
  // served by usage_in_flight_key_idx (in-flight rows only); a user's are filtered from those few rows
  const query = sql`SELECT id FROM usage WHERE ${inFlightSql()} ${userId === null ? empty : sql`AND user_id = ${userId}::uuid`} ORDER BY created_at DESC LIMIT 500`
  return (await db.$queryRawUnsafe<Array<{ id: string }>>(query.text, ...query.values)).map((row) => row.id)
}

/** The in-flight requests, or the given ones' current state; `userId` keeps that user's only (another's ids are dropped). */
export async function activeRequests (db: Db, ids: string[] | undefined, userId: string | null = null) {
  const rows = await db.usage.findMany({
    where: {
      ...(ids === undefined ? { id: { in: await inFlightIds(db, userId) }, status: { in: [...IN_FLIGHT_STATUSES] } } : { id: { in: ids } }),
      ...(userId !== null && { userId })
    },
    orderBy: { createdAt: 'desc' },
    take: 500
  })
  return {
    requests: rows.map((row) => ({
      id: row.id,
      request_id: row.requestId,
      status: row.status,
      model: row.model,
      provider: row.providerName,
      api_format: row.apiFormat,
      is_stream: row.isStream,
      status_code: row.statusCode,
      error_message: row.errorMessage,
      input_tokens: row.inputTokens,
      output_tokens: row.outputTokens,
      cache_creation_input_tokens: row.cacheCreationTokens,
      cache_read_input_tokens: row.cacheReadTokens,
      cost: nanoToUsd(row.totalCost),
      actual_cost: nanoToUsd(row.actualTotalCost),
      response_time_ms: row.responseTimeMs,
      first_byte_time_ms: row.firstByteTimeMs,
      created_at: row.createdAt.toISOString()
    }))
  }
}
