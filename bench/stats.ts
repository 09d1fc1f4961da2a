// npm run bench -- stats [--rows N] [--reset]: the usage statistics endpoints on a
// seeded data set, through HTTP, against the same answer computed the way Aether
// computes it — one GROUP BY (or count + page) over the raw usage rows — in the same
// run, on the same database. One line per endpoint: p50 / p95 of the endpoint, the
// raw query's median, their ratio, and whether both gave the same answer.
//
// The database: BENCH_DATABASE_URL when set (reused if it holds at least N usage rows,
// seeded if it is empty, refused otherwise unless --reset), else a persistent embedded
// cluster under ./.data/bench with one database per row count (keymeter_bench_<N>),
// seeded on first use and reused after (seeding is the slow part).
import { chmod, mkdir } from 'node:fs/promises'
import http from 'node:http'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { applyMigrations } from '../src/db/migrate.js'
import { inTransaction } from '../src/db/prisma.js'
import { rebuildCacheData } from '../src/modules/accounting/cache/rebuild.js'
import { createSession } from '../src/modules/auth/service.js'
import { progressReporter, summaryLine } from '../src/modules/seed/command.js'
import { seed } from '../src/modules/seed/service.js'
import { benchConfig, fmt, startBench, stealMeter, stealNote } from './harness.js'

/** warm-up: at least this many calls, and for at least WARM_UP_MS (the JIT compiles each endpoint's code over its first hundred calls or so) */
const WARM_UPS = 20
const WARM_UP_MS = 2_000
const CALLS = 50
const RAW_RUNS = 3
/** a call slower than this is abandoned, its query cancelled, and the endpoint reported as too slow */
const CALL_LIMIT_MS = 60_000
const FINISHED = `status IN ('completed', 'failed', 'cancelled')`

export type Row = Record<string, any>

export interface Case {
  name: string
  path: string
  /** the raw computation: statements run one after the other, timed together */
  raw: Array<[sql: string, params: unknown[]]>
  /** null when the endpoint's answer matches the raw one, else what differs */
  compare: (api: Row, raw: Row[][]) => string | null
}

/** Database for the run: returns its URL and how to stop it. */
export async function database (rows: number, reset: boolean): Promise<{ url: string, stop: () => Promise<void>, ours: boolean }> {
  const given = process.env.BENCH_DATABASE_URL
  if (given !== undefined) return { url: given, stop: async () => {}, ours: reset }
  const { startEmbedded } = await import('../src/db/embedded.js')
  const dir = resolve('.data/bench')
  await mkdir(dir, { recursive: true })
  await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
  const db = await startEmbedded({ dataDir: `${dir}/pg`, password: 'bench', database: `keymeter_bench_${rows}`, persistent: true })
  return { url: db.url, stop: db.stop, ours: true }
}

/** Seeds unless the database already holds at least `rows` usage rows; then vacuums, as autovacuum would have on a live system. */
export async function prepare (url: string, rows: number, mayReset: boolean): Promise<void> {
  await applyMigrations(url)
  const pool = new pg.Pool({ connectionString: url, max: 3 })
  try {
    const present = Number((await pool.query('SELECT count(*) FROM usage')).rows[0].count)
    if (present >= rows) {
      console.log(`reusing the database's ${fmt(present)} usage rows`)
    } else {
      if (present > 0 && !mayReset) throw new Error(`BENCH_DATABASE_URL holds ${fmt(present)} usage rows, fewer than ${fmt(rows)}: pass --reset to replace them`)
      const summary = await seed(pool, { rows, reset: present > 0 || mayReset, encryptionKey: benchConfig(url).ENCRYPTION_KEY, ...progressReporter() })
      console.log(summaryLine(summary))
    }
    if (Number((await pool.query('SELECT count(*) FROM (SELECT 1 FROM cache_points_hourly LIMIT 1) s')).rows[0].count) === 0) {
      // a database seeded before the cache tables existed: build them from its rows, as an upgrade would (cli rebuild-cache)
      const started = performance.now()
      await inTransaction(pool, rebuildCacheData)
      console.log(`cache tables rebuilt from the raw rows: ${((performance.now() - started) / 1000).toFixed(1)} s`)
    }
    const started = performance.now()
    await pool.query('VACUUM (ANALYZE) usage, request_candidates, usage_hourly, usage_hourly_model, usage_hourly_provider, usage_hourly_user, usage_daily_model, usage_daily_key, usage_daily_user, usage_quarter_hourly_global, usage_hourly_global, provider_attempts_hourly, cache_interval_hourly, cache_points_hourly, cache_savings_hourly, cache_timeline_tail, cache_timeline_points')
    console.log(`vacuum: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  } finally {
    await pool.end()
  }
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!
export const percentile = (sorted: number[], q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
export const ms = (value: number) => value < 10 ? value.toFixed(1) : fmt(value)
const usd = (nano: unknown) => Number(nano) / 1e9
const near = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b))

/** The top rows of an aggregation: same keys and request counts, in the same order. */
const sameGroups = (key: string) => (api: Row, raw: Row[][]) => {
  const got = (api as Row[]).map((r) => `${r[key]}=${r.request_count}`).join(' ')
  const want = raw[0]!.map((r) => `${r.key}=${r.requests}`).join(' ')
  return got === want ? null : `got ${got.slice(0, 80)}… want ${want.slice(0, 80)}…`
}

/** A records page: the same rows in the same order, and the same total unless the endpoint says it estimated. */
const samePage = (api: Row, raw: Row[][]) => {
  const ids = (api.records as Row[]).map((r) => r.id).join()
  if (ids !== raw[0]!.map((r) => r.id).join()) return 'another page of records'
  const total = Number(raw[1]![0]!.count)
  if (api.total_is_estimate !== true && api.total !== total) return `total ${api.total}, raw count ${total}`
  return null
}

function cases (start: Date, end: Date, usageId: string): Case[] {
  const range = (alias = '') => `${alias}created_at >= $1 AND ${alias}created_at < $2 AND ${alias}${FINISHED}`
  const query = `start_date=${encodeURIComponent(start.toISOString())}&end_date=${encodeURIComponent(end.toISOString())}`
  const aggregation = (groupBy: string, sql: string): Case => ({
    name: `aggregation by ${groupBy} (30 days)`, path: `/api/admin/usage/aggregation/stats?group_by=${groupBy}&${query}`,
    raw: [[sql, [start, end]]], compare: sameGroups(groupBy === 'provider' ? 'provider_id' : groupBy === 'user' ? 'user_id' : groupBy)
  })
  const heatmap = (zone: string): Case => ({
    name: `heatmap (${zone})`, path: `/api/admin/usage/heatmap?timezone=${encodeURIComponent(zone)}`,
    raw: [[`SELECT to_char((created_at AT TIME ZONE $1)::date, 'YYYY-MM-DD') AS day, count(*) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual
      FROM usage WHERE created_at >= now() - interval '366 days' AND ${FINISHED} GROUP BY 1 ORDER BY 1`, [zone]]],
    compare: (api, raw) => {
      const rawByDay = new Map(raw[0]!.map((r) => [r.day as string, Number(r.requests)]))
      const differing = (api.days as Row[]).filter((d) => d.requests !== (rawByDay.get(d.date) ?? 0))
      return differing.length === 0 ? null : `${differing.length} days differ, e.g. ${differing[0]!.date}: ${differing[0]!.requests} vs ${rawByDay.get(differing[0]!.date) ?? 0}`
    }
  })
  // Aether's records: the page (newest first, with the joins the list shows) and an exact count of the filter
  const records = (label: string, params: string, where: string, values: unknown[]): Case => ({
    name: `records, first page (${label})`, path: `/api/admin/usage/records?limit=100${params}`,
    raw: [
      [`SELECT u.id, u.request_id, us.username, k.name AS key_name, k.key_prefix, u.model, u.provider_name, u.status, u.total_tokens, u.total_cost, u.created_at,
          (SELECT count(*) FROM request_candidates c WHERE c.request_id = u.request_id AND c.status NOT IN ('skipped', 'available')) > 1 AS has_fallback
        FROM usage u LEFT JOIN users us ON us.id = u.user_id LEFT JOIN api_keys k ON k.id = u.api_key_id
        WHERE ${where} ORDER BY u.created_at DESC, u.id DESC LIMIT 100`, values],
      [`SELECT count(*) FROM usage u LEFT JOIN users us ON us.id = u.user_id LEFT JOIN api_keys k ON k.id = u.api_key_id WHERE ${where}`, values]
    ],
    compare: samePage
  })
  const keyword = (n: number) => `(us.username ILIKE $${n} OR k.name ILIKE $${n} OR u.model ILIKE $${n} OR u.provider_name ILIKE $${n})`
  return [
    {
      name: 'stats (30 days)', path: `/api/admin/usage/stats?${query}`,
      raw: [[`SELECT count(*) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual, avg(response_time_ms) AS avg_ms,
        count(*) FILTER (WHERE status = 'failed') AS errors, sum(cache_creation_input_tokens), sum(cache_read_input_tokens), sum(cache_creation_cost), sum(cache_read_cost)
        FROM usage WHERE ${range()}`, [start, end]]],
      compare: (api, raw) => {
        const r = raw[0]![0]!
        return api.total_requests === Number(r.requests) && api.total_tokens === Number(r.tokens) && near(api.total_cost, usd(r.cost)) && near(api.total_actual_cost, usd(r.actual))
          ? null
          : `requests ${api.total_requests} vs ${r.requests}, cost ${api.total_cost} vs ${usd(r.cost)}`
      }
    },
    aggregation('model', `SELECT model AS key, count(*) AS requests, sum(total_tokens), sum(total_cost), sum(actual_total_cost)
      FROM usage WHERE ${range()} AND provider_id IS NOT NULL GROUP BY model ORDER BY requests DESC, key LIMIT 20`),
    aggregation('user', `SELECT u.user_id AS key, us.email, us.username, count(*) AS requests, sum(u.total_tokens), sum(u.total_cost)
      FROM usage u JOIN users us ON us.id = u.user_id WHERE ${range('u.')} AND u.provider_id IS NOT NULL
      GROUP BY u.user_id, us.email, us.username ORDER BY requests DESC, key LIMIT 20`),
    // attempts from request candidates; a finished request without candidates is one attempt on its provider
    aggregation('provider', `WITH attempts AS (
        SELECT c.provider_id, c.status::text AS status, c.latency_ms FROM request_candidates c
         WHERE c.created_at >= $1 AND c.created_at < $2 AND c.status NOT IN ('skipped', 'available') AND c.provider_id IS NOT NULL
        UNION ALL
        SELECT u.provider_id, CASE WHEN u.status = 'failed' THEN 'failed' ELSE 'success' END, u.response_time_ms FROM usage u
         WHERE ${range('u.')} AND u.provider_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM request_candidates c WHERE c.request_id = u.request_id)
      ), sums AS (
        SELECT provider_id, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual FROM usage WHERE ${range()} GROUP BY provider_id
      )
      SELECT a.provider_id AS key, p.name, count(*) AS requests, count(*) FILTER (WHERE a.status = 'success') AS successes,
        count(*) FILTER (WHERE a.status = 'failed') AS failures, avg(a.latency_ms), s.tokens, s.cost, s.actual
      FROM attempts a JOIN providers p ON p.id = a.provider_id LEFT JOIN sums s ON s.provider_id = a.provider_id
      GROUP BY a.provider_id, p.name, s.tokens, s.cost, s.actual ORDER BY requests DESC, key LIMIT 20`),
    aggregation('api_format', `SELECT api_format AS key, count(*) AS requests, sum(total_tokens), sum(total_cost), sum(actual_total_cost), avg(response_time_ms)
      FROM usage WHERE ${range()} AND provider_id IS NOT NULL AND api_format IS NOT NULL GROUP BY api_format ORDER BY requests DESC, key LIMIT 20`),
    heatmap('UTC'),
    heatmap('Asia/Kolkata'),
    records('no filter', '', 'true', []),
    records('model = claude-sonnet-4', '&model=claude-sonnet-4', 'u.model = $1', ['claude-sonnet-4']),
    records('search "alice sonnet"', '&search=alice%20sonnet', `${keyword(1)} AND ${keyword(2)}`, ['%alice%', '%sonnet%']),
    records('status = error', '&status=error', `(u.status = 'failed' OR u.status_code >= 400)`, []),
    {
      name: 'detail (a fallback with candidates)', path: `/api/admin/usage/${usageId}`,
      raw: [
        [`SELECT u.*, us.username, us.email, k.name AS key_name, k.key_prefix, b.request_headers, b.response_headers, b.request_body, b.response_body
          FROM usage u LEFT JOIN users us ON us.id = u.user_id LEFT JOIN api_keys k ON k.id = u.api_key_id LEFT JOIN usage_bodies b ON b.usage_id = u.id
          WHERE u.id = $1`, [usageId]],
        ['SELECT c.* FROM request_candidates c JOIN usage u ON u.request_id = c.request_id WHERE u.id = $1 ORDER BY c.candidate_index, c.retry_index', [usageId]]
      ],
      compare: (api, raw) => api.id === raw[0]![0]?.id && api.request_id === raw[0]![0]?.request_id ? null : 'another record'
    }
  ]
}

/** One GET on a kept-alive connection with node:http, whose own cost per call is small beside fetch's (see bench/README.md). */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
function get (url: string, headers: Record<string, string>, signal: AbortSignal): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers, signal }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

async function timeEndpoint (url: string, headers: Record<string, string>, cancel: () => Promise<void>): Promise<{ status: number, body: Row, times: number[], steal: number | null }> {
  const call = async () => {
    const started = performance.now()
    try {
      const { status, text } = await get(url, headers, AbortSignal.timeout(CALL_LIMIT_MS))
      return { status, body: (text === '' ? {} : JSON.parse(text)) as Row, ms: performance.now() - started }
    } catch (error) {
      await cancel() // the server's query would otherwise run on and weigh on every later measurement
      return { status: 0, body: { error: { message: ['TimeoutError', 'AbortError'].includes((error as Error).name) ? `over ${CALL_LIMIT_MS / 1000} s, cancelled` : (error as Error).message } }, ms: 0 }
    }
  }
  let first = await call()
  if (first.status !== 200) return { status: first.status, body: first.body, times: [], steal: null }
  const warming = performance.now()
  for (let i = 1; (i < WARM_UPS || performance.now() - warming < WARM_UP_MS) && first.status === 200; i++) first = await call()
  if (first.status !== 200) return { status: first.status, body: first.body, times: [], steal: null }
  const times: number[] = []
  const steal = stealMeter()
  for (let i = 0; i < CALLS; i++) {
    const next = await call()
    if (next.status !== 200) return { status: next.status, body: next.body, times: [], steal: null }
    times.push(next.ms)
  }
  return { status: 200, body: first.body, times: times.sort((a, b) => a - b), steal: steal() }
}

/** The raw computation, RAW_RUNS times: its median and its (last) answer. */
export async function timeRaw (raw: pg.Client, c: Case): Promise<{ median: number, results: Row[][] }> {
  const runs: number[] = []
  let results: Row[][] = []
  for (let i = 0; i < RAW_RUNS; i++) {
    const started = performance.now()
    results = []
    for (const [sql, params] of c.raw) results.push((await raw.query(sql, params)).rows)
    runs.push(performance.now() - started)
  }
  return { median: median(runs), results }
}

export const line = (name: string, cells: string[], note: string) =>
  console.log(`${name.padEnd(46)}${cells.map((cell, i) => cell.padStart(i === 2 ? 10 : 9)).join('')}  ${note}`)

export async function stats (args: string[]): Promise<void> {
  await runCases(args, async (raw, end) => {
    const { rows: [sample] } = await raw.query(`SELECT u.id FROM usage u WHERE u.request_id = (SELECT request_id FROM request_candidates ORDER BY created_at DESC LIMIT 1)`)
    return cases(new Date(end.getTime() - 30 * 86_400_000), end, sample.id as string)
  })
}

/** Prepares the database, starts the server, and times each case through HTTP against its raw computation. */
export async function runCases (args: string[], build: (raw: pg.Client, end: Date) => Promise<Case[]>): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: 'string', default: '10000000' },
      reset: { type: 'boolean', default: false },
      only: { type: 'string' }, // the cases whose name contains this text
      'skip-raw': { type: 'boolean', default: false } // the endpoints alone: no raw query, no ratio
    }
  })
  const rows = Number(values.rows)
  if (!Number.isInteger(rows) || rows < 1) throw new Error('--rows must be a positive integer')
  const db = await database(rows, values.reset)
  try {
    await prepare(db.url, rows, db.ours)
    process.env.BENCH_DATABASE_URL = db.url // startBench: the server on this database
    const bench = await startBench()
    const raw = new pg.Client({ connectionString: db.url })
    await raw.connect()
    try {
      const admin = await bench.prisma.user.upsert({ where: { username: 'bench-admin' }, create: { username: 'bench-admin', passwordHash: '!bench', role: 'admin' }, update: {} })
      const { token } = await createSession(bench.prisma, bench.keyring, admin, 1, { ip: '127.0.0.1' })
      const headers = { authorization: `Bearer ${token}` }
      const cancelServerQueries = async () => {
        await raw.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state = 'active'`)
      }
      const { rows: [latest] } = await raw.query('SELECT max(created_at) AS at FROM usage')
      const end = new Date()
      if (end.getTime() - (latest.at as Date).getTime() > 86_400_000) console.log(`note: the newest usage row is from ${(latest.at as Date).toISOString()}; the 30-day windows end now`)
      const size = await raw.query(`SELECT pg_size_pretty(pg_total_relation_size('usage')) AS usage, (SELECT count(*) FROM usage_hourly) AS hourly, (SELECT count(*) FROM usage_hourly_model) AS coarse, (SELECT count(*) FROM usage_daily_key) AS daily`)
      console.log(`usage ${size.rows[0].usage}; rollup rows: usage_hourly ${fmt(Number(size.rows[0].hourly))}, usage_hourly_model ${fmt(Number(size.rows[0].coarse))}, usage_daily_key ${fmt(Number(size.rows[0].daily))}`)
      console.log(`${WARM_UPS} warm-up calls (and ${WARM_UP_MS / 1000} s at least), then ${CALLS} timed, each endpoint; the raw query ${RAW_RUNS} times (median)\n`)
      line('endpoint', ['p50 ms', 'p95 ms', 'raw ms', 'ratio'], 'same answer')
      for (const c of (await build(raw, end)).filter((c) => values.only === undefined || c.name.includes(values.only))) {
        const api = await timeEndpoint(`${bench.url}${c.path}`, headers, cancelServerQueries)
        if (api.status === 404) {
          line(c.name, [], 'not available')
          continue
        }
        if (values['skip-raw'] && api.status === 200) {
          line(c.name, [ms(percentile(api.times, 0.5)), ms(percentile(api.times, 0.95))], `(raw skipped)${stealNote(api.steal)}`)
          continue
        }
        const { median: rawMs, results } = await timeRaw(raw, c)
        if (api.status !== 200) {
          line(c.name, ['—', '—', ms(rawMs), '—'], api.status === 0 ? String(api.body.error.message) : `error ${api.status}: ${String(api.body.error?.message ?? '').slice(0, 60)}`)
          continue
        }
        const p50 = percentile(api.times, 0.5)
        line(c.name, [ms(p50), ms(percentile(api.times, 0.95)), ms(rawMs), `${fmt(rawMs / p50, rawMs / p50 < 10 ? 1 : 0)}×`], `${c.compare(api.body, results) ?? 'yes'}${stealNote(api.steal)}`)
      }
    } finally {
      await raw.end()
      await bench.close()
    }
  } finally {
    await db.stop()
  }
}
