// The fragments every rollup read is built from: spans as half-open ranges, and the
// measures a raw usage row adds to a rollup row, so a read that adds rollup rows to raw
// edge rows gets what a GROUP BY over the raw rows gives.
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import type { Span } from '../../../lib/spans.js'

/** `column` in [from, to) */
export const within = (column: Fragment, span: Span): Fragment => sql`${column} >= ${span.from} AND ${column} < ${span.to}`

/** `column` in either of two spans (a plan's two edges, or the two hour runs beside its days) */
export const withinEither = (column: Fragment, [a, b]: readonly [Span, Span]): Fragment =>
  sql`(${within(column, a)} OR ${within(column, b)})`

/** a raw usage row (alias u) as the measures it adds to a rollup row */
export const RAW_MEASURES = raw(`1 AS requests, (u.status = 'failed')::int AS errors, u.total_tokens::bigint AS total_tokens,
  u.total_cost, u.actual_total_cost, COALESCE(u.response_time_ms, 0)::bigint AS response_time_sum_ms,
  (u.response_time_ms IS NOT NULL)::int AS response_time_count, u.cache_creation_input_tokens::bigint AS cache_creation_tokens,
  u.cache_read_input_tokens::bigint AS cache_read_tokens, u.cache_creation_cost, u.cache_read_cost`)

/** the same measures of a rollup row (alias r) */
export const ROLLUP_MEASURES = raw(`r.requests, r.errors, r.total_tokens, r.total_cost, r.actual_total_cost, r.response_time_sum_ms,
  r.response_time_count, r.cache_creation_tokens, r.cache_read_tokens, r.cache_creation_cost, r.cache_read_cost`)

/** the measures summed, zero when nothing matched */
export const SUMS = raw(`COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(errors), 0)::bigint AS errors,
  COALESCE(sum(total_tokens), 0)::bigint AS total_tokens, COALESCE(sum(total_cost), 0)::bigint AS total_cost,
  COALESCE(sum(actual_total_cost), 0)::bigint AS actual_total_cost, COALESCE(sum(response_time_sum_ms), 0)::bigint AS response_time_sum_ms,
  COALESCE(sum(response_time_count), 0)::bigint AS response_time_count, COALESCE(sum(cache_creation_tokens), 0)::bigint AS cache_creation_tokens,
  COALESCE(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens, COALESCE(sum(cache_creation_cost), 0)::bigint AS cache_creation_cost,
  COALESCE(sum(cache_read_cost), 0)::bigint AS cache_read_cost`)

// node-postgres returns bigint and numeric columns as strings
/** a count or token sum as a number (exact below 2^53) */
export const count = (value: unknown): number => Number(value ?? 0)
/** a bigint column (money in nano-USD, a token sum) as a bigint, zero when nothing matched */
export const big = (value: unknown): bigint => BigInt(value as string | number | bigint | null ?? 0)
