// The home dashboard's reads: finished requests per local day of a time zone (by model
// and provider), all-time totals, and the fallback count, for everyone (admin) or one
// user. Whole hours come from the hourly rollups, each hour's local date computed once;
// only an hour holding a local midnight (+05:30, +05:45 zones) and the range's ragged
// ends are read raw, so zones on whole-hour offsets read no usage row at all.
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../../db/prisma.js'
import { finishedSql, NIL_UUID } from '../rules.js'
import { big, count } from './sql.js'

/** Sums over finished requests: tokens as numbers (exact below 2^53), money in nano-USD. */
export interface Breakdown {
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  cacheCreationTokens: number
  cacheReadTokens: number
  totalTokens: number
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeSumMs: number
  responseTimeCount: number
}

/** One local day's finished requests of one model on one provider (the nil uuid: none). */
export type DayPart = Breakdown & { date: string, model: string, providerId: string }

const toBreakdown = (row: Record<string, unknown>): Breakdown => ({
  requests: count(row.requests),
  errors: count(row.errors),
  inputTokens: count(row.input_tokens),
  outputTokens: count(row.output_tokens),
  cacheCreationTokens: count(row.cache_creation_tokens),
  cacheReadTokens: count(row.cache_read_tokens),
  totalTokens: count(row.total_tokens),
  totalCost: big(row.total_cost),
  actualTotalCost: big(row.actual_total_cost),
  responseTimeSumMs: count(row.response_time_sum_ms),
  responseTimeCount: count(row.response_time_count)
})

const ROLLUP = raw(`r.requests, r.errors, r.input_tokens, r.output_tokens, r.cache_creation_tokens, r.cache_read_tokens, r.total_tokens,
  r.total_cost, r.actual_total_cost, r.response_time_sum_ms, r.response_time_count`)
const RAW = raw(`1, (u.status = 'failed')::int, u.input_tokens::bigint, u.output_tokens::bigint, u.cache_creation_input_tokens::bigint,
  u.cache_read_input_tokens::bigint, u.total_tokens::bigint, u.total_cost, u.actual_total_cost, COALESCE(u.response_time_ms, 0)::bigint,
  (u.response_time_ms IS NOT NULL)::int`)
const SUMS = raw(`COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(errors), 0)::bigint AS errors,
  COALESCE(sum(input_tokens), 0)::bigint AS input_tokens, COALESCE(sum(output_tokens), 0)::bigint AS output_tokens,
  COALESCE(sum(cache_creation_tokens), 0)::bigint AS cache_creation_tokens, COALESCE(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens,
  COALESCE(sum(total_tokens), 0)::bigint AS total_tokens, COALESCE(sum(total_cost), 0)::bigint AS total_cost,
  COALESCE(sum(actual_total_cost), 0)::bigint AS actual_total_cost, COALESCE(sum(response_time_sum_ms), 0)::bigint AS response_time_sum_ms,
  COALESCE(sum(response_time_count), 0)::bigint AS response_time_count`)
const COLUMNS = raw(`requests, errors, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost,
  actual_total_cost, response_time_sum_ms, response_time_count`)

/**
 * Finished requests per local day of `timeZone` from `first` to `last` (YYYY-MM-DD,
 * inclusive), by model and provider (or, `by` day, one row a day: model '' and the nil
 * provider); everyone's, or one user's. Whole hours from usage_hourly_model, or
 * usage_hourly_provider for days alone (primary keys (bucket, …)), or, for a user,
 * usage_hourly (user_id, bucket), each joined to its local date; the raw rows through
 * usage (created_at) or (user_id, created_at). Groups that sum to no request are left out.
 */
export async function localDayUsage (db: Sql, timeZone: string, first: string, last: string, userId?: string, by: 'model' | 'day' = 'model'): Promise<DayPart[]> {
  const perModel = by === 'model'
  // a day's totals alone read usage_hourly_provider (a few rows an hour) rather than usage_hourly_model
  const rollup: Fragment = userId !== undefined ? sql`usage_hourly r ON r.user_id = ${userId}::uuid` : raw(perModel ? 'usage_hourly_model r ON TRUE' : 'usage_hourly_provider r ON TRUE')
  const own: Fragment = userId === undefined ? raw('') : sql`AND u.user_id = ${userId}::uuid`
  const [rModel, rProvider, uModel, uProvider] = perModel
    ? [raw('r.model'), raw('r.provider_id'), raw('u.model'), raw(`COALESCE(u.provider_id, '${NIL_UUID}'::uuid)`)]
    : [raw(`''`), raw(`'${NIL_UUID}'::uuid`), raw(`''`), raw(`'${NIL_UUID}'::uuid`)]
  const { rows } = await db.query(sql`
    WITH b AS MATERIALIZED ( -- the range's local midnights, and the whole UTC hours between them
      SELECT s, e, date_trunc('hour', e, 'UTC') AS he,
             CASE WHEN s = date_trunc('hour', s, 'UTC') THEN s ELSE date_trunc('hour', s, 'UTC') + interval '1 hour' END AS hs
        FROM (SELECT ${first}::date::timestamp AT TIME ZONE ${timeZone}::text AS s,
                     (${last}::date + 1)::timestamp AT TIME ZONE ${timeZone}::text AS e) m
    ), hours AS MATERIALIZED ( -- each whole hour's local date, converted once; one holding a local midnight is not whole
      SELECT h AS bucket, to_char(h AT TIME ZONE ${timeZone}::text, 'YYYY-MM-DD') AS date,
             (h AT TIME ZONE ${timeZone}::text)::date = ((h + interval '1 hour' - interval '1 millisecond') AT TIME ZONE ${timeZone}::text)::date AS whole
        FROM b CROSS JOIN generate_series(b.hs, b.he - interval '1 hour', interval '1 hour') AS h
    ), spans AS MATERIALIZED ( -- read raw: the ragged ends and the hours split by a midnight
      SELECT s AS from_at, hs AS to_at FROM b WHERE s < hs
      UNION ALL SELECT he, e FROM b WHERE he < e
      UNION ALL SELECT bucket, bucket + interval '1 hour' FROM hours WHERE NOT whole
    ), parts AS (
      -- summed apart from the raw rows, so the planner sees the rollup's own (small) estimate and hashes the groups
      SELECT date, model, provider_id, ${SUMS}
        FROM (SELECT h.date, ${rModel} AS model, ${rProvider} AS provider_id, ${ROLLUP}
                FROM b JOIN ${rollup} AND r.bucket >= b.hs AND r.bucket < b.he
                JOIN hours h ON h.bucket = r.bucket AND h.whole) x(date, model, provider_id, ${COLUMNS})
       GROUP BY date, model, provider_id
      UNION ALL
      -- LATERAL: each span probes the index on its own; as a join the planner guessed 500 spans
      -- (a CTE's default) and scanned all of usage against them (7.6 s at 10M rows)
      SELECT to_char(u.created_at AT TIME ZONE ${timeZone}::text, 'YYYY-MM-DD'), ${uModel}, ${uProvider}, ${RAW}
        FROM spans p CROSS JOIN LATERAL (
          SELECT * FROM usage u WHERE u.created_at >= p.from_at AND u.created_at < p.to_at AND ${finishedSql('u')} ${own} OFFSET 0) u
    )
    SELECT date, model, provider_id, ${SUMS}
      FROM parts AS x(date, model, provider_id, ${COLUMNS})
     GROUP BY date, model, provider_id
    HAVING sum(requests) <> 0
     ORDER BY date, model, provider_id`)
  return rows.map((row: Record<string, unknown>) => ({
    date: row.date as string, model: row.model as string, providerId: row.provider_id as string, ...toBreakdown(row)
  }))
}

/**
 * Every finished request ever: everyone's from usage_daily_model read whole (day ×
 * provider × model × format: a few dozen rows a day, every request counted, a deleted
 * provider's under its old id), one user's from usage_daily_key (user_id, day).
 */
export async function allTimeUsage (db: Sql, userId?: string): Promise<Breakdown> {
  const from = userId === undefined ? sql`usage_daily_model` : sql`usage_daily_key WHERE user_id = ${userId}::uuid`
  const { rows } = await db.query(sql`SELECT ${SUMS} FROM ${from}`)
  return toBreakdown(rows[0] as Record<string, unknown>)
}

/**
 * Requests with more than one executed candidate since the UTC hour holding local
 * midnight of `first` in `timeZone` (whole hours: in a zone off the hour, the window
 * starts up to 45 minutes early). provider_attempts_hourly primary key (bucket, …),
 * its nil-provider rows.
 */
export async function fallbackRequests (db: Sql, timeZone: string, first: string): Promise<number> {
  const { rows } = await db.query(sql`
    SELECT COALESCE(sum(a.fallbacks), 0)::bigint AS fallbacks FROM provider_attempts_hourly a
     WHERE a.bucket >= date_trunc('hour', ${first}::date::timestamp AT TIME ZONE ${timeZone}::text, 'UTC') AND a.provider_id = ${NIL_UUID}::uuid`)
  return count((rows[0] as Record<string, unknown>).fallbacks)
}
