// Analytics answers: the sums turned into the API's shapes (USD, averages rounded once,
// here), zero-filled over the range's buckets.
import type { Db, Sql } from '../../db/prisma.js'
import { Errors } from '../../lib/errors.js'
import { nanoToUsd } from '../../lib/money.js'
import { EARLIEST_INSTANT } from '../../lib/time.js'
import { bucketsOf, type Granularity } from './buckets.js'
import { quarterDayPlan } from '../../lib/spans.js'
import { leaderboard, seriesSums, type Board, type BoardFilter, type Metric, type SeriesFilter, type SeriesSums } from './queries.js'
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

export type Comparison = 'previous_period' | 'year_ago'

/**
 * The period a range is compared with: the same length just before it, or the same
 * local wall-clock times a year earlier (29 February → 1 March).
 */
export function comparisonRange (range: AnalyticsRange, compareTo: Comparison): AnalyticsRange {
  const { start, end, zone } = range
  if (compareTo === 'previous_period') return { start: new Date(2 * start.getTime() - end.getTime()), end: start, zone }
  const yearBefore = (at: Date) => {
    const wall = new Date(zone.wallOf(at.getTime()))
    wall.setUTCFullYear(wall.getUTCFullYear() - 1)
    return new Date(zone.instantOf(wall.getTime()))
  }
  return { start: yearBefore(start), end: yearBefore(end), zone }
}

async function totalsOf (db: Sql, range: AnalyticsRange, filter: SeriesFilter) {
  const bucket = { start: range.start.getTime(), end: range.end.getTime(), date: '', local: '' }
  const s = (await seriesSums(db, [bucket], filter)).get(0) ?? ZERO
  return {
    total_requests: s.requests,
    error_count: s.errors,
    total_tokens: s.totalTokens,
    input_tokens: s.inputTokens,
    output_tokens: s.outputTokens,
    total_cost: nanoToUsd(s.totalCost),
    total_actual_cost: nanoToUsd(s.actualTotalCost),
    avg_response_time_ms: avgMsOrNull(s.responseTimeSumMs, s.responseTimeCount)
  }
}

/** percent change from `base` to `now`, 2 decimals; null where the base is zero or absent */
export const changePercent = (now: number | null, base: number | null): number | null =>
  base === null || base === 0 || now === null ? null : Math.round((now - base) / base * 10_000) / 100

/** A range's totals beside the compared period's, and the change of each. */
export async function comparison (db: Sql, range: AnalyticsRange, compareTo: Comparison, filter: SeriesFilter) {
  const before = comparisonRange(range, compareTo)
  if (before.start.getTime() < Date.parse(EARLIEST_INSTANT)) {
    throw Object.assign(new Errors.InvalidInput(`querystring.compare_to: the compared period would start before ${EARLIEST_INSTANT}`), { field: 'querystring.compare_to' })
  }
  const [current, compared] = await Promise.all([totalsOf(db, range, filter), totalsOf(db, before, filter)])
  const change = Object.fromEntries(Object.entries(current).map(([name, value]) => [name, changePercent(value, compared[name as keyof typeof compared])])) as Record<keyof typeof current, number | null>
  return {
    current,
    comparison: compared,
    change_percent: change,
    current_start: range.start.toISOString(),
    current_end: range.end.toISOString(),
    comparison_start: before.start.toISOString(),
    comparison_end: before.end.toISOString(),
    comparison_type: compareTo === 'previous_period' ? 'period' as const : 'year' as const,
    compare_to: compareTo
  }
}

/** A board's page: Aether's item fields, keymeter's beside them. */
export async function leaderboardOf (db: Sql, board: Board, range: AnalyticsRange, query: { metric: Metric, order: 'asc' | 'desc', limit: number, offset: number }, filter: BoardFilter) {
  const { metric, order, limit, offset } = query
  const { total, rows } = await leaderboard(db, board, quarterDayPlan(range), metric, order, filter, limit, offset)
  return {
    items: rows.map((row) => ({
      rank: row.rank,
      id: row.id,
      name: row.name,
      value: metric === 'requests' ? row.requests : metric === 'tokens' ? row.totalTokens : nanoToUsd(row.totalCost),
      requests: row.requests,
      tokens: row.totalTokens,
      cost: nanoToUsd(row.totalCost),
      actual_cost: nanoToUsd(row.actualTotalCost),
      share_percent: row.share
    })),
    total,
    metric,
    order,
    limit,
    offset,
    start_date: range.start.toISOString(),
    end_date: range.end.toISOString()
  }
}
