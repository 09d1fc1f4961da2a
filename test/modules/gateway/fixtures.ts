// Shared set-up for the gateway tests: the catalogue made through the admin API,
// the gateway's two calls, and SQL views of what ingestion wrote.
import type { Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import type { KeymeterApp } from '../../../src/app.js'
import { rebuildCacheData } from '../../../src/modules/accounting/cache/rebuild.js'
import { buildTestApp, GATEWAY_TOKEN, signIn, type Signed } from '../../helper.js'

export const GATEWAY = { authorization: `Bearer ${GATEWAY_TOKEN}` }
export const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000'
/** before any request a test makes, so every price is in effect for every created_at used */
export const LONG_AGO = '2020-01-01T00:00:00Z'

/**
 * For references in raw SQL: a usage row's (alias u) unit prices as tp.pi (input), tp.pr (read), tp.p5 and tp.p1
 * (writes), nano-USD per 1M tokens, straight from its price snapshot's tiers JSON by the rule written out again
 * (the first tier whose up_to covers the row's input context, else the last): not through price_snapshot_tiers.
 */
export const SNAPSHOT_PRICES = `LEFT JOIN price_snapshots ps ON ps.id = u.model_price_id
  LEFT JOIN LATERAL (
    SELECT (e.t->>'input')::bigint AS pi, (e.t->>'cache_read')::bigint AS pr, (e.t->>'cache_write_5m')::bigint AS p5, (e.t->>'cache_write_1h')::bigint AS p1
      FROM jsonb_array_elements(ps.tiers) WITH ORDINALITY AS e(t, o)
     WHERE jsonb_typeof(e.t->'up_to') = 'null' OR e.o = jsonb_array_length(ps.tiers)
        OR u.input_tokens::bigint + u.cache_creation_5m_input_tokens + u.cache_creation_1h_input_tokens + u.cache_read_input_tokens <= (e.t->>'up_to')::bigint
     ORDER BY e.o LIMIT 1) tp ON true`

export type Json = Record<string, any>

export interface Gateway {
  app: KeymeterApp
  /** the test database, for other instances on it */
  url: string
  admin: Signed
  /** an admin call that must succeed; returns its JSON */
  adminCall: (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) => Promise<Json>
  usage: (events: object[]) => Promise<LightMyRequestResponse>
  /** POST /api/gateway/usage that must answer 200; returns the results */
  send: (events: object[]) => Promise<Json[]>
  verify: (body: object) => Promise<LightMyRequestResponse>
  provider: (name: string, billing_type?: 'monthly_quota' | 'pay_as_you_go' | 'free_tier') => Promise<Json>
  providerKey: (providerId: string, body?: { rate_multiplier?: number, cache_ttl_minutes?: number }) => Promise<Json>
  endpoint: (providerId: string, apiFormat: string) => Promise<Json>
  price: (body: object) => Promise<Json>
  standaloneKey: (body?: object) => Promise<Json>
  user: (body?: object) => Promise<Json>
  userKey: (userId: string, body?: object) => Promise<Json>
}

let counter = 0

export async function gateway (t: Test, env?: Record<string, string>): Promise<Gateway> {
  const { app, url } = await buildTestApp(t, { env })
  // The test database is dropped WITH (FORCE) at teardown, which terminates the pool's idle
  // connections: src/db/prisma.ts's listener would report each on stderr; these tests are
  // about the gateway, so the extra listener here keeps the output quiet.
  const pool = (app as { pg?: { on?: (event: 'error', listener: () => void) => unknown } }).pg
  pool?.on?.('error', () => {})
  const admin = await signIn(app, 'admin')
  const adminCall: Gateway['adminCall'] = async (method, url, payload) => {
    const res = await app.inject({ method, url, headers: admin.headers, ...(payload !== undefined && { payload }) })
    if (res.statusCode >= 300) throw new Error(`${method} ${url} → ${res.statusCode} ${res.body}`)
    return res.json()
  }
  const usage = (events: object[]) => app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events } })
  return {
    app,
    url,
    admin,
    adminCall,
    usage,
    send: async (events) => {
      const res = await usage(events)
      if (res.statusCode !== 200) throw new Error(`usage → ${res.statusCode} ${res.body}`)
      return res.json().results
    },
    verify: (body) => app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: GATEWAY, payload: body }),
    provider: (name, billingType = 'pay_as_you_go') => adminCall('POST', '/api/admin/providers', { name, billing_type: billingType }),
    providerKey: (providerId, body = {}) => adminCall('POST', `/api/admin/providers/${providerId}/keys`, { name: `key-${++counter}`, secret: `sk-provider-secret-${counter}-abcdef`, ...body }),
    endpoint: (providerId, apiFormat) => adminCall('POST', `/api/admin/providers/${providerId}/endpoints`, { api_format: apiFormat, base_url: 'https://api.example.com' }),
    price: (body) => adminCall('POST', '/api/admin/model-prices', { effective_from: LONG_AGO, ...body }),
    standaloneKey: (body = {}) => adminCall('POST', '/api/admin/api-keys', { name: `standalone-${++counter}`, ...body }),
    user: (body = {}) => adminCall('POST', '/api/admin/users', { username: `user-${++counter}`, password: 'correct-horse-battery', ...body }),
    userKey: (userId, body = {}) => adminCall('POST', `/api/admin/users/${userId}/api-keys`, { name: `key-${++counter}`, ...body })
  }
}

const stringify = (rows: unknown[]) => JSON.parse(JSON.stringify(rows, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v instanceof Date ? v.toISOString() : v)) as Json[]

/** Every table ingestion can touch, in a stable order. */
export async function dumpTables (app: KeymeterApp): Promise<Record<string, Json[]>> {
  const tables: Record<string, string> = {
    usage: 'SELECT * FROM usage ORDER BY request_id',
    usage_bodies: 'SELECT * FROM usage_bodies ORDER BY usage_id',
    request_candidates: 'SELECT * FROM request_candidates ORDER BY request_id, candidate_index, retry_index',
    usage_hourly: 'SELECT * FROM usage_hourly ORDER BY bucket, user_id, api_key_id, provider_id, model, api_format',
    usage_hourly_model: 'SELECT * FROM usage_hourly_model ORDER BY bucket, provider_id, model, api_format',
    usage_daily_key: 'SELECT * FROM usage_daily_key ORDER BY day, user_id, api_key_id, model',
    usage_daily_api_key: 'SELECT * FROM usage_daily_api_key ORDER BY day, api_key_id',
    usage_hourly_api_key: 'SELECT * FROM usage_hourly_api_key ORDER BY bucket, api_key_id',
    usage_daily_model: 'SELECT * FROM usage_daily_model ORDER BY day, provider_id, model, api_format',
    provider_attempts_hourly: 'SELECT * FROM provider_attempts_hourly ORDER BY bucket, provider_id',
    provider_attempts_quarter_hourly: 'SELECT * FROM provider_attempts_quarter_hourly ORDER BY bucket, provider_id',
    usage_quarter_hourly_global: 'SELECT * FROM usage_quarter_hourly_global ORDER BY bucket',
    usage_daily_user: 'SELECT * FROM usage_daily_user ORDER BY day, user_id',
    usage_hourly_user: 'SELECT * FROM usage_hourly_user ORDER BY bucket, user_id',
    usage_quarter_hourly_user: 'SELECT * FROM usage_quarter_hourly_user ORDER BY bucket, user_id, provider_id',
    usage_quarter_hourly_api_key: 'SELECT * FROM usage_quarter_hourly_api_key ORDER BY bucket, api_key_id',
    usage_hourly_provider: 'SELECT * FROM usage_hourly_provider ORDER BY bucket, provider_id',
    usage_hourly_provider_key: 'SELECT * FROM usage_hourly_provider_key ORDER BY bucket, provider_api_key_id',
    usage_hourly_global: 'SELECT * FROM usage_hourly_global ORDER BY bucket',
    cache_interval_hourly: `SELECT scope, scope_id, bucket, tenant_id, encode(bins, 'hex') AS bins FROM cache_interval_hourly ORDER BY scope, scope_id, bucket`,
    cache_savings_hourly: `SELECT * FROM cache_savings_hourly WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY bucket, user_id, api_key_id, model, provider_id`,
    cache_savings_hourly_global: `SELECT * FROM cache_savings_hourly_global WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY bucket`,
    cache_savings_hourly_model: `SELECT * FROM cache_savings_hourly_model WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY bucket, model, provider_id`,
    cache_timeline_tail: 'SELECT * FROM cache_timeline_tail ORDER BY scope, scope_id',
    cache_points_hourly: 'SELECT * FROM cache_points_hourly WHERE count <> 0 ORDER BY bucket, user_id',
    cache_timeline_points: 'SELECT * FROM cache_timeline_points ORDER BY user_id, created_at, request_id',
    api_keys: 'SELECT * FROM api_keys ORDER BY id',
    users: 'SELECT * FROM users ORDER BY id',
    gateway_events: 'SELECT request_id, event_type FROM gateway_events ORDER BY request_id, event_type'
  }
  const dump: Record<string, Json[]> = {}
  for (const [name, sql] of Object.entries(tables)) dump[name] = stringify(await app.prisma.$queryRawUnsafe(sql))
  return dump
}

/** noon UTC of the day `days` before `now`'s (ms): an instant settled hours ago whose UTC date is known by hand */
export const noonDaysAgo = (days: number, now: number): Date => new Date(Math.floor((now - days * 86_400_000) / 86_400_000) * 86_400_000 + 43_200_000)

const FINISHED = `status IN ('completed', 'failed', 'cancelled')`
const CACHE_SAVINGS_NOT_ZERO = `NOT (read_saving = 0 AND write_5m_premium = 0 AND write_1h_premium = 0 AND cache_write_5m_tokens = 0
  AND cache_write_1h_tokens = 0 AND wasted_5m_tokens = 0 AND wasted_1h_tokens = 0 AND wasted_cost = 0)`
const CACHE_TABLES = {
  // the packed bins byte for byte: ingestion's merges must leave the rebuild's canonical form (sorted, no emptied bin)
  cache_interval_hourly: `SELECT scope, scope_id, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS bucket, tenant_id, encode(bins, 'hex') AS bins
    FROM cache_interval_hourly ORDER BY 1, 2, 3`,
  cache_savings_hourly: `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS bucket, user_id, api_key_id, model, provider_id, read_saving,
    write_5m_premium, write_1h_premium, cache_write_5m_tokens, cache_write_1h_tokens, wasted_5m_tokens, wasted_1h_tokens, wasted_cost
    FROM cache_savings_hourly WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY 1, 2, 3, 4, 5`,
  // the whole scope's hours: ingestion's sums against the rebuild's (cache_savings_hourly summed)
  cache_savings_hourly_global: `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS bucket, read_saving, write_5m_premium,
    write_1h_premium, cache_write_5m_tokens, cache_write_1h_tokens, wasted_5m_tokens, wasted_1h_tokens, wasted_cost
    FROM cache_savings_hourly_global WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY 1`,
  // the hours by model and provider: ingestion's sums against the rebuild's
  cache_savings_hourly_model: `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS bucket, model, provider_id, read_saving, write_5m_premium,
    write_1h_premium, cache_write_5m_tokens, cache_write_1h_tokens, wasted_5m_tokens, wasted_1h_tokens, wasted_cost
    FROM cache_savings_hourly_model WHERE ${CACHE_SAVINGS_NOT_ZERO} ORDER BY 1, 2, 3`,
  cache_timeline_tail: 'SELECT * FROM cache_timeline_tail ORDER BY scope, scope_id',
  cache_points_hourly: `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS bucket, user_id, count
    FROM cache_points_hourly WHERE count <> 0 ORDER BY 1, 2`,
  cache_timeline_points: 'SELECT user_id, created_at, request_id, gap_ms, model FROM cache_timeline_points ORDER BY user_id, created_at, request_id'
}

/**
 * The two cache tables as ingestion kept them, next to the same tables rebuilt at
 * once from the raw rows (rebuildCacheData, in a transaction rolled back after; its
 * session in `timeZone` when given, as a server whose default zone it is).
 */
export async function cacheTablesAndRebuilt (app: KeymeterApp, timeZone?: string): Promise<Record<string, { kept: Json[], rebuilt: Json[] }>> {
  const client = await app.pg.connect()
  try {
    // one statement at a time: a pg client queues concurrent queries only with a deprecation warning (an error from pg 9)
    const read = async () => {
      const tables: Record<string, Json[]> = {}
      for (const [name, sql] of Object.entries(CACHE_TABLES)) tables[name] = stringify((await client.query(sql)).rows)
      return tables
    }
    const kept = await read()
    await client.query('BEGIN')
    if (timeZone !== undefined) await client.query(`SELECT set_config('TimeZone', $1, true)`, [timeZone])
    await rebuildCacheData(client)
    const rebuilt = await read()
    await client.query('ROLLBACK')
    return Object.fromEntries(Object.keys(CACHE_TABLES).map((name) => [name, { kept: kept[name]!, rebuilt: rebuilt[name]! }]))
  } finally {
    client.release()
  }
}
const NIL = `'00000000-0000-0000-0000-000000000000'::uuid`

/** the measures, as SQL over raw usage rows */
const RAW_MEASURES = `count(*)::bigint AS requests, count(*) FILTER (WHERE status = 'failed')::bigint AS errors,
  sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
  sum(cache_creation_input_tokens)::bigint AS cache_creation_tokens, sum(cache_read_input_tokens)::bigint AS cache_read_tokens,
  sum(total_tokens)::bigint AS total_tokens, sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost,
  sum(COALESCE(response_time_ms, 0))::bigint AS response_time_sum_ms, count(response_time_ms)::bigint AS response_time_count`
const RAW_HOURLY_EXTRA = `, sum(cache_creation_cost)::bigint AS cache_creation_cost, sum(cache_read_cost)::bigint AS cache_read_cost,
  count(*) FILTER (WHERE cache_read_input_tokens > 0)::bigint AS cache_hit_requests`
const ROLLUP_MEASURES = `requests::bigint AS requests, errors::bigint AS errors, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
  total_tokens, total_cost, actual_total_cost, response_time_sum_ms, response_time_count::bigint AS response_time_count`
const ROLLUP_HOURLY_EXTRA = ', cache_creation_cost, cache_read_cost, cache_hit_requests::bigint AS cache_hit_requests'
/** a rollup row whose every measure is back to zero says nothing (a request moved away from it) */
const NOT_ALL_ZERO = `NOT (requests = 0 AND errors = 0 AND input_tokens = 0 AND output_tokens = 0 AND cache_creation_tokens = 0 AND cache_read_tokens = 0
  AND total_tokens = 0 AND total_cost = 0 AND actual_total_cost = 0 AND response_time_sum_ms = 0 AND response_time_count = 0)`

const USER_RANKING_ROLLUP = 'requests::bigint AS requests, errors::bigint AS errors, total_tokens, total_cost, actual_total_cost'
const USER_RANKING_NOT_ZERO = 'NOT (requests = 0 AND errors = 0 AND total_tokens = 0 AND total_cost = 0 AND actual_total_cost = 0)'
const USER_RANKING_RAW = `count(*)::bigint AS requests, count(*) FILTER (WHERE status = 'failed')::bigint AS errors, sum(total_tokens)::bigint AS total_tokens,
  sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost`

/** the time series' measures beyond ROLLUP_MEASURES: the writes by TTL and time to first byte */
const ROLLUP_SERIES_EXTRA = ', cache_creation_5m_tokens, cache_creation_1h_tokens, first_byte_time_sum_ms, first_byte_time_count'
const RAW_SERIES_EXTRA = `, sum(cache_creation_5m_input_tokens)::bigint AS cache_creation_5m_tokens, sum(cache_creation_1h_input_tokens)::bigint AS cache_creation_1h_tokens,
  sum(COALESCE(first_byte_time_ms, 0))::bigint AS first_byte_time_sum_ms, count(first_byte_time_ms)::bigint AS first_byte_time_count`

/** the quarter-hours' cache costs (what the totals read from them beside the series' measures) */
const ROLLUP_QUARTER_EXTRA = ', cache_creation_cost, cache_read_cost'
const RAW_QUARTER_EXTRA = ', sum(cache_creation_cost)::bigint AS cache_creation_cost, sum(cache_read_cost)::bigint AS cache_read_cost'

const HEATMAP_ROLLUP = 'requests::bigint AS requests, total_tokens, total_cost, actual_total_cost'
const HEATMAP_NOT_ZERO = 'NOT (requests = 0 AND total_tokens = 0 AND total_cost = 0 AND actual_total_cost = 0)'
const HEATMAP_RAW = `count(*)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens, sum(total_cost)::bigint AS total_cost,
  sum(actual_total_cost)::bigint AS actual_total_cost`

/**
 * Each rollup table next to the same totals computed with GROUP BY from the raw
 * finished usage rows, at the table's grain (UTC hours and days).
 */
export async function rollupsAndRaw (app: KeymeterApp): Promise<Record<string, { rollup: Json[], raw: Json[] }>> {
  const hourKey = `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')`
  const rawHour = `to_char(date_trunc('hour', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24')`
  const quarterKey = `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')`
  const rawQuarter = `to_char(date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI')`
  const grains = {
    usage_hourly: {
      rollup: `SELECT ${hourKey} AS bucket, user_id, api_key_id, provider_id, model, api_format, ${ROLLUP_MEASURES}${ROLLUP_HOURLY_EXTRA}
                 FROM usage_hourly WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2, 3, 4, 5, 6`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(user_id, ${NIL}) AS user_id, COALESCE(api_key_id, ${NIL}) AS api_key_id,
                   COALESCE(provider_id, ${NIL}) AS provider_id, model, COALESCE(api_format, '') AS api_format, ${RAW_MEASURES}${RAW_HOURLY_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`
    },
    usage_hourly_model: {
      rollup: `SELECT ${hourKey} AS bucket, provider_id, model, api_format, ${ROLLUP_MEASURES}${ROLLUP_HOURLY_EXTRA}
                 FROM usage_hourly_model WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2, 3, 4`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(provider_id, ${NIL}) AS provider_id, model, COALESCE(api_format, '') AS api_format,
                   ${RAW_MEASURES}${RAW_HOURLY_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
    },
    usage_daily_model: {
      rollup: `SELECT to_char(day, 'YYYY-MM-DD') AS day, provider_id, model, api_format, ${ROLLUP_MEASURES}${ROLLUP_HOURLY_EXTRA}
                 FROM usage_daily_model WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2, 3, 4`,
      raw: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COALESCE(provider_id, ${NIL}) AS provider_id, model,
                   COALESCE(api_format, '') AS api_format, ${RAW_MEASURES}${RAW_HOURLY_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
    },
    usage_daily_key: {
      rollup: `SELECT to_char(day, 'YYYY-MM-DD') AS day, user_id, api_key_id, model, ${ROLLUP_MEASURES}
                 FROM usage_daily_key WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2, 3, 4`,
      raw: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COALESCE(user_id, ${NIL}) AS user_id,
                   COALESCE(api_key_id, ${NIL}) AS api_key_id, model, ${RAW_MEASURES}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
    },
    // the key ranking's and spend by tag's days: every finished request, a key-less one on the nil key
    usage_daily_api_key: {
      rollup: `SELECT to_char(day, 'YYYY-MM-DD') AS day, api_key_id, ${USER_RANKING_ROLLUP}
                 FROM usage_daily_api_key WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2`,
      raw: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COALESCE(api_key_id, ${NIL}) AS api_key_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // …and their hours
    usage_hourly_api_key: {
      rollup: `SELECT ${hourKey} AS bucket, api_key_id, ${USER_RANKING_ROLLUP}
                 FROM usage_hourly_api_key WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(api_key_id, ${NIL}) AS api_key_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // …and their quarter-hours
    usage_quarter_hourly_api_key: {
      rollup: `SELECT ${quarterKey} AS bucket, api_key_id, ${USER_RANKING_ROLLUP}
                 FROM usage_quarter_hourly_api_key WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2`,
      raw: `SELECT ${rawQuarter} AS bucket, COALESCE(api_key_id, ${NIL}) AS api_key_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // the user ranking's quarter-hours: every finished request, by provider (the nil one: none)
    usage_quarter_hourly_user: {
      rollup: `SELECT ${quarterKey} AS bucket, user_id, provider_id, ${USER_RANKING_ROLLUP}
                 FROM usage_quarter_hourly_user WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2, 3`,
      raw: `SELECT ${rawQuarter} AS bucket, COALESCE(user_id, ${NIL}) AS user_id, COALESCE(provider_id, ${NIL}) AS provider_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
    },
    // the user ranking: requests that reached a provider (a deleted provider's rows have it NULL)
    usage_daily_user: {
      rollup: `SELECT to_char(day, 'YYYY-MM-DD') AS day, user_id, ${USER_RANKING_ROLLUP}
                 FROM usage_daily_user WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2`,
      raw: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COALESCE(user_id, ${NIL}) AS user_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} AND provider_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`
    },
    usage_hourly_user: {
      rollup: `SELECT ${hourKey} AS bucket, user_id, ${USER_RANKING_ROLLUP}
                 FROM usage_hourly_user WHERE ${USER_RANKING_NOT_ZERO} ORDER BY 1, 2`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(user_id, ${NIL}) AS user_id, ${USER_RANKING_RAW}
              FROM usage WHERE ${FINISHED} AND provider_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`
    },
    usage_hourly_provider: {
      rollup: `SELECT ${hourKey} AS bucket, provider_id, ${ROLLUP_MEASURES}${ROLLUP_HOURLY_EXTRA}
                 FROM usage_hourly_provider WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(provider_id, ${NIL}) AS provider_id, ${RAW_MEASURES}${RAW_HOURLY_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // the upstream account's: every finished request on the provider key that served it (none: the nil key)
    usage_hourly_provider_key: {
      rollup: `SELECT ${hourKey} AS bucket, provider_api_key_id, ${ROLLUP_MEASURES}${ROLLUP_HOURLY_EXTRA}
                 FROM usage_hourly_provider_key WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(provider_api_key_id, ${NIL}) AS provider_api_key_id, ${RAW_MEASURES}${RAW_HOURLY_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // the heatmap's rollups: every finished request, whatever its provider (a deleted one's included)
    // …and the analytics' cut hours (issue 19): every measure of the time series
    usage_quarter_hourly_global: {
      rollup: `SELECT ${quarterKey} AS bucket, ${ROLLUP_MEASURES}${ROLLUP_SERIES_EXTRA}${ROLLUP_QUARTER_EXTRA}
                 FROM usage_quarter_hourly_global WHERE ${NOT_ALL_ZERO} ORDER BY 1`,
      raw: `SELECT ${rawQuarter} AS bucket, ${RAW_MEASURES}${RAW_SERIES_EXTRA}${RAW_QUARTER_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1 ORDER BY 1`
    },
    usage_hourly_global: {
      rollup: `SELECT ${hourKey} AS bucket, ${HEATMAP_ROLLUP} FROM usage_hourly_global WHERE ${HEATMAP_NOT_ZERO} ORDER BY 1`,
      raw: `SELECT ${rawHour} AS bucket, ${HEATMAP_RAW} FROM usage WHERE ${FINISHED} GROUP BY 1 ORDER BY 1`
    },
    // the filtered time series' cut hours
    usage_quarter_hourly_model: {
      rollup: `SELECT ${quarterKey} AS bucket, provider_id, model, api_format, ${ROLLUP_MEASURES}${ROLLUP_SERIES_EXTRA}${ROLLUP_QUARTER_EXTRA}
                 FROM usage_quarter_hourly_model WHERE ${NOT_ALL_ZERO} ORDER BY 1, 2, 3, 4`,
      raw: `SELECT ${rawQuarter} AS bucket, COALESCE(provider_id, ${NIL}) AS provider_id, model, COALESCE(api_format, '') AS api_format, ${RAW_MEASURES}${RAW_SERIES_EXTRA}${RAW_QUARTER_EXTRA}
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`
    },
    // failed requests by hour, provider (a deleted one's: the nil provider) and status code (none: 0)
    usage_errors_hourly: {
      rollup: `SELECT ${hourKey} AS bucket, provider_id, status_code, requests::bigint AS requests
                 FROM usage_errors_hourly WHERE requests <> 0 ORDER BY 1, 2, 3`,
      raw: `SELECT ${rawHour} AS bucket, COALESCE(provider_id, ${NIL}) AS provider_id, COALESCE(status_code, 0) AS status_code, count(*)::bigint AS requests
              FROM usage WHERE status = 'failed' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
    },
    // the same by quarter-hour: the errors distribution's cut hours
    usage_errors_quarter_hourly: {
      rollup: `SELECT ${quarterKey} AS bucket, provider_id, status_code, requests::bigint AS requests
                 FROM usage_errors_quarter_hourly WHERE requests <> 0 ORDER BY 1, 2, 3`,
      raw: `SELECT ${rawQuarter} AS bucket, COALESCE(provider_id, ${NIL}) AS provider_id, COALESCE(status_code, 0) AS status_code, count(*)::bigint AS requests
              FROM usage WHERE status = 'failed' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`
    },
    // the percentiles' whole days per provider
    usage_daily_provider: {
      rollup: `SELECT to_char(day, 'YYYY-MM-DD') AS day, provider_id, requests::bigint AS requests FROM usage_daily_provider WHERE requests <> 0 ORDER BY 1, 2`,
      raw: `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, COALESCE(provider_id, ${NIL}) AS provider_id, count(*)::bigint AS requests
              FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`
    },
    // the latency histograms, as (row, bucket, count) with the counts not zero; element i + 1 counts latency_bucket i
    // (the daily ones: the percentiles' whole UTC days; the global hour: the unfiltered percentiles' hours; the quarter-hours: their cut hours)
    ...Object.fromEntries(['usage_hourly_model', 'usage_hourly_provider', 'usage_hourly_global', 'usage_daily_model', 'usage_daily_provider',
      'usage_quarter_hourly_model', 'usage_quarter_hourly_global'].flatMap((table) => [['response_time', 'response_time_ms'], ['first_byte_time', 'first_byte_time_ms']].map(([hist, column]) => {
      const byModel = table.endsWith('_model')
      const global = table.endsWith('_global')
      const daily = table.startsWith('usage_daily')
      const quarter = table.startsWith('usage_quarter')
      // the global hour's dimension: a constant, so every table's rows have the same shape
      const dims = byModel ? 'provider_id, model, api_format' : global ? "'' AS whole" : 'provider_id'
      const rawDims = byModel ? `COALESCE(provider_id, ${NIL}) AS provider_id, model, COALESCE(api_format, '') AS api_format` : global ? "'' AS whole" : `COALESCE(provider_id, ${NIL}) AS provider_id`
      const width = byModel ? '1, 2, 3, 4, 5' : '1, 2, 3'
      return [`${table}.${hist}_hist`, {
        rollup: `SELECT ${daily ? "to_char(day, 'YYYY-MM-DD')" : quarter ? quarterKey : hourKey} AS bucket, ${dims}, x.i::int AS i, x.n::bigint AS n FROM ${table} r, unnest(r.${hist}_hist) WITH ORDINALITY AS x(n, i)
                  WHERE x.n <> 0 ORDER BY ${width}`,
        raw: `SELECT ${daily ? "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')" : quarter ? rawQuarter : rawHour} AS bucket, ${rawDims}, latency_bucket(${column}) + 1 AS i, count(*)::bigint AS n
                FROM usage WHERE ${FINISHED} AND ${column} IS NOT NULL GROUP BY ${width} ORDER BY ${width}`
      }]
    }))),
    // executed candidates on their providers; a finished request without one, as one attempt on its provider (per hour, per quarter-hour)
    ...Object.fromEntries(([['provider_attempts_hourly', hourKey, rawHour], ['provider_attempts_quarter_hourly', quarterKey, rawQuarter]] as const).map(([table, key, rawKey]) => [table, {
      rollup: `SELECT ${key} AS bucket, provider_id, attempts::bigint AS attempts, successes::bigint AS successes, failures::bigint AS failures,
                      latency_sum_ms, latency_count::bigint AS latency_count
                 FROM ${table}
                WHERE NOT (attempts = 0 AND successes = 0 AND failures = 0 AND latency_sum_ms = 0 AND latency_count = 0) ORDER BY 1, 2`,
      raw: `SELECT ${rawKey} AS bucket, provider_id, count(*)::bigint AS attempts, count(*) FILTER (WHERE success)::bigint AS successes,
                   count(*) FILTER (WHERE failure)::bigint AS failures, COALESCE(sum(latency_ms), 0)::bigint AS latency_sum_ms,
                   count(latency_ms)::bigint AS latency_count
              FROM (
                SELECT created_at, provider_id, status = 'success' AS success, status = 'failed' AS failure, latency_ms
                  FROM request_candidates WHERE status NOT IN ('skipped', 'available') AND provider_id IS NOT NULL
                UNION ALL
                SELECT u.created_at, u.provider_id, u.status <> 'failed', u.status = 'failed', u.response_time_ms
                  FROM usage u WHERE u.${FINISHED} AND u.provider_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM request_candidates c WHERE c.request_id = u.request_id AND c.status NOT IN ('skipped', 'available'))
              ) a
             GROUP BY 1, 2 ORDER BY 1, 2`
    }]))
  }
  const out: Record<string, { rollup: Json[], raw: Json[] }> = {}
  for (const [table, sql] of Object.entries(grains)) {
    out[table] = { rollup: stringify(await app.prisma.$queryRawUnsafe(sql.rollup)), raw: stringify(await app.prisma.$queryRawUnsafe(sql.raw)) }
  }
  return out
}

/** Each key's and user's charge columns next to the sums over their finished usage rows. */
export async function chargesAndRaw (app: KeymeterApp) {
  const keys = stringify(await app.prisma.$queryRawUnsafe(`
    SELECT k.id, k.total_requests, k.total_tokens, k.total_cost, k.balance_used,
           COALESCE(u.requests, 0)::bigint AS raw_requests, COALESCE(u.tokens, 0)::bigint AS raw_tokens, COALESCE(u.cost, 0)::bigint AS raw_cost
      FROM api_keys k LEFT JOIN (
        SELECT api_key_id, count(*) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost FROM usage WHERE ${FINISHED} GROUP BY api_key_id
      ) u ON u.api_key_id = k.id
     ORDER BY k.id`))
  const users = stringify(await app.prisma.$queryRawUnsafe(`
    SELECT s.id, s.used, s.total_used, COALESCE(u.cost, 0)::bigint AS raw_cost
      FROM users s LEFT JOIN (SELECT user_id, sum(total_cost) AS cost FROM usage WHERE ${FINISHED} GROUP BY user_id) u ON u.user_id = s.id
     ORDER BY s.id`))
  return { keys, users }
}

/** Asserts every rollup equals its raw GROUP BY and every charge equals its rows' sums. */
export async function assertConsistent (t: Test, app: KeymeterApp, label = '', extra: { todo?: string } = {}): Promise<void> {
  const rollups = await rollupsAndRaw(app)
  for (const [table, { rollup, raw }] of Object.entries(rollups)) t.same(rollup, raw, `${label}${table} = GROUP BY of the finished usage rows`, extra)
  const { keys, users } = await chargesAndRaw(app)
  for (const k of keys) {
    t.same({ requests: k.total_requests, tokens: k.total_tokens, cost: k.total_cost, balance_used: k.balance_used },
      { requests: k.raw_requests, tokens: k.raw_tokens, cost: k.raw_cost, balance_used: k.raw_cost }, `${label}key ${k.id as string}: charges = sums over its rows`, extra)
  }
  for (const u of users) t.equal(u.used, u.raw_cost, `${label}user ${u.id as string}: used = sum of its rows' total_cost`, extra)
  // no quota is reset in these tests, so the all-time total equals used
  for (const u of users) t.equal(u.total_used, u.raw_cost, `${label}user ${u.id as string}: total_used = sum of its rows' total_cost`, extra)
  for (const [table, { kept, rebuilt }] of Object.entries(await cacheTablesAndRebuilt(app))) {
    t.same(kept, rebuilt, `${label}${table} = the same table rebuilt from the raw rows`, extra)
  }
}

/** Sends `count` reserving verifies of `key` at once (request ids `prefix-0…`) and counts the answers by status. */
export async function burst (g: Gateway, key: Json, count: number, prefix: string, extra: object = {}) {
  const answers = await Promise.all(Array.from({ length: count }, (_v, i) => g.verify({ key: key.key, request_id: `${prefix}-${i}`, ...extra })))
  const byStatus: Record<number, number> = {}
  for (const res of answers) byStatus[res.statusCode] = (byStatus[res.statusCode] ?? 0) + 1
  return { answers, byStatus }
}

export const minutesAgo = (minutes: number, from = Date.now()) => new Date(from - minutes * 60_000).toISOString()
