// npm run bench -- stats [--rows N] [--reset]: the usage statistics endpoints on a
// seeded data set, through HTTP, against the statements Aether runs for the same
// endpoint (rewritten for our schema; each names the Aether function it follows and any
// deliberate difference), in the same run, on the same database. One line per endpoint:
// p50 / p95 of the endpoint, the statements' median, their ratio, and what both answer.
//
// The database: BENCH_DATABASE_URL when set (reused if it holds at least N usage rows,
// seeded if it is empty, refused otherwise unless --reset), else a persistent embedded
// cluster under ./.data/bench with one database per row count (keymeter_bench_<N>),
// seeded on first use and reused after (seeding is the slow part).
import { chmod, mkdir } from 'node:fs/promises'
import http from 'node:http'
import { loadavg } from 'node:os'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import sql, { join, raw, type Sql } from 'sql-template-tag'
import { applyMigrations } from '../src/db/migrate.js'
import { inTransaction } from '../src/db/prisma.js'
import { rebuildCacheData } from '../src/modules/accounting/cache/rebuild.js'
import { DERIVED_TABLES } from '../src/modules/accounting/model.js'
import { cacheEconomicsSql, tierPricesJoinSql } from '../src/modules/accounting/pricing.js'
import { createSession } from '../src/modules/auth/service.js'
import { progressReporter, summaryLine } from '../src/modules/seed/command.js'
import { seed } from '../src/modules/seed/service.js'
import { measureExports } from './export.js'
import { benchConfig, fmt, startBench, stealMeter, stealNote, type Bench } from './harness.js'

/** warm-up: at least this many calls, and for at least WARM_UP_MS (the JIT compiles each endpoint's code over its first hundred calls or so) */
const WARM_UPS = 20
const WARM_UP_MS = 2_000
const CALLS = 50
const RAW_RUNS = 3
/** a call slower than this is abandoned, its query cancelled, and the endpoint reported as too slow */
const CALL_LIMIT_MS = 60_000
const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000

export type Row = Record<string, any>

/** One of Aether's statements: fixed, or built from the answers of the ones before it (as Aether's code builds its next query from the last one's rows). */
export type Step = Sql | ((earlier: Row[][]) => Sql)

/** A table of Aether's own that we do not keep (its daily stats): built before the first timing, timed apart and not counted. */
export interface Setup { name: string, statements: Sql[] }

export interface Case {
  name: string
  path: string
  /** Aether's statements for the endpoint, run one after the other on one connection, timed together */
  raw: Step[]
  setup?: Setup
  /** null when the endpoint's answer matches Aether's, else what differs (and why, where known) */
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
    // every table the rollup model derives from usage rows, as autovacuum would have left them on a live system
    await pool.query(`VACUUM (ANALYZE) usage, request_candidates, ${DERIVED_TABLES.join(', ')}`)
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

/** The top rows of an aggregation: same keys and request counts, in the same order; `why` says what Aether counts otherwise. */
export const sameGroups = (key: string, why?: string) => (api: Row, raw: Row[][]) => {
  const got = (api as Row[]).map((r) => `${r[key]}=${r.request_count}`).join(' ')
  const want = raw[0]!.map((r) => `${r.key}=${r.requests}`).join(' ')
  return got === want ? null : `got ${got.slice(0, 60)}… Aether ${want.slice(0, 60)}…${why === undefined ? '' : ` (${why})`}`
}

/** A records page (Aether: raw[0] the count, raw[1] the page): the same rows in the same order, and the same total unless the endpoint says it estimated. */
export const samePage = (why?: string) => (api: Row, raw: Row[][]) => {
  const ids = (api.records as Row[]).map((r) => r.id as string)
  const aether = raw[1]!.map((r) => r.id as string)
  const total = Number(raw[0]![0]!.count)
  const notes: string[] = []
  if (ids.join() !== aether.join()) {
    const same = ids.length === aether.length && [...ids].sort().join() === [...aether].sort().join()
    notes.push(same ? 'same rows, ties on created_at in another order (Aether orders by it alone)' : 'another page of records')
  }
  if (api.total_is_estimate !== true && api.total !== total) notes.push(`total ${api.total}, Aether's count ${total}`)
  return notes.length === 0 ? null : `${notes.join('; ')}${why === undefined ? '' : ` (${why})`}`
}

/** /stats: the totals and the error count against Aether's three statements (raw[0] totals, raw[2] errors). */
export const sameTotals = (api: Row, raw: Row[][]) => {
  const r = raw[0]![0]!
  const errors = Number(raw[2]![0]!.count)
  const differs: string[] = []
  if (api.total_requests !== Number(r.requests)) differs.push(`requests ${api.total_requests} / ${r.requests}`)
  if (api.total_tokens !== Number(r.tokens ?? 0)) differs.push(`tokens ${api.total_tokens} / ${r.tokens}`)
  if (!near(api.total_cost, usd(r.cost))) differs.push(`cost ${api.total_cost} / ${usd(r.cost)}`)
  if (!near(api.total_actual_cost, usd(r.actual))) differs.push(`actual ${api.total_actual_cost} / ${usd(r.actual)}`)
  if (api.error_count !== errors) differs.push(`errors ${api.error_count} / ${errors}`)
  return differs.length === 0 ? null : `${differs.join(', ')} (Aether: every status in the window; errors by status code ≥ 400 or a message)`
}

/** A day's label in a zone, YYYY-MM-DD. */
export const localDay = (at: Date, zone: string) =>
  new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(at)

/**
 * The heatmap against Aether's (raw[0] its daily table's rows, raw[1] today's live count): every past
 * day's requests by the local day the row holds, then today apart, which Aether counts from UTC midnight.
 */
export const sameDays = (zone: string) => (api: Row, raw: Row[][]) => {
  const aether = new Map(raw[0]!.map((r) => [localDay(r.date as Date, zone), Number(r.total_requests)]))
  const days = api.days as Row[]
  const past = days.slice(0, -1)
  const today = days[days.length - 1]!
  const differing = past.filter((d) => d.requests !== (aether.get(d.date) ?? 0))
  const notes = [differing.length === 0
    ? `${past.length} past days same`
    : `${differing.length} of ${past.length} past days differ, e.g. ${differing[0]!.date}: ${differing[0]!.requests} / ${aether.get(differing[0]!.date) ?? 0} (Aether counts every status)`]
  notes.push(`today ${today.requests} / ${Number(raw[1]![0]!.requests)} (Aether: ${zone === 'UTC' ? '' : 'the UTC day, '}every status)`)
  const mislabelled = raw[0]!.some((r) => localDay(r.date as Date, zone) !== (r.date as Date).toISOString().slice(0, 10))
  if (mislabelled) notes.push('Aether labels each day by its start\'s UTC date, here the day before')
  return notes.join('; ')
}

/** A temporary table's name for a zone's daily stats (from the bench's own zone list, not input). */
const dailyTable = (zone: string) => raw(`bench_stats_daily_${zone.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`)

/**
 * Aether's stats_daily for APP_TIMEZONE = zone, as its StatsAggregatorService.compute_daily_stats
 * fills it (src/services/system/stats_aggregator.py): one row per local day, `date` the day's
 * start as an instant, over every usage row whatever its status. A temporary table on the
 * timing connection: it leaves nothing in the bench database.
 */
export function dailyStatsSetup (zone: string): Setup {
  const table = dailyTable(zone)
  return {
    name: `bench_stats_daily (${zone} days), Aether's stats_daily`,
    statements: [
      sql`DROP TABLE IF EXISTS ${table}`,
      sql`CREATE TEMP TABLE ${table} (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(), date timestamptz NOT NULL UNIQUE,
        total_requests bigint NOT NULL, success_requests bigint NOT NULL, error_requests bigint NOT NULL,
        input_tokens bigint NOT NULL, output_tokens bigint NOT NULL, cache_creation_tokens bigint NOT NULL, cache_read_tokens bigint NOT NULL,
        total_cost numeric NOT NULL, actual_total_cost numeric NOT NULL, input_cost numeric NOT NULL, output_cost numeric NOT NULL,
        cache_creation_cost numeric NOT NULL, cache_read_cost numeric NOT NULL, avg_response_time_ms double precision NOT NULL,
        fallback_count bigint NOT NULL, unique_models bigint NOT NULL, unique_providers bigint NOT NULL)`,
      sql`INSERT INTO ${table} (date, total_requests, success_requests, error_requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
          total_cost, actual_total_cost, input_cost, output_cost, cache_creation_cost, cache_read_cost, avg_response_time_ms, fallback_count, unique_models, unique_providers)
        SELECT day::timestamp AT TIME ZONE ${zone}, count(*), count(*) FILTER (WHERE NOT errored), count(*) FILTER (WHERE errored),
               sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens), sum(cache_read_input_tokens),
               sum(total_cost), sum(actual_total_cost), sum(input_cost), sum(output_cost), sum(cache_creation_cost), sum(cache_read_cost),
               coalesce(avg(response_time_ms), 0), 0, count(DISTINCT model), count(DISTINCT provider_name)
          FROM (SELECT u.*, (u.created_at AT TIME ZONE ${zone})::date AS day, coalesce(u.status_code >= 400, false) OR u.error_message IS NOT NULL AS errored FROM usage u) d
         GROUP BY day`,
      // Aether's fallback_count: requests with more than one candidate sent (success or failed) that day
      sql`UPDATE ${table} t SET fallback_count = f.requests
            FROM (SELECT day, count(*) AS requests FROM (
                    SELECT (min(created_at) AT TIME ZONE ${zone})::date AS day FROM request_candidates
                     WHERE status IN ('success', 'failed') GROUP BY request_id HAVING count(*) > 1) r GROUP BY day) f
           WHERE t.date = f.day::timestamp AT TIME ZONE ${zone}`,
      sql`ANALYZE ${table}`
    ]
  }
}

/** The UTC midnight starting the day of `at` (Aether's heatmap cuts its days in UTC). */
const utcMidnight = (at: Date) => new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS)

export function cases (start: Date, end: Date, usageId: string): Case[] {
  // Aether's window, created_at >= start AND created_at <= end (usage_created_at_idx, or a sequential scan where the planner prefers one)
  const window = sql`u.created_at >= ${start} AND u.created_at <= ${end}`
  const inRange = sql`c.created_at >= ${start} AND c.created_at <= ${end}`
  const query = `start_date=${encodeURIComponent(start.toISOString())}&end_date=${encodeURIComponent(end.toISOString())}`
  const aggregation = (groupBy: string, raw: Step[], why?: string): Case => ({
    name: `aggregation by ${groupBy} (30 days)`, path: `/api/admin/usage/aggregation/stats?group_by=${groupBy}&${query}`,
    raw, compare: sameGroups(groupBy === 'provider' ? 'provider_id' : groupBy === 'user' ? 'user_id' : groupBy, why)
  })
  const heatmap = (zone: string): Case => {
    // Aether's services/usage/service.py UsageService.get_daily_activity: 365 days ending today, cut at UTC midnight
    const todayStart = utcMidnight(end)
    const todayEnd = new Date(todayStart.getTime() + DAY_MS - 1)
    const first = new Date(todayStart.getTime() - 364 * DAY_MS)
    const table = dailyTable(zone)
    return {
      name: `heatmap (${zone})`, path: `/api/admin/usage/heatmap?timezone=${encodeURIComponent(zone)}`,
      setup: dailyStatsSetup(zone),
      raw: [
        // past days from its stats_daily (its unique index on date); Aether caches the answer 5 minutes in Redis, timed here uncached
        sql`SELECT * FROM ${table} WHERE date >= ${first} AND date < ${todayStart}`,
        // today live, every status (usage_created_at_idx)
        sql`SELECT count(u.id) AS requests, sum(u.total_tokens) AS total_tokens, sum(u.total_cost) AS total_cost, sum(u.actual_total_cost) AS actual_total_cost
              FROM usage u WHERE u.created_at >= ${todayStart} AND u.created_at <= ${todayEnd}`
      ],
      compare: sameDays(zone)
    }
  }
  // Aether's api/admin/usage/routes.py AdminUsageRecordsAdapter: the exact count of the filter, then the page (newest first, five tables joined), then the
  // page's sent candidates (fallback and retry flags) and its providers' names, each built from the page's rows
  const records = (label: string, params: string, where: Sql, why?: string): Case => {
    const joins = sql`FROM usage u LEFT JOIN users us ON us.id = u.user_id LEFT JOIN provider_endpoints e ON e.id = u.provider_endpoint_id
      LEFT JOIN provider_api_keys pk ON pk.id = u.provider_api_key_id LEFT JOIN api_keys k ON k.id = u.api_key_id LEFT JOIN providers p ON p.id = u.provider_id`
    return {
      name: `records, first page (${label})`, path: `/api/admin/usage/records?limit=100${params}`,
      raw: [
        sql`SELECT count(u.id) ${joins} WHERE ${where}`,
        // its load_only column list, renamed where the tables share a name; usage_created_at_idx read backwards
        sql`SELECT u.id, u.request_id, u.user_id, u.api_key_id, u.provider_name, u.provider_id, u.provider_endpoint_id, u.provider_api_key_id, u.model, u.target_model,
              u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.total_tokens, u.total_cost, u.actual_total_cost,
              u.rate_multiplier, u.response_time_ms, u.first_byte_time_ms, u.created_at, u.is_stream, u.status_code, u.error_message, u.status, u.api_format,
              u.metadata, pt.input_price_per_1m, pt.output_price_per_1m, pt.cache_write_5m_price_per_1m, pt.cache_read_price_per_1m,
              us.email, us.username, e.api_format AS endpoint_api_format, pk.name AS provider_key_name, k.name AS key_name, k.key_encrypted
            ${joins} ${raw(tierPricesJoinSql('u'))} WHERE ${where} ORDER BY u.created_at DESC LIMIT 100`,
        // request_candidates_request_id_candidate_index_retry_index_key (we keep no extra_data: Aether also reads it, for "rectified")
        (earlier) => sql`SELECT request_id, candidate_index, retry_index FROM request_candidates
          WHERE request_id = ANY(${earlier[1]!.map((r) => r.request_id as string)}) AND status IN ('success', 'failed')`,
        (earlier) => sql`SELECT id, name FROM providers WHERE id = ANY(${[...new Set(earlier[1]!.map((r) => r.provider_id as string | null).filter((id) => id !== null))]}::uuid[])`
      ],
      compare: samePage(why)
    }
  }
  // one keyword of Aether's search: user name, key name, model or provider name, ILIKE '%word%'
  const keyword = (word: string) => {
    const pattern = `%${word}%`
    return sql`(us.username ILIKE ${pattern} OR k.name ILIKE ${pattern} OR u.model ILIKE ${pattern} OR p.name ILIKE ${pattern})`
  }
  const unfinished = raw(`('pending', 'streaming')`)
  const noProvider = raw(`('unknown', 'pending')`)
  const finished = raw(`('completed', 'failed', 'cancelled')`)
  // analytics (issue 19): Aether has no statement in our bench for these, so the raw side is the plain GROUP BY they replace
  const analytics: Case[] = [
    {
      name: 'time-series (30 days, days in Asia/Kolkata)', path: `/api/admin/stats/time-series?${query}&granularity=day&timezone=Asia%2FKolkata`,
      raw: [sql`SELECT (u.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, count(*) AS requests FROM usage u
        WHERE u.status IN ${finished} AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1`],
      compare: (api, rows) => {
        const ours = (api as unknown as Row[]).reduce((sum, p) => sum + Number(p.total_requests), 0)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.requests), 0)
        return ours === theirs ? null : `requests ${ours} / ${theirs}`
      }
    },
    // the filtered series read their cut hours from raw rows (docs/statistics.md, "Cut hours of filtered requests"): one each, by the usage index that serves it
    ...([['model=claude-sonnet-4', sql`u.model = 'claude-sonnet-4'`], ['provider_id=anthropic', sql`u.provider_id = (SELECT id FROM providers WHERE name = 'anthropic')`],
      ['api_format=openai%3Achat', sql`u.api_format = 'openai:chat'`]] as const).map(([filter, where]): Case => ({
      name: `time-series (30 days, days in Asia/Kolkata, ${decodeURIComponent(filter)})`, path: `/api/admin/stats/time-series?${query}&granularity=day&timezone=Asia%2FKolkata&${filter}`,
      raw: [sql`SELECT (u.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, count(*) AS requests FROM usage u
        WHERE u.status IN ${finished} AND u.created_at >= ${start} AND u.created_at < ${end} AND ${where} GROUP BY 1`],
      compare: (api, rows) => {
        const ours = (api as unknown as Row[]).reduce((sum, p) => sum + Number(p.total_requests), 0)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.requests), 0)
        return ours === theirs ? null : `requests ${ours} / ${theirs}`
      }
    })),
    {
      name: 'leaderboard/users (30 days, by cost)', path: `/api/admin/stats/leaderboard/users?${query}&metric=cost`,
      raw: [sql`SELECT u.user_id, sum(u.total_cost) AS cost FROM usage u WHERE u.status IN ${finished} AND u.provider_id IS NOT NULL
        AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`],
      compare: (api, rows) => (api.items as Row[])[0]?.id === rows[0]![0]?.user_id ? null : 'another leader'
    },
    // the other boards: the plain GROUP BY each ranks, its leader compared
    ...([['api-keys', 'tokens', 'u.api_key_id', 'sum(u.total_tokens)'], ['models', 'requests', 'u.model', 'count(*)'], ['providers', 'cost', 'u.provider_id', 'sum(u.total_cost)']] as const)
      .map(([board, metric, key, value]): Case => ({
        name: `leaderboard/${board} (30 days, by ${metric})`, path: `/api/admin/stats/leaderboard/${board}?${query}&metric=${metric}`,
        raw: [sql`SELECT ${raw(key)} AS id, ${raw(value)} AS value FROM usage u WHERE u.status IN ${finished} AND ${raw(key)} IS NOT NULL
          AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`],
        compare: (api, rows) => {
          const leader = (api.items as Row[])[0]
          return leader !== undefined && [leader.id, leader.name].includes(rows[0]![0]?.id) ? null : `leader ${leader?.name as string} / ${rows[0]![0]?.id as string}`
        }
      })),
    {
      // the raw side: the two periods' finished rows counted
      name: 'comparison (30 days against the 30 before)', path: `/api/admin/stats/comparison?${query}&comparison_type=period`,
      raw: [sql`SELECT count(*) FILTER (WHERE u.created_at >= ${start}) AS current, count(*) FILTER (WHERE u.created_at < ${start}) AS previous FROM usage u
        WHERE u.status IN ${finished} AND u.created_at >= ${start}::timestamptz - (${end}::timestamptz - ${start}::timestamptz) AND u.created_at < ${end}`],
      compare: (api, rows) => {
        const [ours, theirs] = [[Number((api.current as Row).total_requests), Number((api.comparison as Row).total_requests)], [Number(rows[0]![0]!.current), Number(rows[0]![0]!.previous)]]
        return ours[0] === theirs[0] && ours[1] === theirs[1] ? null : `requests ${ours.join('/')} against ${theirs.join('/')}`
      }
    },
    {
      // the raw side: what each provider's requests cost the operator since the first of the month (providers.monthly_used counts it from its reset day)
      name: 'providers/quota-usage', path: '/api/admin/stats/providers/quota-usage',
      raw: [sql`SELECT u.provider_id, sum(u.actual_total_cost) AS used FROM usage u
        WHERE u.status IN ${finished} AND u.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' GROUP BY 1`],
      compare: (api, rows) => {
        const listed = api.providers as Row[]
        if (listed.length === 0) return 'no provider with a monthly quota in the data set: nothing to compare'
        const used = new Map(rows[0]!.map((r) => [r.provider_id as string, usd(r.used)]))
        const off = listed.filter((p) => !near(Number(p.used_usd), used.get(p.id as string) ?? 0))
        return off.length === 0 ? null : `${off.length} providers' used differ (a reset day other than the 1st counts from it)`
      }
    },
    {
      // the raw side: finished rows per tag of their keys' current tags (a key without tags: null)
      name: 'tags (30 days, spend by tag)', path: `/api/admin/stats/tags?${query}`,
      raw: [sql`SELECT t.tag, count(*) AS requests FROM usage u LEFT JOIN api_keys k ON k.id = u.api_key_id
          CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(k.tags) = 'array' AND jsonb_array_length(k.tags) > 0 THEN k.tags ELSE '[null]'::jsonb END) AS t(tag)
        WHERE u.status IN ${finished} AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1`],
      compare: (api, rows) => {
        const ours = (api.items as Row[]).reduce((sum, r) => sum + Number(r.requests), 0)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.requests), 0)
        return ours === theirs ? null : `requests ${ours} / ${theirs}`
      }
    },
    {
      // the raw side: the gross saving per model priced row by row with the same rule (accounting/pricing.ts cacheEconomicsSql)
      name: 'cost/savings (30 days, by model and provider)', path: `/api/admin/stats/cost/savings?${query}`,
      raw: [sql`SELECT u.model, u.provider_id, sum(u.cache_read_input_tokens) AS read_tokens, sum(u.cache_read_cost) AS read_cost,
        COALESCE(sum(${cacheEconomicsSql('u.', 'pt.').readSaving}), 0) AS saving FROM usage u ${raw(tierPricesJoinSql('u'))}
        WHERE u.status IN ${finished} AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1, 2`],
      compare: (api, rows) => {
        const ours = Number(api.cache_read_tokens)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.read_tokens), 0)
        const saving = rows[0]!.reduce((sum, r) => sum + usd(r.saving), 0)
        return ours === theirs && near(Number(api.cache_savings), saving) ? null : `read tokens ${ours} / ${theirs}, saving ${api.cache_savings} / ${saving}`
      }
    },
    {
      // the raw side: the 56 days' cost per local day (the fit itself is microseconds)
      name: 'cost/forecast (56 days of history, Asia/Kolkata)', path: '/api/admin/stats/cost/forecast?timezone=Asia%2FKolkata',
      raw: [sql`SELECT (u.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, sum(u.total_cost) AS cost FROM usage u
        WHERE u.status IN ${finished} AND u.created_at >= now() - interval '57 days' GROUP BY 1`],
      compare: (api, rows) => {
        const days = new Map(rows[0]!.map((r) => [new Date(r.day as Date).toISOString().slice(0, 10), usd(r.cost)]))
        const off = (api.history as Row[]).filter((d) => !near(Number(d.total_cost), days.get(d.date as string) ?? 0))
        return off.length === 0 ? null : `${off.length} days differ (first ${off[0]!.date})`
      }
    },
    // the exact percentiles the histograms stand in for: percentile_disc per local day over every finished row;
    // Berlin's days are whole UTC hours, Kolkata's midnight cuts an hour a day (read by quarter-hour)
    ...([['Europe/Berlin', ''], ['Asia/Kolkata', ''], ['Asia/Kolkata', 'provider']] as const).map(([zone, group]) => ({
      name: `performance/percentiles (30 days, days in ${zone}${group === '' ? '' : `, by ${group}`})`,
      path: `/api/admin/stats/performance/percentiles?${query}&timezone=${encodeURIComponent(zone)}${group === '' ? '' : `&group_by=${group}`}`,
      raw: [sql`SELECT (u.created_at AT TIME ZONE ${zone})::date AS day, ${group === '' ? sql`NULL` : sql`u.provider_id`} AS g, count(u.response_time_ms) AS samples,
          percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY u.response_time_ms) AS rt,
          percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY u.first_byte_time_ms) AS fb
        FROM usage u WHERE u.status IN ${finished} AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1, 2`],
      compare: (api: Row, rows: Row[][]) => {
        const ours = (api as unknown as Row[]).reduce((sum, p) => sum + Number(p.response_time_samples), 0)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.samples), 0)
        return ours === theirs ? null : `samples ${ours} / ${theirs}`
      }
    })),
    {
      // the plain GROUP BY of the failed rows per local day and status class
      name: 'errors/distribution (30 days, days in Asia/Kolkata)', path: `/api/admin/stats/errors/distribution?${query}&timezone=Asia%2FKolkata`,
      raw: [sql`SELECT (u.created_at AT TIME ZONE 'Asia/Kolkata')::date AS day, u.status_code / 100 AS class, count(*) AS failed FROM usage u
        WHERE u.status = 'failed' AND u.created_at >= ${start} AND u.created_at < ${end} GROUP BY 1, 2`],
      compare: (api, rows) => {
        const ours = Number(api.total)
        const theirs = rows[0]!.reduce((sum, r) => sum + Number(r.failed), 0)
        return ours === theirs ? null : `failed ${ours} / ${theirs}`
      }
    }
  ]
  return [
    ...analytics,
    {
      // Aether's api/admin/usage/routes.py AdminUsageStatsAdapter (before its stats_aggregator): three statements over every row of the window
      name: 'stats (30 days)', path: `/api/admin/usage/stats?${query}`,
      raw: [
        sql`SELECT count(u.id) AS requests, sum(u.total_tokens) AS tokens, sum(u.total_cost) AS cost, sum(u.actual_total_cost) AS actual, avg(u.response_time_ms) AS avg_ms
              FROM usage u WHERE ${window}`,
        sql`SELECT sum(u.cache_creation_input_tokens), sum(u.cache_read_input_tokens), sum(u.cache_creation_cost), sum(u.cache_read_cost) FROM usage u WHERE ${window}`,
        // its Query.count() wraps the filter in a subquery; PostgreSQL flattens that to this
        sql`SELECT count(*) FROM usage u WHERE ${window} AND (u.status_code >= 400 OR u.error_message IS NOT NULL)`
      ],
      compare: sameTotals
    },
    // Aether's api/admin/usage/routes.py AdminUsageByModelAdapter; ties broken by the key (Aether leaves them to the plan) so the order compares
    aggregation('model', [sql`SELECT u.model AS key, count(u.id) AS requests, sum(u.total_tokens), sum(u.total_cost), sum(u.actual_total_cost)
      FROM usage u WHERE u.status NOT IN ${unfinished} AND u.provider_name NOT IN ${noProvider} AND ${window}
      GROUP BY u.model ORDER BY requests DESC, key LIMIT 20`]),
    // Aether's api/admin/usage/routes.py AdminUsageByUserAdapter: no status filter; ties broken by the key
    aggregation('user', [sql`SELECT us.id AS key, us.email, us.username, count(u.id) AS requests, sum(u.total_tokens), sum(u.total_cost)
      FROM users us JOIN usage u ON u.user_id = us.id WHERE ${window}
      GROUP BY us.id, us.email, us.username ORDER BY requests DESC, key LIMIT 20`], 'Aether counts in-flight rows too'),
    // Aether's api/admin/usage/routes.py AdminUsageByProviderAdapter: two plain GROUP BYs, attempts from the candidates sent (request_candidates_provider_id_created_at_idx) and
    // sums from usage, then the providers' names by id; ties broken by the key
    aggregation('provider', [
      sql`SELECT c.provider_id AS key, count(c.id) AS requests, count(*) FILTER (WHERE c.status = 'success') AS successes,
            count(*) FILTER (WHERE c.status = 'failed') AS failures, avg(c.latency_ms)
          FROM request_candidates c WHERE c.provider_id IS NOT NULL AND c.status IN ('success', 'failed') AND ${inRange}
          GROUP BY c.provider_id ORDER BY requests DESC, key LIMIT 20`,
      sql`SELECT u.provider_id, count(u.id), sum(u.total_tokens), sum(u.total_cost), sum(u.actual_total_cost), avg(u.response_time_ms)
          FROM usage u WHERE u.provider_id IS NOT NULL AND u.status NOT IN ${unfinished} AND ${window} GROUP BY u.provider_id`,
      (earlier) => sql`SELECT id, name FROM providers WHERE id = ANY(${[...new Set([...earlier[0]!.map((r) => r.key as string), ...earlier[1]!.map((r) => r.provider_id as string)])]}::uuid[])`
    ], 'Aether counts candidate rows only; keymeter also counts a finished request without candidates as one attempt, and the seed writes candidates for fallbacks only'),
    // Aether's api/admin/usage/routes.py AdminUsageByApiFormatAdapter; ties broken by the key
    aggregation('api_format', [sql`SELECT u.api_format AS key, count(u.id) AS requests, sum(u.total_tokens), sum(u.total_cost), sum(u.actual_total_cost), avg(u.response_time_ms)
      FROM usage u WHERE u.status NOT IN ${unfinished} AND u.provider_name NOT IN ${noProvider} AND u.api_format IS NOT NULL AND ${window}
      GROUP BY u.api_format ORDER BY requests DESC, key LIMIT 20`]),
    heatmap('UTC'),
    heatmap('Asia/Kolkata'),
    records('no filter', '', sql`true`),
    // AdminUsageRecordsAdapter's model filter before it added `search` (later versions match the model exactly); usage_model_created_at_idx cannot serve '%…%'
    records('model = claude-sonnet-4', '&model=claude-sonnet-4', sql`u.model ILIKE ${'%claude-sonnet-4%'}`, 'Aether: ILIKE \'%claude-sonnet-4%\', which also matches longer names'),
    // the filter boxes match substrings, case-insensitively (issue 16): many users are alice.*, two providers open*; the same match written as ILIKE over the joins
    records('username ~ alice', '&username=alice', sql`us.username ILIKE ${'%alice%'}`),
    records('provider ~ open', '&provider=open', sql`p.name ILIKE ${'%open%'}`),
    records('search "alice sonnet"', '&search=alice%20sonnet', join([keyword('alice'), keyword('sonnet')], ' AND ')),
    records('status = error', '&status=error', sql`(u.status_code >= 400 OR u.error_message IS NOT NULL)`, 'Aether: a status code ≥ 400 or a message, whatever the status'),
    {
      // Aether's api/admin/usage/routes.py AdminUsageDetailAdapter: the row (its bodies live in it; ours in usage_bodies), then its user, key, provider and provider key
      // by primary key; left out: its tier lookup in the price configuration. It reads no candidates (keymeter's detail returns them)
      name: 'detail (a fallback with candidates)', path: `/api/admin/usage/${usageId}`,
      raw: [
        sql`SELECT u.*, b.request_headers, b.response_headers, b.request_body, b.response_body FROM usage u LEFT JOIN usage_bodies b ON b.usage_id = u.id WHERE u.id = ${usageId}::uuid`,
        (earlier) => sql`SELECT * FROM users WHERE id = ${earlier[0]![0]?.user_id ?? null}::uuid`,
        (earlier) => sql`SELECT * FROM api_keys WHERE id = ${earlier[0]![0]?.api_key_id ?? null}::uuid`,
        (earlier) => sql`SELECT * FROM providers WHERE id = ${earlier[0]![0]?.provider_id ?? null}::uuid`,
        (earlier) => sql`SELECT * FROM provider_api_keys WHERE id = ${earlier[0]![0]?.provider_api_key_id ?? null}::uuid`
      ],
      compare: (api, raw) => api.id === raw[0]![0]?.id && api.request_id === raw[0]![0]?.request_id ? null : 'another record'
    },
    {
      // Aether's api/dashboard/routes.py AdminDashboardStatsAdapter on its real-time path (what it runs while its stats_summary and
      // stats_daily are empty): all time, 30 days, today, yesterday, today's response time, the 30 days' fallbacks over candidates
      name: 'dashboard stats (admin)', path: '/api/dashboard/stats',
      raw: [
        sql`SELECT count(*) AS requests, count(*) FILTER (WHERE u.status_code >= 400 OR u.error_message IS NOT NULL) AS errors, sum(u.input_tokens), sum(u.output_tokens),
              sum(u.cache_creation_input_tokens), sum(u.cache_read_input_tokens), sum(u.total_cost), sum(u.actual_total_cost) FROM usage u`,
        sql`SELECT count(*), count(*) FILTER (WHERE u.status_code >= 400 OR u.error_message IS NOT NULL), sum(u.total_cost), sum(u.actual_total_cost), sum(u.total_tokens),
              sum(u.cache_creation_input_tokens), sum(u.cache_read_input_tokens) FROM usage u WHERE u.created_at >= ${utcMidnight(start)}`,
        sql`SELECT count(*), sum(u.total_cost), sum(u.actual_total_cost), sum(u.input_tokens), sum(u.output_tokens), sum(u.cache_creation_input_tokens), sum(u.cache_read_input_tokens)
              FROM usage u WHERE u.created_at >= ${utcMidnight(end)}`,
        sql`SELECT count(*), sum(u.total_cost), sum(u.input_tokens), sum(u.output_tokens), sum(u.cache_creation_input_tokens), sum(u.cache_read_input_tokens)
              FROM usage u WHERE u.created_at >= ${new Date(utcMidnight(end).getTime() - DAY_MS)} AND u.created_at < ${utcMidnight(end)}`,
        sql`SELECT avg(u.response_time_ms) FROM usage u WHERE u.created_at >= ${utcMidnight(end)} AND u.status_code = 200 AND u.response_time_ms IS NOT NULL`,
        sql`SELECT count(*) FROM (SELECT c.request_id FROM request_candidates c WHERE c.created_at >= ${utcMidnight(start)} AND c.status IN ('success', 'failed')
              GROUP BY c.request_id HAVING count(c.id) > 1) f`,
        sql`SELECT count(*), count(*) FILTER (WHERE is_active) FROM api_keys`
      ],
      compare: (api, raw) => {
        const requests = Number(raw[0]![0]!.requests)
        const ours = Number(String(api.stats[0].value).replaceAll(',', ''))
        return ours === requests ? null : `all-time requests ${ours} / ${requests} (Aether counts every status; keymeter finished requests)`
      }
    },
    {
      // Aether's api/dashboard/routes.py DashboardDailyStatsAdapter (time-range path, admin, 7 UTC days): per-day totals (its hourly table
      // stands in as one GROUP BY), each day's distinct models and providers, the model summary, each day's model breakdown, the provider summary
      name: 'dashboard daily-stats (admin, 7 days)', path: '/api/dashboard/daily-stats?days=7',
      raw: (() => {
        const first = new Date(utcMidnight(end).getTime() - 6 * DAY_MS)
        const last = new Date(utcMidnight(end).getTime() + DAY_MS)
        const days = Array.from({ length: 7 }, (_v, i) => new Date(first.getTime() + i * DAY_MS))
        return [
          sql`SELECT date_trunc('day', u.created_at, 'UTC') AS day, count(*) AS requests, sum(u.total_tokens), sum(u.total_cost), avg(u.response_time_ms)
                FROM usage u WHERE u.created_at >= ${first} AND u.created_at < ${last} GROUP BY 1 ORDER BY 1`,
          ...days.map((day) => sql`SELECT count(DISTINCT u.model), count(DISTINCT u.provider_name) FROM usage u
                WHERE u.created_at >= ${day} AND u.created_at < ${new Date(day.getTime() + DAY_MS)}`),
          sql`SELECT u.model, count(u.id), sum(u.total_tokens), sum(u.total_cost) FROM usage u WHERE u.created_at >= ${first} AND u.created_at < ${last}
                GROUP BY u.model ORDER BY sum(u.total_cost) DESC`,
          ...days.map((day) => sql`SELECT u.model, count(u.id), sum(u.total_tokens), sum(u.total_cost) FROM usage u
                WHERE u.created_at >= ${day} AND u.created_at < ${new Date(day.getTime() + DAY_MS)} GROUP BY u.model`),
          sql`SELECT u.provider_name, count(u.id), sum(u.total_tokens), sum(u.total_cost) FROM usage u WHERE u.created_at >= ${first} AND u.created_at < ${last}
                GROUP BY u.provider_name`
        ]
      })(),
      compare: (api, raw) => {
        const aether = new Map(raw[0]!.map((r) => [(r.day as Date).toISOString().slice(0, 10), Number(r.requests)]))
        const differing = (api.daily_stats as Row[]).filter((d) => d.requests !== (aether.get(d.date as string) ?? 0))
        return differing.length === 0 ? null : `${differing.length} of 7 days' requests differ, e.g. ${differing[0]!.date}: ${differing[0]!.requests} / ${aether.get(differing[0]!.date as string) ?? 0} (Aether counts every status)`
      }
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
      // the answer's whole body received; the client's parsing of it (~8 ms for the timeline's 1 MB) is not the endpoint's
      const ms = performance.now() - started
      return { status, body: (text === '' ? {} : JSON.parse(text)) as Row, ms }
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

/** What timeRaw needs of a connection (a pg.Client fits). */
export interface Queryable { query: (statement: Sql) => Promise<{ rows: Row[] }> }

/** Aether's statements in order, each step built from the answers before it: the answers. */
export async function runSteps (db: Queryable, steps: Step[]): Promise<Row[][]> {
  const results: Row[][] = []
  for (const step of steps) results.push((await db.query(typeof step === 'function' ? step(results) : step)).rows)
  return results
}

/** Aether's statements, RAW_RUNS times: their median and their (last) answers. */
/**
 * Aether's statements for a case, RAW_RUNS times; each run starts as each of Aether's admin
 * calls does, by loading its user by primary key (its 401 用户不存在或已禁用, AETHER.md §1,
 * is that check's answer): `adminId`, the bench's admin.
 */
export async function timeRaw (db: Queryable, c: Case, adminId: string): Promise<{ median: number, results: Row[][] }> {
  const runs: number[] = []
  let results: Row[][] = []
  for (let i = 0; i < RAW_RUNS; i++) {
    const started = performance.now()
    await db.query(sql`SELECT * FROM users WHERE id = ${adminId}::uuid`)
    results = await runSteps(db, c.raw)
    runs.push(performance.now() - started)
  }
  return { median: median(runs), results }
}

/** Runs each distinct setup of the cases once, in order, and says how long each took (not counted in any timing). */
export async function runSetups (db: Queryable, selected: Case[], say: (text: string) => void): Promise<void> {
  const done = new Set<string>()
  for (const { setup } of selected) {
    if (setup === undefined || done.has(setup.name)) continue
    done.add(setup.name)
    const started = performance.now()
    for (const statement of setup.statements) await db.query(statement)
    say(`setup: ${setup.name} built in ${ms(performance.now() - started)} ms (once, before the timings; not counted)`)
  }
}

/** Sets an environment variable for the time of `work`, then puts back what was there: one bench's database must not outlive it in the next's environment. */
export async function withEnv<T> (name: string, value: string, work: () => Promise<T>): Promise<T> {
  const before = process.env[name]
  process.env[name] = value
  try {
    return await work()
  } finally {
    if (before === undefined) delete process.env[name]
    else process.env[name] = before
  }
}

/** The machine's load average and CPU steal over a one-second sample, for the head of a run. */
export async function machineLine (): Promise<string> {
  const steal = stealMeter()
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  const percent = steal()
  return `machine: load average ${loadavg().map((value) => value.toFixed(2)).join(', ')} (1, 5, 15 min)${percent === null ? '' : `; steal ${percent}% (1 s sample)`}`
}

export const line = (name: string, cells: string[], note: string) =>
  console.log(`${name.padEnd(46)}${cells.map((cell, i) => cell.padStart(i === 2 ? 10 : 9)).join('')}  ${note}`)

export async function stats (args: string[]): Promise<void> {
  await runCases(args, async (raw, end) => {
    const { rows: [sample] } = await raw.query(`SELECT u.id FROM usage u WHERE u.request_id = (SELECT request_id FROM request_candidates ORDER BY created_at DESC LIMIT 1)`)
    return cases(new Date(end.getTime() - 30 * DAY_MS), end, sample.id as string)
  }, measureExports)
}

/** What a bench runs after its cases, on the same server and database. */
type After = (bench: Bench, raw: pg.Client, headers: Record<string, string>, end: Date, wanted: (name: string) => boolean) => Promise<void>

/** Prepares the database, starts the server, and times each case through HTTP against Aether's statements. */
export async function runCases (args: string[], build: (raw: pg.Client, end: Date) => Promise<Case[]>, after?: After): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: 'string', default: '10000000' },
      reset: { type: 'boolean', default: false },
      only: { type: 'string' }, // the cases whose name contains this text
      'skip-raw': { type: 'boolean', default: false }, // the endpoints alone: no raw query, no ratio
      // the windows end at the last whole UTC hour instead of now: both ends whole hours, so no raw edge rows (what a range costs without them)
      align: { type: 'boolean', default: false }
    }
  })
  const rows = Number(values.rows)
  if (!Number.isInteger(rows) || rows < 1) throw new Error('--rows must be a positive integer')
  console.log(await machineLine())
  const db = await database(rows, values.reset)
  try {
    await prepare(db.url, rows, db.ours)
    // the server on this database; the variable is put back, so a second bench in the same command starts its own
    const bench = await withEnv('BENCH_DATABASE_URL', db.url, startBench)
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
      const end = values.align ? new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS) : new Date()
      if (end.getTime() - (latest.at as Date).getTime() > DAY_MS) console.log(`note: the newest usage row is from ${(latest.at as Date).toISOString()}; the 30-day windows end now`)
      const size = await raw.query(`SELECT pg_size_pretty((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'usage'::regclass)) AS usage, (SELECT count(*) FROM usage_hourly) AS hourly, (SELECT count(*) FROM usage_hourly_model) AS coarse, (SELECT count(*) FROM usage_daily_key) AS daily`)
      console.log(`usage ${size.rows[0].usage}; rollup rows: usage_hourly ${fmt(Number(size.rows[0].hourly))}, usage_hourly_model ${fmt(Number(size.rows[0].coarse))}, usage_daily_key ${fmt(Number(size.rows[0].daily))}`)
      const selected = (await build(raw, end)).filter((c) => values.only === undefined || c.name.includes(values.only))
      if (!values['skip-raw']) await runSetups(raw, selected, console.log)
      console.log(`${WARM_UPS} warm-up calls (and ${WARM_UP_MS / 1000} s at least), then ${CALLS} timed, each endpoint; Aether's statements ${RAW_RUNS} times (median)`)
      console.log(`${await machineLine()}\n`)
      line('endpoint', ['p50 ms', 'p95 ms', 'Aether ms', 'ratio'], 'same answer')
      for (const c of selected) {
        const api = await timeEndpoint(`${bench.url}${c.path}`, headers, cancelServerQueries)
        if (api.status === 404) {
          line(c.name, [], 'not available')
          continue
        }
        if (values['skip-raw'] && api.status === 200) {
          line(c.name, [ms(percentile(api.times, 0.5)), ms(percentile(api.times, 0.95))], `(raw skipped)${stealNote(api.steal)}`)
          continue
        }
        const { median: rawMs, results } = await timeRaw(raw, c, admin.id)
        if (api.status !== 200) {
          line(c.name, ['—', '—', ms(rawMs), '—'], api.status === 0 ? String(api.body.error.message) : `error ${api.status}: ${String(api.body.error?.message ?? '').slice(0, 60)}`)
          continue
        }
        const p50 = percentile(api.times, 0.5)
        line(c.name, [ms(p50), ms(percentile(api.times, 0.95)), ms(rawMs), `${fmt(rawMs / p50, rawMs / p50 < 10 ? 1 : 0)}×`], `${c.compare(api.body, results) ?? 'yes'}${stealNote(api.steal)}`)
      }
      if (after !== undefined) await after(bench, raw, headers, end, (name) => values.only === undefined || name.includes(values.only))
      console.log(`\n${await machineLine()}`)
    } finally {
      await raw.end()
      await bench.close()
    }
  } finally {
    await db.stop()
  }
}
