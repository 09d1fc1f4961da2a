// The key-holder SQL, on the shared pg pool. Every query is scoped by the key id of
// the authenticated caller and served by the (api_key_id, …) indexes of usage,
// usage_hourly and usage_daily_key.
import type { Sql } from '../../db/prisma.js'
import { dayPlan } from '../../lib/spans.js'

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

// node-postgres returns bigint and numeric columns as strings
function toUsage (row: Record<string, unknown>): Omit<ModelUsage, 'model'> {
  const out = Object.fromEntries(TOKENS.map((name) => [name, Number(row[name] ?? 0)])) as Omit<ModelUsage, 'model' | 'cost'>
  return { ...out, cost: BigInt(row.cost as string | null ?? 0) }
}

/** One key's finished requests per model for [start, end), exact, mostly from rollups. */
export async function keyModelUsage (db: Sql, keyId: string, start: Date, end: Date): Promise<ModelUsage[]> {
  // whole UTC days from usage_daily_key, the whole hours beside them from usage_hourly, raw edges
  const p = dayPlan({ start, end })
  const date = (d: Date) => d.toISOString().slice(0, 10)
  const { rows } = await db.query(`
    SELECT model, sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
      FROM (
        SELECT model, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost
          FROM usage_daily_key
         WHERE api_key_id = $1 AND day >= $8::date AND day < $9::date
        UNION ALL
        SELECT model, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost
          FROM usage_hourly
         WHERE api_key_id = $1 AND ((bucket >= $3 AND bucket < $4) OR (bucket >= $5 AND bucket < $6))
        UNION ALL
        SELECT model, 1, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, total_tokens, total_cost
          FROM usage
         WHERE api_key_id = $1 AND status IN ('completed', 'failed', 'cancelled')
           AND ((created_at >= $2 AND created_at < $3) OR (created_at >= $6 AND created_at < $7))
      ) parts
     GROUP BY model`,
  [keyId, p.edges[0].from, p.hours[0].from, p.days.from, p.days.to, p.hours[1].to, p.edges[1].to, date(p.days.from), date(p.days.to)])
  return rows.map((row: Record<string, unknown>) => ({ model: row.model as string, ...toUsage(row) }))
    .filter((row) => row.requests !== 0) // a rollup row a request has moved away from sums to zero
}

/** The current local day or month of `timeZone`, [start, end), cut by PostgreSQL's zone rules (DST included). */
export async function currentPeriod (db: Sql, timeZone: string, unit: 'day' | 'month'): Promise<{ start: Date, end: Date }> {
  const { rows } = await db.query(`
    SELECT date_trunc($2, now() AT TIME ZONE $1) AT TIME ZONE $1 AS start,
           (date_trunc($2, now() AT TIME ZONE $1) + ('1 ' || $2)::interval) AT TIME ZONE $1 AS "end"`, [timeZone, unit])
  return rows[0] as { start: Date, end: Date }
}

/** One key's all-time totals of finished requests, from usage_daily_key. */
export async function keyTotals (db: Sql, keyId: string): Promise<Omit<ModelUsage, 'model'>> {
  const { rows } = await db.query(`
    SELECT sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
      FROM usage_daily_key WHERE api_key_id = $1`, [keyId])
  return toUsage(rows[0] as Record<string, unknown>)
}
