// One key's usage: what its holder reads (per model over a period, all-time totals) and
// the admin's per-day statistics of a key. Every query is scoped by the key id and
// served by the (api_key_id, …) indexes of usage, usage_hourly and usage_daily_key.
import sql from 'sql-template-tag'
import type { Db, Sql } from '../../../db/prisma.js'
import { dayPlan, hourPlan } from '../../../lib/spans.js'
import type { Range } from '../../../lib/time.js'
import { finishedSql } from '../rules.js'
import { count, big, within, withinEither } from './sql.js'

export interface ModelUsage {
  model: string
  requests: number
  input_tokens: number
  output_tokens: number
  cache_creation_tokens: number
  cache_read_tokens: number
  total_tokens: number
  /** nano-USD */
  cost: bigint
}

const TOKENS = ['requests', 'input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_read_tokens', 'total_tokens'] as const

function toUsage (row: Record<string, unknown>): Omit<ModelUsage, 'model'> {
  const out = Object.fromEntries(TOKENS.map((name) => [name, count(row[name])])) as Omit<ModelUsage, 'model' | 'cost'>
  return { ...out, cost: big(row.cost) }
}

const utcDate = (d: Date) => d.toISOString().slice(0, 10)

/** One key's finished requests per model for [start, end), exact, mostly from rollups. */
export async function keyModelUsage (db: Sql, keyId: string, start: Date, end: Date): Promise<ModelUsage[]> {
  // whole UTC days from usage_daily_key, the whole hours beside them from usage_hourly, raw edges
  const p = dayPlan({ start, end })
  const { rows } = await db.query(sql`
    SELECT model, sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
      FROM (
        SELECT model, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost
          FROM usage_daily_key
         WHERE api_key_id = ${keyId} AND day >= ${utcDate(p.days.from)}::date AND day < ${utcDate(p.days.to)}::date
        UNION ALL
        SELECT model, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost
          FROM usage_hourly
         WHERE api_key_id = ${keyId} AND ${withinEither(sql`bucket`, p.hours)}
        UNION ALL
        SELECT model, 1, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, total_tokens, total_cost
          FROM usage
         WHERE api_key_id = ${keyId} AND ${finishedSql()} AND ${withinEither(sql`created_at`, p.edges)}
      ) parts
     GROUP BY model`)
  return rows.map((row: Record<string, unknown>) => ({ model: row.model as string, ...toUsage(row) }))
    .filter((row) => row.requests !== 0) // a rollup row a request has moved away from sums to zero
}

/** One key's all-time totals of finished requests, from usage_daily_key (api_key_id, day). */
export async function keyTotals (db: Sql, keyId: string): Promise<Omit<ModelUsage, 'model'>> {
  const { rows } = await db.query(sql`
    SELECT sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
      FROM usage_daily_key WHERE api_key_id = ${keyId}`)
  return toUsage(rows[0] as Record<string, unknown>)
}

/** A local day's finished requests of one key; tokens and money in bigints, as they are summed. */
export interface KeyDay { date: string, requests: number, totalTokens: bigint, totalCost: bigint, responseTimeSumMs: bigint, responseTimeCount: number }

/**
 * Finished requests of one key per local day (YYYY-MM-DD) of `timeZone`, for [start, end),
 * days without requests left out. The whole UTC hours come from usage_hourly
 * (api_key_id, bucket), which keeps every finished request of the key (a provider's
 * deletion leaves it; a key's deletion moves its rows to the nil key), each hour on the
 * local day of its start: whole hours lie in one local day unless a local midnight falls
 * inside one (+05:30, +05:45), and such an hour is read raw, like the range's ragged
 * edges, from usage (api_key_id, created_at).
 */
export async function keyDailyUsage (db: Db, keyId: string, range: Range, timeZone: string): Promise<KeyDay[]> {
  const { hours, edges } = hourPlan(range)
  const finished = finishedSql('u')
  const query = sql`
    WITH split AS MATERIALIZED ( -- the whole hours holding a local midnight off the hour
      SELECT date_trunc('hour', m.at, 'UTC') AS hour
        FROM (SELECT d AT TIME ZONE ${timeZone}::text AS at
                FROM generate_series((${hours.from}::timestamptz AT TIME ZONE ${timeZone}::text)::date::timestamp,
                                     (${hours.to}::timestamptz AT TIME ZONE ${timeZone}::text)::date::timestamp, interval '1 day') AS d) m
       WHERE m.at > ${hours.from}::timestamptz AND m.at < ${hours.to}::timestamptz AND m.at <> date_trunc('hour', m.at, 'UTC')
    ), parts AS (
      -- a key's rows summed per hour first, so each hour is converted to its day once
      SELECT r.bucket AS at, sum(r.requests)::bigint AS requests, sum(r.total_tokens)::bigint AS tokens, sum(r.total_cost)::bigint AS cost,
             sum(r.response_time_sum_ms)::bigint AS rt_sum, sum(r.response_time_count)::bigint AS rt_count
        FROM usage_hourly r
       WHERE r.api_key_id = ${keyId}::uuid AND ${within(sql`r.bucket`, hours)} AND r.bucket NOT IN (SELECT hour FROM split)
       GROUP BY r.bucket
      UNION ALL
      SELECT u.created_at, 1, u.total_tokens, u.total_cost, COALESCE(u.response_time_ms, 0), (u.response_time_ms IS NOT NULL)::int
        FROM usage u
       WHERE u.api_key_id = ${keyId}::uuid AND ${finished} AND ${withinEither(sql`u.created_at`, edges)}
      UNION ALL
      SELECT u.created_at, 1, u.total_tokens, u.total_cost, COALESCE(u.response_time_ms, 0), (u.response_time_ms IS NOT NULL)::int
        FROM split s JOIN usage u ON u.api_key_id = ${keyId}::uuid AND u.created_at >= s.hour AND u.created_at < s.hour + interval '1 hour'
       WHERE ${finished}
    )
    SELECT to_char(at AT TIME ZONE ${timeZone}::text, 'YYYY-MM-DD') AS date, sum(requests)::bigint AS requests, sum(tokens)::bigint AS tokens,
           sum(cost)::bigint AS cost, sum(rt_sum)::bigint AS rt_sum, sum(rt_count)::bigint AS rt_count
      FROM parts
     GROUP BY 1
    HAVING sum(requests) <> 0
     ORDER BY 1`
  // the admin route's Prisma client; every value is still a bound parameter of the composed text
  const rows = await db.$queryRawUnsafe<Array<Record<string, unknown>>>(query.text, ...query.values)
  return rows.map((row) => ({
    date: row.date as string,
    requests: count(row.requests),
    totalTokens: big(row.tokens),
    totalCost: big(row.cost),
    responseTimeSumMs: big(row.rt_sum),
    responseTimeCount: count(row.rt_count)
  }))
}
