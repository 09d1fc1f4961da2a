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

export interface KeyState {
  id: string
  name: string
  is_active: boolean
  created_at: Date
  expires_at: Date | null
  rate_limit: number | null
  concurrent_limit: number | null
  daily_cost_limit: bigint | null
  total_cost_limit: bigint | null
  current_balance: bigint | null
  balance_used: bigint
  allowed_models: string[] | null
  allowed_providers: string[] | null
  allowed_api_formats: string[] | null
  window_requests: number
  window_resets_in_seconds: number
  usage: Omit<ModelUsage, 'model'>
}

/**
 * The key, its rate window (the same rule as gateway verify: its usage rows created in
 * the last 60 s, any status) and its all-time totals from usage_daily_key.
 */
export async function keyState (db: Sql, keyId: string): Promise<KeyState | undefined> {
  const { rows } = await db.query(`
    SELECT k.id, k.name, k.is_active, k.created_at, k.expires_at, k.rate_limit, k.concurrent_limit, k.daily_cost_limit, k.total_cost_limit,
           k.current_balance, k.balance_used, k.allowed_models, k.allowed_providers, k.allowed_api_formats,
           w.requests AS window_requests,
           COALESCE(ceil(extract(epoch FROM w.oldest + interval '60 seconds' - now())), 0)::int AS window_resets_in_seconds,
           t.requests, t.input_tokens, t.output_tokens, t.cache_creation_tokens, t.cache_read_tokens, t.total_tokens, t.cost
      FROM api_keys k,
           LATERAL (SELECT count(*)::int AS requests, min(created_at) AS oldest
                      FROM usage WHERE api_key_id = k.id AND created_at > now() - interval '60 seconds') w,
           LATERAL (SELECT sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                           sum(cache_creation_tokens) AS cache_creation_tokens, sum(cache_read_tokens) AS cache_read_tokens,
                           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
                      FROM usage_daily_key WHERE api_key_id = k.id) t
     WHERE k.id = $1`, [keyId])
  const row = rows[0] as Record<string, unknown> | undefined
  if (row === undefined) return undefined
  const big = (name: string) => row[name] === null ? null : BigInt(row[name] as string)
  return {
    ...(row as unknown as KeyState),
    daily_cost_limit: big('daily_cost_limit'),
    total_cost_limit: big('total_cost_limit'),
    current_balance: big('current_balance'),
    balance_used: big('balance_used')!,
    usage: toUsage(row)
  }
}
