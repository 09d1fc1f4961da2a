// The rollup model, declared once: each rollup table's grain (its key columns), the
// measures it sums and the rows it counts. Every write of the rollups is derived from
// this declaration: the deltas ingestion adds (rollups.ts), the GROUP BY that rebuilds a
// table from raw usage rows or regroups a finer rollup (bulk.ts, for the seed), and the
// corrections when a key or a provider is deleted (corrections.ts). Adding a measure is
// one entry in MEASURES and in the tables that sum it, plus the migration adding the
// column.
import { cacheEconomics, cacheEconomicsSql, type CachePriceSnapshot } from './pricing.js'
import { NIL_UUID, qualified } from './rules.js'

/** What rollups need of a usage row. */
export interface RollupSource {
  requestId: string
  status: string
  createdAt: Date
  userId: string | null
  apiKeyId: string | null
  providerId: string | null
  /** the upstream account (absent where a caller never knew it: counted on the nil key) */
  providerApiKeyId?: string | null
  model: string
  apiFormat: string | null
  inputTokens: number
  outputTokens: number
  cacheCreationTokens: number
  cacheReadTokens: number
  /** the cache writes by their time to live (their sum is cacheCreationTokens) */
  cacheCreation5m: number
  cacheCreation1h: number
  totalTokens: number
  cacheCreationCost: bigint
  cacheReadCost: bigint
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeMs: number | null
  firstByteTimeMs: number | null
  /** the unit prices the row was priced with (null or absent: unpriced), for the cache economics measures */
  snapshot?: CachePriceSnapshot | null
  /** the HTTP status (absent where a caller never knew it: 0 in the error rollup, as none) */
  statusCode?: number | null
}

/** The instants a row's rollup rows are keyed by (ISO strings; day as YYYY-MM-DD, UTC). */
export interface Buckets { hour: string, quarter: string, day: string }

const HOUR_MS = 3_600_000
const QUARTER_MS = 900_000

/** The UTC hour an instant falls in, as the rollups key it. */
export const hour = (at: Date) => new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS).toISOString()

export function bucketsOf (at: Date): Buckets {
  const hourly = hour(at)
  return { hour: hourly, quarter: new Date(Math.floor(at.getTime() / QUARTER_MS) * QUARTER_MS).toISOString(), day: hourly.slice(0, 10) }
}

/**
 * A measure: what one counted row adds to it, in TypeScript (`of`) and as an aggregate
 * over raw usage rows (`aggregate`). Counts are numbers in a batch's sums (a batch of at
 * most 1,000 rows of int4 counts stays far below 2^53), money is bigint nano-USD.
 */
export type Measure = {
  /** the column type, as jsonb_to_recordset reads a batch's sums */
  type: 'int' | 'bigint'
  /** SQL over usage rows, one group per rollup row */
  aggregate: string
  /** the aggregate reads the rows' unit prices: its FROM must join each row's tier (pricing.ts tierPricesJoinSql) */
  priced?: true
} & ({ money: false, of: (row: RollupSource) => number } | { money: true, of: (row: RollupSource) => bigint })

const count = (type: 'int' | 'bigint', of: (row: RollupSource) => number, aggregate: string): Measure => ({ type, money: false, of, aggregate })
const money = (of: (row: RollupSource) => bigint, aggregate: string): Measure => ({ type: 'bigint', money: true, of, aggregate })
const priced = (measure: Measure): Measure => ({ ...measure, priced: true })

// ── cache economics (issue 19: cache savings by model and provider) ──
// pricing.ts cacheEconomics, the rule cache_savings_hourly keeps by user × key × hour,
// summed here at the grains it lacks: what cache reads saved against the input price
// (gross) and what writes cost above it (the premium; net = saving − premium). Wasted
// writes depend on the key's next request, not on one row, so they stay in
// cache_savings_hourly.
const economicsOf = (r: RollupSource) =>
  cacheEconomics({ cacheRead: r.cacheReadTokens, cacheWrite5m: r.cacheCreation5m, cacheWrite1h: r.cacheCreation1h }, r.snapshot ?? null)
const economicsSql = cacheEconomicsSql()
const CACHE_ECONOMICS_MEASURES = {
  cache_read_saving: priced(money((r) => economicsOf(r).readSaving, `coalesce(sum(${economicsSql.readSaving.text}), 0)`)),
  cache_write_premium: priced(money((r) => { const x = economicsOf(r); return x.write5mPremium + x.write1hPremium },
    `coalesce(sum(${economicsSql.write5mPremium.text}), 0) + coalesce(sum(${economicsSql.write1hPremium.text}), 0)`))
}
/** the tables that keep them: usage_hourly (which the others regroup, and the own view reads by user) and the model (hour, day, quarter-hour) and provider rollups */
const CACHE_ECONOMICS: readonly MeasureName[] = ['cache_read_saving', 'cache_write_premium']

export const MEASURES = {
  requests: count('int', () => 1, 'count(*)'),
  errors: count('int', (r) => r.status === 'failed' ? 1 : 0, `count(*) FILTER (WHERE status = 'failed')`),
  input_tokens: count('bigint', (r) => r.inputTokens, 'sum(input_tokens)'),
  output_tokens: count('bigint', (r) => r.outputTokens, 'sum(output_tokens)'),
  cache_creation_tokens: count('bigint', (r) => r.cacheCreationTokens, 'sum(cache_creation_input_tokens)'),
  cache_read_tokens: count('bigint', (r) => r.cacheReadTokens, 'sum(cache_read_input_tokens)'),
  total_tokens: count('bigint', (r) => r.totalTokens, 'sum(total_tokens)'),
  response_time_sum_ms: count('bigint', (r) => r.responseTimeMs ?? 0, 'coalesce(sum(response_time_ms), 0)'),
  response_time_count: count('int', (r) => r.responseTimeMs === null ? 0 : 1, 'count(response_time_ms)'),
  first_byte_time_sum_ms: count('bigint', (r) => r.firstByteTimeMs ?? 0, 'coalesce(sum(first_byte_time_ms), 0)'),
  first_byte_time_count: count('bigint', (r) => r.firstByteTimeMs === null ? 0 : 1, 'count(first_byte_time_ms)'),
  cache_creation_5m_tokens: count('bigint', (r) => r.cacheCreation5m, 'sum(cache_creation_5m_input_tokens)'),
  cache_creation_1h_tokens: count('bigint', (r) => r.cacheCreation1h, 'sum(cache_creation_1h_input_tokens)'),
  cache_hit_requests: count('int', (r) => r.cacheReadTokens > 0 ? 1 : 0, 'count(*) FILTER (WHERE cache_read_input_tokens > 0)'),
  cache_creation_cost: money((r) => r.cacheCreationCost, 'sum(cache_creation_cost)'),
  cache_read_cost: money((r) => r.cacheReadCost, 'sum(cache_read_cost)'),
  total_cost: money((r) => r.totalCost, 'sum(total_cost)'),
  actual_total_cost: money((r) => r.actualTotalCost, 'sum(actual_total_cost)'),
  ...CACHE_ECONOMICS_MEASURES
} satisfies Record<string, Measure>

export type MeasureName = keyof typeof MEASURES
export const MEASURE_NAMES = Object.keys(MEASURES) as MeasureName[]

/**
 * A key column of a rollup: its value for a row in TypeScript (`of`) and in SQL over a
 * usage row (`raw`). Rollup keys are never NULL: a missing id is NIL_UUID, a missing
 * format ''.
 */
export interface Dimension {
  column: string
  type: 'timestamptz' | 'date' | 'uuid' | 'text' | 'int'
  of: (row: RollupSource, at: Buckets) => string
  raw: string
  /** a time dimension: its value regrouped from a finer rollup's time column (absent: not a regrouping of any) */
  fromHour?: string
}

const id = (column: string, of: (row: RollupSource) => string | null): Dimension =>
  ({ column, type: 'uuid', of: (row) => of(row) ?? NIL_UUID, raw: `coalesce(${column}, '${NIL_UUID}'::uuid)` })

export const DIMENSIONS = {
  hour: { column: 'bucket', type: 'timestamptz', of: (_, at) => at.hour, raw: `date_trunc('hour', created_at, 'UTC')`, fromHour: 'bucket' },
  // quarter-hours are not a regrouping of hours: always from raw rows
  quarter: { column: 'bucket', type: 'timestamptz', of: (_, at) => at.quarter, raw: `date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00')` },
  day: { column: 'day', type: 'date', of: (_, at) => at.day, raw: `(created_at AT TIME ZONE 'UTC')::date`, fromHour: `(bucket AT TIME ZONE 'UTC')::date` },
  user: id('user_id', (r) => r.userId),
  key: id('api_key_id', (r) => r.apiKeyId),
  provider: id('provider_id', (r) => r.providerId),
  provider_key: id('provider_api_key_id', (r) => r.providerApiKeyId ?? null),
  model: { column: 'model', type: 'text', of: (r) => r.model, raw: 'model' },
  format: { column: 'api_format', type: 'text', of: (r) => r.apiFormat ?? '', raw: `coalesce(api_format, '')` },
  // the errors distribution's status (none: 0)
  status: { column: 'status_code', type: 'int', of: (r) => String(r.statusCode ?? 0), raw: 'coalesce(status_code, 0)' }
} satisfies Record<string, Dimension>

export type DimensionName = keyof typeof DIMENSIONS
const TIME_DIMENSIONS: readonly DimensionName[] = ['hour', 'quarter', 'day']

/**
 * Which finished rows a table counts, when not all of them: in TypeScript, over raw
 * usage rows, and over a rollup that keeps the provider; the SQL on a table alias, or
 * on unqualified columns without one.
 */
export interface RowFilter { of: (row: RollupSource) => boolean, raw: (alias?: string) => string, rollup: (alias?: string) => string }

/**
 * The user ranking counts requests that reached a provider that exists: ingestion locks
 * the provider; deleting one sets its usage rows' provider_id to NULL and takes its part
 * out (corrections.ts), while usage_hourly keeps the deleted provider's id.
 */
export const REACHED_PROVIDER: RowFilter = {
  of: (row) => row.providerId !== null,
  raw: (alias) => `${qualified(alias, 'provider_id')} IS NOT NULL`,
  rollup: (alias) => `${qualified(alias, 'provider_id')} IN (SELECT id FROM providers)`
}

/** Failed requests only: what the errors distribution counts (MEASURES.errors' rule). */
export const FAILED: RowFilter = { of: (row) => row.status === 'failed', raw: (alias) => `${qualified(alias, 'status')} = 'failed'`, rollup: (alias) => `${qualified(alias, 'errors')} <> 0` }

export type RollupTable = 'usage_errors_hourly' | 'usage_hourly' | 'usage_hourly_model' | 'usage_daily_model' | 'usage_daily_key' | 'usage_quarter_hourly_global' | 'usage_daily_user'
  | 'usage_hourly_user' | 'usage_hourly_provider' | 'usage_hourly_global' | 'usage_hourly_provider_key' | 'usage_errors_quarter_hourly' | 'usage_daily_provider'
  | 'usage_quarter_hourly_model' | 'usage_daily_api_key' | 'usage_hourly_api_key' | 'usage_quarter_hourly_user' | 'usage_quarter_hourly_api_key'

export interface Rollup {
  table: RollupTable
  /** the primary key, in its column order */
  grain: readonly DimensionName[]
  measures: readonly MeasureName[]
  only?: RowFilter
  /** a finer rollup this one is a regrouping of (the bulk load sums it rather than the raw rows) */
  regroups?: RollupTable
}

const DAILY: readonly MeasureName[] = ['requests', 'errors', 'input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_read_tokens', 'total_tokens',
  'total_cost', 'actual_total_cost', 'response_time_sum_ms', 'response_time_count']
// time to first byte and the writes by TTL: the analytics time series (analytics/series.ts)
const HOURLY: readonly MeasureName[] = [...DAILY, 'cache_creation_cost', 'cache_read_cost', 'cache_hit_requests',
  'first_byte_time_sum_ms', 'first_byte_time_count', 'cache_creation_5m_tokens', 'cache_creation_1h_tokens']
const RANKING: readonly MeasureName[] = ['requests', 'errors', 'total_tokens', 'total_cost', 'actual_total_cost']
const HEATMAP: readonly MeasureName[] = ['requests', 'total_tokens', 'total_cost', 'actual_total_cost']
// the analytics time series' measures (analytics/queries.ts), the heatmap's among them
const SERIES: readonly MeasureName[] = [...HEATMAP, 'errors', 'input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_creation_5m_tokens', 'cache_creation_1h_tokens',
  'cache_read_tokens', 'response_time_sum_ms', 'response_time_count', 'first_byte_time_sum_ms', 'first_byte_time_count']
// the quarter-hours': the series' and what the totals' readers sum (read/sql.ts ROLLUP_MEASURES), for ragged ranges' whole quarter-hours
const QUARTERS: readonly MeasureName[] = [...SERIES, 'cache_creation_cost', 'cache_read_cost']

/** Every rollup of usage rows, finest first (a table's `regroups` comes before it). */
export const ROLLUPS: readonly Rollup[] = [
  { table: 'usage_hourly', grain: ['hour', 'user', 'key', 'provider', 'model', 'format'], measures: [...HOURLY, ...CACHE_ECONOMICS] },
  { table: 'usage_hourly_model', grain: ['hour', 'provider', 'model', 'format'], measures: [...HOURLY, ...CACHE_ECONOMICS], regroups: 'usage_hourly' },
  // the model and api_format rankings' whole days
  { table: 'usage_daily_model', grain: ['day', 'provider', 'model', 'format'], measures: [...HOURLY, ...CACHE_ECONOMICS], regroups: 'usage_hourly_model' },
  { table: 'usage_daily_key', grain: ['day', 'user', 'key', 'model'], measures: DAILY, regroups: 'usage_hourly' },
  // the key ranking's and spend by tag's whole days: one row a key a day (usage_daily_key has one per model)
  { table: 'usage_daily_api_key', grain: ['day', 'key'], measures: RANKING, regroups: 'usage_daily_key' },
  // …and their hours beside the days: one row a key an hour (usage_hourly has one per user, provider, model and format)
  { table: 'usage_hourly_api_key', grain: ['hour', 'key'], measures: RANKING, regroups: 'usage_hourly' },
  // a time series' and the percentiles' cut hours in zones whose midnight is off the hour, filtered by model, provider or api_format (~22 rows a quarter-hour)
  { table: 'usage_quarter_hourly_model', grain: ['quarter', 'provider', 'model', 'format'], measures: [...QUARTERS, ...CACHE_ECONOMICS] },
  // the heatmap's edges and an unfiltered time series' cut hours: one row a quarter-hour, read alone where no filter asks for more
  { table: 'usage_quarter_hourly_global', grain: ['quarter'], measures: QUARTERS, regroups: 'usage_quarter_hourly_model' },
  // the user ranking; its rows are the user's, whose `used` a batch locks anyway
  { table: 'usage_daily_user', grain: ['day', 'user'], measures: RANKING, only: REACHED_PROVIDER, regroups: 'usage_hourly_user' },
  { table: 'usage_hourly_user', grain: ['hour', 'user'], measures: RANKING, only: REACHED_PROVIDER, regroups: 'usage_hourly' },
  // …and the whole quarter-hours at a ragged range's ends (lib/spans.ts quarterCut), with the provider kept instead of
  // filtered: a deleted provider's part cannot be taken out of a quarter-hour (no finer rollup keeps one), so readers
  // count the rows of providers that exist, as they do in usage_hourly_model
  { table: 'usage_quarter_hourly_user', grain: ['quarter', 'user', 'provider'], measures: RANKING },
  // the key ranking's and spend by tag's whole quarter-hours beside the hours
  { table: 'usage_quarter_hourly_api_key', grain: ['quarter', 'key'], measures: RANKING },
  // global stats and the provider ranking's hours
  { table: 'usage_hourly_provider', grain: ['hour', 'provider'], measures: [...HOURLY, ...CACHE_ECONOMICS], regroups: 'usage_hourly_model' },
  // the heatmap's hours: one row an hour (a year is ~8,800 rows, not ~52,000 of hour × provider);
  // every batch of an hour updates its row, locked only from the rollup statement to COMMIT
  { table: 'usage_hourly_global', grain: ['hour'], measures: HEATMAP, regroups: 'usage_hourly_provider' },
  // upstream accounting: each provider key's hours (no finer rollup keeps the provider key, so the seed sums raw rows)
  { table: 'usage_hourly_provider_key', grain: ['provider_key', 'hour'], measures: HOURLY },
  // the errors distribution: failed requests per hour × provider × HTTP status, a few rows an hour
  { table: 'usage_errors_hourly', grain: ['hour', 'provider', 'status'], measures: ['requests'], only: FAILED },
  // …and per quarter-hour, for the hours a midnight off the hour cuts (a quarter-hour cannot regroup into the hours: the seed sums raw rows for both)
  { table: 'usage_errors_quarter_hourly', grain: ['quarter', 'provider', 'status'], measures: ['requests'], only: FAILED },
  // the percentiles' whole UTC days per provider: its latency histograms (HISTOGRAM_TABLES), 30 rows a provider for 30 days instead of 720
  { table: 'usage_daily_provider', grain: ['day', 'provider'], measures: ['requests'], regroups: 'usage_hourly_provider' }
]

export const rollup = (table: RollupTable): Rollup => ROLLUPS.find((r) => r.table === table)!

export const keyColumns = (r: Rollup) => r.grain.map((name) => DIMENSIONS[name].column)

/** The finest grain: every dimension but the coarser times, and every filter's answer (rows apart in any table are apart here). */
export function finestKey (row: RollupSource, at: Buckets): string {
  const parts: string[] = [at.quarter]
  for (const dimension of FINE_DIMENSIONS) parts.push(dimension.of(row, at))
  for (const filter of FILTERS) parts.push(filter.of(row) ? '1' : '0')
  return parts.join('|')
}
const FINE_DIMENSIONS: Dimension[] = (Object.keys(DIMENSIONS) as DimensionName[]).filter((name) => !TIME_DIMENSIONS.includes(name)).map((name) => DIMENSIONS[name])
const FILTERS = [...new Set(ROLLUPS.flatMap((r) => r.only === undefined ? [] : [r.only]))]

/**
 * A dimension's value over the rows of `source`, a finer rollup: the same column, or a
 * day from an hour. Throws when the model declares a regrouping it cannot be.
 */
export function regroupedColumn (name: DimensionName, source: Rollup): string {
  if (source.grain.includes(name)) return DIMENSIONS[name].column
  const dimension: Dimension = DIMENSIONS[name]
  if (dimension.fromHour !== undefined && source.grain.includes('hour')) return dimension.fromHour
  throw new Error(`${source.table} has no ${name} to regroup`)
}

/**
 * Provider attempts: the executed candidates, and each finished request without one as an
 * implicit attempt on its provider; `fallbacks` counts each request with more than one
 * executed candidate once, on the nil provider (the home dashboard's fallback count).
 */
export const ATTEMPTS = {
  /** per hour, and per quarter-hour for a ragged range's edges (the hours are a regrouping of the quarters) */
  tables: { hour: 'provider_attempts_hourly', quarter: 'provider_attempts_quarter_hourly' },
  grain: ['hour', 'provider'] as const satisfies readonly DimensionName[],
  measures: ['attempts', 'successes', 'failures', 'latency_sum_ms', 'latency_count', 'fallbacks'] as const,
  types: { attempts: 'int', successes: 'int', failures: 'int', latency_sum_ms: 'bigint', latency_count: 'int', fallbacks: 'int' }
} as const

const daysIn = (year: number, month: number) => new Date(Date.UTC(year, month + 1, 0)).getUTCDate()
/** A provider's reset day in a month (0-based, may run past December or before January: Date.UTC carries the year), clamped to its last day */
const resetOn = (year: number, month: number, day: number) => new Date(Date.UTC(year, month, Math.min(day, daysIn(year, month))))

/**
 * A provider's quota period of spend (providers.monthly_used, with monthly_used_month, the
 * period's first day): the actual cost (what the upstream bills: rate-multiplied, zero on a
 * free tier) of its finished requests created in one period. A period starts at 00:00 UTC on
 * the provider's config.quota_reset_day of each month (1 when unset), clamped to the month's
 * last day (31 → 30 Apr, 28/29 Feb), and ends where the next one starts. Ingestion sends
 * each provider's change per UTC day; the period is cut in SQL (periodStartSql), the same
 * rule as `period` here (test/modules/accounting/provider-period.test.ts compares them).
 */
export const PROVIDER_MONTH = {
  measure: 'actual_total_cost' as const satisfies MeasureName,
  /** the UTC day (YYYY-MM-DD) an instant falls in: ingestion's grain */
  day: (at: Date): string => at.toISOString().slice(0, 10),
  /** a provider config's quota_reset_day: a number taken as a whole day of 1 to 31 (past a month's end is its last day), else 1 */
  resetDay: (config: unknown): number => {
    const day = (config !== null && typeof config === 'object' ? (config as Record<string, unknown>).quota_reset_day : undefined)
    return typeof day === 'number' && Number.isFinite(day) ? Math.min(31, Math.max(1, Math.floor(day))) : 1
  },
  /** [start, end) of the period holding `at`, for a reset day of 1 to 31 */
  period: (at: Date, resetDay: number): { start: Date, end: Date } => {
    let start = resetOn(at.getUTCFullYear(), at.getUTCMonth(), resetDay)
    if (at < start) start = resetOn(at.getUTCFullYear(), at.getUTCMonth() - 1, resetDay)
    return { start, end: resetOn(start.getUTCFullYear(), start.getUTCMonth() + 1, resetDay) }
  },
  /** resetDay in SQL, of a jsonb config column */
  resetDaySql: (config: string): string =>
    `(CASE WHEN jsonb_typeof(${config}->'quota_reset_day') = 'number' THEN LEAST(31, GREATEST(1, floor((${config}->>'quota_reset_day')::numeric)))::int ELSE 1 END)`,
  /** period's start in SQL: the first day (date) of the period holding the date `day`, for the int `resetDay` */
  periodStartSql: (day: string, resetDay: string): string => {
    const month = `date_trunc('month', ${day})::date`
    const current = `(${month} + (LEAST(${resetDay}, extract(day FROM ${month} + interval '1 month - 1 day')::int) - 1))`
    const previous = `((${month} - interval '1 month')::date + (LEAST(${resetDay}, extract(day FROM ${month} - interval '1 day')::int) - 1))`
    return `(CASE WHEN ${day} >= ${current} THEN ${current} ELSE ${previous} END)`
  },
  /** period's end in SQL: the next period's first day (date) after the period starting on the date `start` */
  periodEndSql: (start: string, resetDay: string): string => {
    const next = `(date_trunc('month', ${start}) + interval '1 month')::date`
    return `(${next} + (LEAST(${resetDay}, extract(day FROM ${next} + interval '1 month - 1 day')::int) - 1))`
  }
}

/** The prompt-cache tables: written by cache/timeline.ts in ingestion's transaction, rebuilt by cache/rebuild.ts. */
export const CACHE_TABLES = ['cache_interval_hourly', 'cache_savings_hourly', 'cache_savings_hourly_global', 'cache_savings_hourly_model', 'cache_timeline_tail', 'cache_points_hourly', 'cache_timeline_points'] as const

/** Every table derived from usage rows: what a reset empties with them. */
/** the rate window's per-second counts (rollups.ts RollupDeltas.second): every status, so not a ROLLUPS entry */
export const WINDOW_TABLE = 'usage_key_seconds'

export const DERIVED_TABLES: readonly string[] = [...ROLLUPS.map((r) => r.table), ...Object.values(ATTEMPTS.tables), WINDOW_TABLE, ...CACHE_TABLES]

// ---- Latency histograms (issue 19: analytics/percentiles.ts) ----

/** latencies at or past this many milliseconds (an hour) share the top bucket */
export const LATENCY_TOP_MS = 3_600_000

/**
 * The latency buckets' lower bounds, integer milliseconds: 1, 2, …, then each the previous
 * × 1.1 rounded down (at least + 1). Bucket 0 holds values below 1 (0 ms); bucket i ≥ 1
 * holds [LATENCY_BOUNDS[i − 1], LATENCY_BOUNDS[i]); the last is open-ended. Integer
 * arithmetic only, so the migration's SQL literal (latency_bucket) is this very list.
 */
export const LATENCY_BOUNDS: readonly number[] = (() => {
  const bounds = [1]
  for (let b = 1; b < LATENCY_TOP_MS;) {
    b = Math.min(LATENCY_TOP_MS, Math.max(b + 1, Math.floor(b * 11 / 10)))
    bounds.push(b)
  }
  return bounds
})()

/** how many buckets a latency histogram has */
export const LATENCY_BUCKETS = LATENCY_BOUNDS.length + 1

/** A latency's bucket (SQL: latency_bucket(ms), the same list through width_bucket; test/modules/analytics/percentiles-buckets.test.ts). */
export function latencyBucket (ms: number): number {
  let lo = 0
  let hi = LATENCY_BOUNDS.length
  // the number of bounds ≤ ms, as width_bucket counts them
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (LATENCY_BOUNDS[mid]! <= ms) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The value a bucket reports: the harmonic mean of the smallest and largest whole
 * milliseconds it holds, to 0.1 ms, so no value in it is more than LATENCY_RELATIVE_ERROR
 * away (the top bucket reports its lower bound: an hour or more).
 */
export function latencyOfBucket (i: number): number {
  if (i === 0) return 0
  const lo = LATENCY_BOUNDS[i - 1]!
  if (i === LATENCY_BOUNDS.length) return lo
  const hi = LATENCY_BOUNDS[i]! - 1
  return Math.round(2 * lo * hi / (lo + hi) * 10) / 10
}

/** the stated bound on |reported − exact| / exact for every latency below LATENCY_TOP_MS */
export const LATENCY_RELATIVE_ERROR = 0.05

/**
 * A latency histogram kept in a rollup: a bigint[] of counts per bucket (element i + 1
 * holds bucket i; trailing zeros may be left off), added elementwise. `of`: the row's
 * latency (null: no sample); `column`: the same over usage rows.
 */
export interface Histogram { of: (row: RollupSource) => number | null, column: string }

export const HISTOGRAMS = {
  response_time_hist: { of: (r) => r.responseTimeMs, column: 'response_time_ms' },
  first_byte_time_hist: { of: (r) => r.firstByteTimeMs, column: 'first_byte_time_ms' }
} satisfies Record<string, Histogram>

export type HistogramName = keyof typeof HISTOGRAMS
export const HISTOGRAM_NAMES = Object.keys(HISTOGRAMS) as HistogramName[]

/**
 * The rollups keeping latency histograms: the coarsest with hour × provider
 * (usage_hourly_provider) and hour × model (usage_hourly_model), the hour alone
 * (usage_hourly_global), their whole UTC days (usage_daily_provider,
 * usage_daily_model) and the quarter-hours of the hours a zone's midnight cuts
 * (usage_quarter_hourly_model, usage_quarter_hourly_global): what the percentiles read.
 * usage_hourly_model's source (usage_hourly) keeps none, so the bulk load counts its
 * histograms from raw rows; the others regroup them.
 */
export const HISTOGRAM_TABLES: Partial<Record<RollupTable, readonly HistogramName[]>> = {
  usage_hourly_model: HISTOGRAM_NAMES,
  usage_hourly_provider: HISTOGRAM_NAMES,
  usage_hourly_global: HISTOGRAM_NAMES,
  usage_quarter_hourly_model: HISTOGRAM_NAMES,
  usage_quarter_hourly_global: HISTOGRAM_NAMES,
  usage_daily_model: HISTOGRAM_NAMES,
  usage_daily_provider: HISTOGRAM_NAMES
}

export const histogramsOf = (r: Rollup): readonly HistogramName[] => HISTOGRAM_TABLES[r.table] ?? []

/**
 * A rollup's summed columns and how each is added, subtracted and summed in SQL: a
 * measure with + and sum(), a histogram with latency_hist_add and latency_hist_sum
 * (migration 20261205100000_latency_histograms; latency_hist_of counts a
 * group's buckets). Every statement writing rollups
 * (ingestion, the bulk load, the corrections) takes its columns from here.
 */
export interface SummedColumn {
  name: string
  /** the type jsonb_to_recordset reads a batch's value as */
  type: string
  add: (a: string, b: string) => string
  subtract: (a: string, b: string) => string
  sum: (column: string) => string
  /** SQL over usage rows, one group per rollup row */
  aggregate: string
  /** the aggregate reads the rows' unit prices (Measure.priced) */
  priced: boolean
}

const scalar = (name: MeasureName): SummedColumn => {
  const measure: Measure = MEASURES[name]
  return { name, type: measure.type, add: (a, b) => `${a} + ${b}`, subtract: (a, b) => `${a} - ${b}`, sum: (c) => `sum(${c})`, aggregate: measure.aggregate, priced: measure.priced === true }
}
const histogram = (name: HistogramName): SummedColumn => ({
  name,
  type: 'bigint[]',
  // the rows' buckets gathered by array_agg (linear), counted once per group
  aggregate: `latency_hist_of(array_agg(latency_bucket(${HISTOGRAMS[name].column})) FILTER (WHERE ${HISTOGRAMS[name].column} IS NOT NULL))`,
  priced: false,
  // inline, not latency_hist_add: a SQL function call sets itself up in every statement, and ingestion's runs per batch
  add: (a, b) => `ARRAY(SELECT coalesce((${a})[i], 0) + coalesce((${b})[i], 0) FROM generate_series(1, greatest(cardinality(${a}), cardinality(${b}))) i ORDER BY i)`,
  subtract: (a, b) => `latency_hist_add(${a}, latency_hist_negate(${b}))`,
  sum: (c) => `latency_hist_sum(${c})`
})

export const summedColumns = (r: Rollup): SummedColumn[] =>
  [...r.measures.map(scalar), ...histogramsOf(r).map(histogram)]
