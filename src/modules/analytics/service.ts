// Analytics answers: the sums turned into the API's shapes (USD, averages rounded once,
// here), zero-filled over the range's buckets.
import type { Db, Sql } from '../../db/prisma.js'
import { Errors } from '../../lib/errors.js'
import { nanoToUsd } from '../../lib/money.js'
import { bucketsOf, type Granularity } from './buckets.js'
import { seriesSums, type SeriesFilter, type SeriesSums } from './queries.js'
import type { AnalyticsRange } from './range.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** average milliseconds, 1 decimal; null without a sample */
export const avgMsOrNull = (sum: number, count: number): number | null => count === 0 ? null : Math.round(sum / count * 10) / 10

/** A provider filter by id or by exact name, as its id; a 400 naming the field when no provider has it. */
export async function providerIdOf (db: Db, given: string | undefined): Promise<string | null> {
  if (given === undefined) return null
  const found = await db.provider.findFirst({ where: UUID.test(given) ? { OR: [{ id: given }, { name: given }] } : { name: given }, select: { id: true } })
  if (found === null) throw Object.assign(new Errors.InvalidInput(`querystring.provider_id: no provider has the id or name "${given}"`), { field: 'querystring.provider_id' })
  return found.id
}

const ZERO: SeriesSums = {
  requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheCreation5mTokens: 0, cacheCreation1hTokens: 0, cacheReadTokens: 0,
  totalTokens: 0, totalCost: 0n, actualTotalCost: 0n, responseTimeSumMs: 0, responseTimeCount: 0, firstByteSumMs: 0, firstByteCount: 0
}

/** The series: one point per bucket, zero-filled. */
export async function timeSeries (db: Sql, range: AnalyticsRange, granularity: Granularity, filter: SeriesFilter) {
  const buckets = bucketsOf(range, granularity)
  const sums = await seriesSums(db, buckets, filter)
  return buckets.map((bucket, i) => {
    const s = sums.get(i) ?? ZERO
    return {
      date: bucket.date,
      total_requests: s.requests,
      input_tokens: s.inputTokens,
      output_tokens: s.outputTokens,
      cache_creation_tokens: s.cacheCreationTokens,
      cache_read_tokens: s.cacheReadTokens,
      total_cost: nanoToUsd(s.totalCost),
      avg_response_time_ms: avgMsOrNull(s.responseTimeSumMs, s.responseTimeCount),
      start: new Date(bucket.start).toISOString(),
      end: new Date(bucket.end).toISOString(),
      local_start: bucket.local,
      error_count: s.errors,
      cache_creation_5m_tokens: s.cacheCreation5mTokens,
      cache_creation_1h_tokens: s.cacheCreation1hTokens,
      total_tokens: s.totalTokens,
      total_actual_cost: nanoToUsd(s.actualTotalCost),
      avg_first_byte_time_ms: avgMsOrNull(s.firstByteSumMs, s.firstByteCount)
    }
  })
}
