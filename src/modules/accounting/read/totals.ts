// Totals of finished requests over a range, overall, per user and grouped (model,
// api_format, provider, user), and the heatmap's local days (the shared pg pool;
// unnamed statements, so each is planned with its parameter values).
//
// Whole hours (and whole UTC days) come from the rollups, the ragged edges of a range
// from raw usage rows (lib/spans.ts plans the cut); a raw row is shaped exactly like the
// contribution ingestion adds to a rollup (src/modules/usage/rollups.ts), so the two
// halves add up to what a GROUP BY over the raw rows gives.
import sql, { empty, raw, type Sql as Fragment } from 'sql-template-tag'
import { candidatesOfSql } from '../../../db/partitions.js'
import { prepared, type Sql } from '../../../db/prisma.js'
import type { DayPlan, HourPlan, QuarterDayPlan, QuarterHourPlan } from '../../../lib/spans.js'
import { EARLIEST_INSTANT, INSTANT_LIMIT, localDate } from '../../../lib/time.js'
import { REACHED_PROVIDER } from '../model.js'
import { executedSql, finishedSql, settledBefore } from '../rules.js'
import { count, big, RAW_MEASURES, ROLLUP_MEASURES, SUMS, within, withinEither } from './sql.js'

const FINISHED = finishedSql('u')
// the requests the groupings count: a rollup row of a provider that exists, a raw row that reached one (model.ts REACHED_PROVIDER)
const EXISTING = raw(REACHED_PROVIDER.rollup('r'))
const REACHED = raw(REACHED_PROVIDER.raw('u'))
const EXECUTED = executedSql('c')

/** Sums over finished requests: money in nano-USD. */
export interface Totals {
  requests: number
  errors: number
  totalTokens: number
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeSumMs: number
  responseTimeCount: number
  cacheCreationTokens: number
  cacheReadTokens: number
  cacheCreationCost: bigint
  cacheReadCost: bigint
}

const toTotals = (row: Record<string, unknown>): Totals => ({
  requests: count(row.requests),
  errors: count(row.errors),
  totalTokens: count(row.total_tokens),
  totalCost: big(row.total_cost),
  actualTotalCost: big(row.actual_total_cost),
  responseTimeSumMs: count(row.response_time_sum_ms),
  responseTimeCount: count(row.response_time_count),
  cacheCreationTokens: count(row.cache_creation_tokens),
  cacheReadTokens: count(row.cache_read_tokens),
  cacheCreationCost: big(row.cache_creation_cost),
  cacheReadCost: big(row.cache_read_cost)
})

const BUCKET = raw('r.bucket')
const CREATED = raw('u.created_at')

/**
 * Every finished request in the range. usage_hourly_provider primary key (bucket, …) for the whole
 * hours, usage_quarter_hourly_global (bucket) for the whole quarter-hours beside them, usage
 * (created_at) for what is left inside a quarter-hour.
 */
export async function globalTotals (db: Sql, plan: QuarterHourPlan): Promise<Totals> {
  const { rows } = await db.query(sql`
    SELECT ${SUMS} FROM (
      SELECT ${ROLLUP_MEASURES} FROM usage_hourly_provider r WHERE ${within(BUCKET, plan.hours)}
      UNION ALL
      SELECT ${ROLLUP_MEASURES} FROM usage_quarter_hourly_global r WHERE ${withinEither(BUCKET, plan.quarters)}
      UNION ALL
      SELECT ${RAW_MEASURES} FROM usage u WHERE ${FINISHED} AND ${withinEither(CREATED, plan.ragged)}
    ) p`)
  return toTotals(rows[0])
}

/** One user's finished requests in the range. usage_hourly (user_id, bucket); usage (user_id, created_at) for the edges. */
export async function userTotals (db: Sql, userId: string, plan: HourPlan): Promise<Totals> {
  const { rows } = await db.query(sql`
    SELECT ${SUMS} FROM (
      SELECT ${ROLLUP_MEASURES} FROM usage_hourly r WHERE r.user_id = ${userId} AND ${within(BUCKET, plan.hours)}
      UNION ALL
      SELECT ${RAW_MEASURES} FROM usage u WHERE u.user_id = ${userId} AND ${FINISHED} AND ${withinEither(CREATED, plan.edges)}
    ) p`)
  return toTotals(rows[0])
}

export type Grouped = Totals & { key: string }

const toGrouped = (row: Record<string, unknown>): Grouped => ({ key: row.key as string, ...toTotals(row) })

/** The UTC days of a DayPlan, as dates, for the daily rollups' `day` column. */
const DAY = raw('r.day')
export const daysOf = (plan: DayPlan): Fragment =>
  sql`${DAY} >= (${plan.days.from}::timestamptz AT TIME ZONE 'UTC')::date AND ${DAY} < (${plan.days.to}::timestamptz AT TIME ZONE 'UTC')::date`

/**
 * Aggregations leave out requests that reached no provider: a rollup row counts when its
 * provider exists (absent is the nil uuid; a deleted provider's rows are SET NULL in
 * usage, so the rollup must forget them too), a raw row when provider_id is set.
 * Whole UTC days from usage_daily_model (day × provider × model × format; primary key
 * (day, …)), the whole hours beside them from usage_hourly_model (bucket, …), the whole
 * quarter-hours beside those from usage_quarter_hourly_model (bucket, …), the rest raw
 * through usage (created_at).
 */
const groupedByDay = (rollupKey: Fragment, rawKey: Fragment, plan: QuarterDayPlan, limit: number): Fragment => sql`
  SELECT key, ${SUMS} FROM (
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM usage_daily_model r
     WHERE ${daysOf(plan)}
       AND ${EXISTING}
    UNION ALL
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM usage_hourly_model r
     WHERE ${withinEither(BUCKET, plan.hours)} AND ${EXISTING}
    UNION ALL
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM usage_quarter_hourly_model r
     WHERE ${withinEither(BUCKET, plan.quarters)} AND ${EXISTING}
    UNION ALL
    SELECT ${rawKey} AS key, ${RAW_MEASURES} FROM usage u
     WHERE ${FINISHED} AND ${withinEither(CREATED, plan.ragged)} AND ${REACHED}
  ) p
  GROUP BY key HAVING sum(requests) <> 0
  ORDER BY requests DESC, key LIMIT ${limit}`

export async function totalsByModel (db: Sql, plan: QuarterDayPlan, limit: number): Promise<Grouped[]> {
  return (await db.query(groupedByDay(raw('r.model'), raw('u.model'), plan, limit))).rows.map(toGrouped)
}

/** A request without a format is '' in rollups, NULL in usage: '' here. */
export async function totalsByApiFormat (db: Sql, plan: QuarterDayPlan, limit: number): Promise<Grouped[]> {
  return (await db.query(groupedByDay(raw('r.api_format'), raw(`COALESCE(u.api_format, '')`), plan, limit))).rows.map(toGrouped)
}

export interface ProviderTotals {
  providerId: string
  provider: string
  totalTokens: number
  totalCost: bigint
  actualTotalCost: bigint
  attempts: number
  successes: number
  failures: number
  latencySumMs: number
  latencyCount: number
}

/**
 * Per provider: tokens and costs from usage_hourly_provider (primary key (bucket, …): a
 * few rows an hour), the edges' whole quarter-hours from usage_quarter_hourly_model
 * (bucket, …) and the rest raw, as the other groupings (a provider that still exists);
 * attempts, successes, failures and latency from provider_attempts_hourly and
 * provider_attempts_quarter_hourly (primary keys (bucket, provider_id)): each executed candidate on its
 * provider, plus one implicit attempt for each finished request reported without an
 * executed candidate — failed if the request failed, successful otherwise (a cancellation
 * is the client's doing), with the request's response time. What lies inside a quarter-hour reads the same raw:
 * candidates through request_candidates (provider_id, created_at), one probe per
 * provider; requests through usage (created_at), each probing request_candidates
 * (request_id, …) in its own month's partition (candidatesOfSql).
 */
export async function totalsByProvider (db: Sql, plan: QuarterHourPlan, limit: number): Promise<ProviderTotals[]> {
  const { rows } = await db.query(sql`
    WITH spent AS (
      SELECT key, ${SUMS} FROM (
        SELECT r.provider_id AS key, ${ROLLUP_MEASURES} FROM usage_hourly_provider r
         WHERE ${within(BUCKET, plan.hours)} AND ${EXISTING}
        UNION ALL
        SELECT r.provider_id AS key, ${ROLLUP_MEASURES} FROM usage_quarter_hourly_model r
         WHERE ${withinEither(BUCKET, plan.quarters)} AND ${EXISTING}
        UNION ALL
        SELECT u.provider_id AS key, ${RAW_MEASURES} FROM usage u WHERE ${FINISHED} AND ${withinEither(CREATED, plan.ragged)} AND ${REACHED}
      ) p
      GROUP BY key HAVING sum(requests) <> 0
    ),
    tried AS (
      SELECT provider_id, sum(attempts) AS attempts, sum(successes) AS successes, sum(failures) AS failures,
             sum(latency_sum_ms) AS latency_sum_ms, sum(latency_count) AS latency_count
        FROM (
          SELECT a.provider_id, a.attempts, a.successes, a.failures, a.latency_sum_ms, a.latency_count
            FROM provider_attempts_hourly a WHERE ${within(raw('a.bucket'), plan.hours)}
          UNION ALL
          SELECT a.provider_id, a.attempts, a.successes, a.failures, a.latency_sum_ms, a.latency_count
            FROM provider_attempts_quarter_hourly a WHERE ${withinEither(raw('a.bucket'), plan.quarters)}
          UNION ALL
          SELECT c.provider_id, 1, (c.status = 'success')::int, (c.status = 'failed')::int, COALESCE(c.latency_ms, 0), (c.latency_ms IS NOT NULL)::int
            FROM providers p JOIN request_candidates c ON c.provider_id = p.id
           WHERE ${withinEither(raw('c.created_at'), plan.ragged)} AND ${EXECUTED}
          UNION ALL
          SELECT u.provider_id, 1, (u.status <> 'failed')::int, (u.status = 'failed')::int, COALESCE(u.response_time_ms, 0), (u.response_time_ms IS NOT NULL)::int
            FROM usage u
           WHERE ${FINISHED} AND ${withinEither(CREATED, plan.ragged)} AND ${REACHED}
             -- OFFSET 0 keeps this a probe per row (the planner otherwise may hash every candidate of every month: 0.7 s at 30M)
             AND NOT EXISTS (SELECT 1 FROM request_candidates c WHERE ${candidatesOfSql('c', 'u')} AND ${EXECUTED} OFFSET 0)
        ) a
       GROUP BY provider_id
    )
    SELECT p.id AS provider_id, p.name AS provider,
           COALESCE(s.total_tokens, 0) AS total_tokens, COALESCE(s.total_cost, 0) AS total_cost, COALESCE(s.actual_total_cost, 0) AS actual_total_cost,
           COALESCE(t.attempts, 0) AS attempts, COALESCE(t.successes, 0) AS successes, COALESCE(t.failures, 0) AS failures,
           COALESCE(t.latency_sum_ms, 0) AS latency_sum_ms, COALESCE(t.latency_count, 0) AS latency_count
      FROM providers p
      LEFT JOIN spent s ON s.key = p.id
      LEFT JOIN tried t ON t.provider_id = p.id
     WHERE s.key IS NOT NULL OR t.attempts <> 0
     ORDER BY attempts DESC, p.id
     LIMIT ${limit}`)
  return rows.map((row: Record<string, unknown>) => ({
    providerId: row.provider_id as string,
    provider: row.provider as string,
    totalTokens: count(row.total_tokens),
    totalCost: big(row.total_cost),
    actualTotalCost: big(row.actual_total_cost),
    attempts: count(row.attempts),
    successes: count(row.successes),
    failures: count(row.failures),
    latencySumMs: count(row.latency_sum_ms),
    latencyCount: count(row.latency_count)
  }))
}

export interface UserTotals { userId: string, email: string | null, username: string, requests: number, totalTokens: number, totalCost: bigint }

/**
 * Per user, from the smallest rollups that answer each part exactly: usage_daily_user
 * (day × user) for whole UTC days, usage_hourly_user (hour × user) for the whole hours
 * beside them, usage_quarter_hourly_user (quarter-hour × user × provider) for the whole
 * quarter-hours beside those, raw rows for the rest. The day and hour rollups count only
 * requests that reached a provider that still exists (deleting a provider subtracts its
 * part), the quarter-hours' rows of providers that exist, as a raw row counts when its
 * provider_id is set; a deleted user's rows are left out everywhere by the join on users.
 */
export async function totalsByUser (db: Sql, plan: QuarterDayPlan, limit: number): Promise<UserTotals[]> {
  const { rows } = await db.query(sql`
    SELECT s.user_id, us.email, us.username, s.requests, s.total_tokens, s.total_cost
      FROM (
        SELECT user_id, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens, sum(total_cost)::bigint AS total_cost
          FROM (
            -- usage_daily_user primary key (day, …)
            SELECT r.user_id, r.requests, r.total_tokens, r.total_cost FROM usage_daily_user r
             WHERE ${daysOf(plan)}
            UNION ALL
            -- usage_hourly_user primary key (bucket, …)
            SELECT r.user_id, r.requests, r.total_tokens, r.total_cost FROM usage_hourly_user r
             WHERE ${withinEither(BUCKET, plan.hours)}
            UNION ALL
            -- usage_quarter_hourly_user primary key (bucket, …)
            SELECT r.user_id, r.requests, r.total_tokens, r.total_cost FROM usage_quarter_hourly_user r
             WHERE ${withinEither(BUCKET, plan.quarters)} AND ${EXISTING}
            UNION ALL
            -- usage (created_at)
            SELECT u.user_id, 1, u.total_tokens::bigint, u.total_cost FROM usage u
             WHERE ${withinEither(CREATED, plan.ragged)} AND ${FINISHED} AND ${REACHED}
          ) p
         GROUP BY user_id HAVING sum(requests) <> 0
      ) s
      JOIN users us ON us.id = s.user_id
     ORDER BY s.requests DESC, s.user_id
     LIMIT ${limit}`)
  return rows.map((row: Record<string, unknown>) => ({
    userId: row.user_id as string,
    email: row.email as string | null,
    username: row.username as string,
    requests: count(row.requests),
    totalTokens: count(row.total_tokens),
    totalCost: big(row.total_cost)
  }))
}

export interface HeatmapDay { day: string, requests: number, totalTokens: number, totalCost: bigint, actualTotalCost: bigint }

/**
 * Finished requests per local day of `timeZone`, for the days first…last (YYYY-MM-DD).
 * Whole hours come from usage_hourly_global (primary key (bucket): one row an hour),
 * each counted on the local day that holds its middle: the local midnights are converted
 * once each and every hour finds its day among them by binary search (width_bucket), with
 * no zone conversion per hour. Where a local midnight falls inside an hour (+05:30,
 * +05:45), the smaller part of that hour (at most 30 minutes, all on one local day) is
 * summed from usage_quarter_hourly_global (an offset on a quarter-hour, as every zone in
 * use today) or else from raw rows (usage (created_at)), and moved from the middle's day
 * to its own.
 * Zones on whole-hour offsets read neither.
 */
export async function heatmapDays (db: Sql, timeZone: string, first: string, last: string, now = new Date(), settled?: SettledHeatmaps): Promise<HeatmapDay[]> {
  if (settled === undefined) return (await readHeatmap(db, heatmapSql(timeZone, first, last, GLOBAL_HEATMAP, EVER))).days
  return settled.days(db, timeZone, first, last, now)
}

/** Hours [from, to) of a heatmap: each hour and the cut part of its midnight are read by the span that holds the hour. */
interface Span { from: Date, to: Date }
const EVER: Span = { from: new Date(EARLIEST_INSTANT), to: new Date(INSTANT_LIMIT) }
const DAY_MS = 86_400_000
const dayBefore = (date: string) => new Date(Date.parse(`${date}T00:00:00Z`) - DAY_MS).toISOString().slice(0, 10)

/**
 * The global heatmap's settled days, per zone: each day's sums over the hours before a
 * settled instant (accounting/rules.ts settledBefore), kept while rollup_late_writes
 * reads as it did when they were summed, so an answer reads at most ~3 days of hours
 * (and that count, in the same statement) instead of a year's. One per app: what it
 * keeps is of its database.
 */
export class SettledHeatmaps {
  private readonly zones = new Map<string, { before: Date, writes: string, first: string, days: HeatmapDay[] }>()

  constructor (private readonly maxZones = 32) {}

  async days (db: Sql, timeZone: string, first: string, last: string, now: Date): Promise<HeatmapDay[]> {
    const before = settledBefore(now)
    const kept = this.zones.get(timeZone)
    // rebuilt daily, so the live span stays a few days long
    if (kept !== undefined && kept.first <= first && before.getTime() - kept.before.getTime() < DAY_MS) {
      const live = await this.live(db, timeZone, last, kept.before)
      if (live.writes === kept.writes) return added(kept.days, live.days)
    }
    const settledPart = await readHeatmap(prepared(db), heatmapSql(timeZone, first, last, GLOBAL_HEATMAP, { from: EVER.from, to: before }))
    if (this.zones.size >= this.maxZones && !this.zones.has(timeZone)) this.zones.delete(this.zones.keys().next().value!)
    this.zones.set(timeZone, { before, writes: settledPart.writes, first, days: settledPart.days })
    const live = await this.live(db, timeZone, last, before)
    return added(settledPart.days, live.days)
  }

  /** the hours from `from` on: their local days start the day before from's */
  private async live (db: Sql, timeZone: string, last: string, from: Date) {
    return readHeatmap(prepared(db), heatmapSql(timeZone, dayBefore(localDate(from, timeZone)), last, GLOBAL_HEATMAP, { from, to: EVER.to }))
  }
}

/** Two spans' days, a day both hold summed. */
function added (a: HeatmapDay[], b: HeatmapDay[]): HeatmapDay[] {
  const byDay = new Map(a.map((day) => [day.day, day]))
  for (const day of b) {
    const seen = byDay.get(day.day)
    byDay.set(day.day, seen === undefined ? day : { day: day.day, requests: seen.requests + day.requests, totalTokens: seen.totalTokens + day.totalTokens, totalCost: seen.totalCost + day.totalCost, actualTotalCost: seen.actualTotalCost + day.actualTotalCost })
  }
  return [...byDay.values()]
}

/**
 * One user's finished requests per local day, as heatmapDays: whole hours from
 * usage_hourly (user_id, bucket), the rows of the user's hours (one per key, provider,
 * model and format used in it: what the user's own stats read over a year); the cut
 * hours of an off-hour midnight from raw rows through usage (user_id, created_at), at
 * most 30 minutes of the user's rows per midnight (the quarter-hour rollup is global).
 */
export async function userHeatmapDays (db: Sql, userId: string, timeZone: string, first: string, last: string): Promise<HeatmapDay[]> {
  return (await readHeatmap(db, heatmapSql(timeZone, first, last, { hourly: raw('usage_hourly t'), hourlyWhere: sql`t.user_id = ${userId}`, quarters: false, rawWhere: sql`u.user_id = ${userId}` }, EVER))).days
}

/** Whose requests a heatmap counts: the hourly rollup read (alias t) and its predicate, whether the global quarter-hours may answer cut hours, the raw rows' predicate (alias u). */
interface HeatmapScope { hourly: Fragment, hourlyWhere: Fragment | null, quarters: boolean, rawWhere: Fragment | null }

const GLOBAL_HEATMAP: HeatmapScope = { hourly: raw('usage_hourly_global t'), hourlyWhere: null, quarters: true, rawWhere: null }

const andWhere = (predicate: Fragment | null): Fragment => predicate === null ? empty : sql`AND ${predicate}`

/** The days' sums (a day before `first` may come with them), then one row without a day: rollup_late_writes, read in the same snapshot. */
function heatmapSql (timeZone: string, first: string, last: string, scope: HeatmapScope, span: Span): Fragment {
  return sql`
    WITH midnights AS MATERIALIZED ( -- first … last + 1, each converted once
      SELECT day, at, date_trunc('hour', at, 'UTC') AS hour
        FROM (SELECT d::date AS day, d AT TIME ZONE ${timeZone} AS at
                FROM generate_series(${first}::date::timestamp, (${last}::date + 1)::timestamp, interval '1 day') AS d) m
    ), bounds AS MATERIALIZED (
      SELECT array_agg(at ORDER BY at) AS ats, array_agg(day ORDER BY at) AS days, min(at) AS first_at, max(at) AS end_at FROM midnights
    ), minor AS MATERIALIZED (
      SELECT CASE WHEN early THEN hour ELSE at END AS from_at, CASE WHEN early THEN at ELSE hour + interval '1 hour' END AS to_at,
             CASE WHEN early THEN day - 1 ELSE day END AS own_day, CASE WHEN early THEN day ELSE day - 1 END AS middle_day,
             extract(epoch FROM at) % 900 = 0 AS quarters
        FROM (SELECT *, at - hour <= interval '30 minutes' AS early FROM midnights WHERE at <> hour AND hour >= ${span.from} AND hour < ${span.to}) m
    ), hours AS (
      -- usage_hourly_global primary key (bucket), one user's usage_hourly (user_id, bucket): the day whose [midnight, next midnight) holds the hour's middle,
      -- for the hours whose middle is in [first midnight, last + 1), so each hour's day is looked up once
      SELECT b.days[width_bucket(t.bucket + interval '30 minutes', b.ats)] AS day, t.requests, t.total_tokens, t.total_cost, t.actual_total_cost
        FROM ${scope.hourly} CROSS JOIN bounds b
       -- a constant superset of the local days (no zone is 24 hours off UTC), so the planner can estimate it
       WHERE t.bucket >= (${first}::date - 1)::timestamp AT TIME ZONE 'UTC' AND t.bucket < (${last}::date + 2)::timestamp AT TIME ZONE 'UTC' ${andWhere(scope.hourlyWhere)}
         AND t.bucket >= ${span.from} AND t.bucket < ${span.to}
         AND t.bucket + interval '30 minutes' >= b.first_at AND t.bucket + interval '30 minutes' < b.end_at
    ), moved AS (${scope.quarters ? QUARTER_PARTS : empty}
      -- usage (created_at), one user's usage (user_id, created_at), one range per midnight: an offset off the quarter-hour (a historical local mean time), or any cut hour of one user
      SELECT m.own_day, m.middle_day, x.requests, x.total_tokens, x.total_cost, x.actual_total_cost
        FROM minor m CROSS JOIN LATERAL (
          SELECT count(*) AS requests, COALESCE(sum(u.total_tokens), 0)::bigint AS total_tokens, COALESCE(sum(u.total_cost), 0)::bigint AS total_cost,
                 COALESCE(sum(u.actual_total_cost), 0)::bigint AS actual_total_cost
            FROM usage u WHERE u.created_at >= m.from_at AND u.created_at < m.to_at AND ${FINISHED} ${andWhere(scope.rawWhere)}
        ) x
       WHERE ${scope.quarters ? raw('NOT m.quarters') : raw('TRUE')}
    ), parts AS (
      SELECT day, requests, total_tokens, total_cost, actual_total_cost FROM hours
      UNION ALL
      SELECT d.day, d.sign * requests, d.sign * total_tokens, d.sign * total_cost, d.sign * actual_total_cost
        FROM moved CROSS JOIN LATERAL (VALUES (own_day, 1), (middle_day, -1)) AS d(day, sign)
       WHERE d.day BETWEEN ${first}::date AND ${last}::date
    )
    SELECT to_char(day, 'YYYY-MM-DD') AS day, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens,
           sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost
      FROM parts
     GROUP BY day
    UNION ALL
    -- rollup_late_writes primary key: one row
    SELECT NULL, writes, 0, 0, 0 FROM rollup_late_writes`
}

/** The cut hours' parts from the global quarter-hours, where the midnight is on a quarter-hour. */
const QUARTER_PARTS = raw(`
      -- usage_quarter_hourly_global primary key (bucket), one range per midnight: every zone in use today is whole quarter-hours off UTC
      SELECT m.own_day, m.middle_day, q.requests::bigint AS requests, q.total_tokens, q.total_cost, q.actual_total_cost
        FROM minor m JOIN usage_quarter_hourly_global q ON q.bucket >= m.from_at AND q.bucket < m.to_at
       WHERE m.quarters
      UNION ALL`)

async function readHeatmap (db: Sql, query: Fragment): Promise<{ days: HeatmapDay[], writes: string }> {
  const { rows } = await db.query(query.text, query.values)
  let writes = ''
  const days: HeatmapDay[] = []
  for (const row of rows as Array<Record<string, unknown>>) {
    if (row.day === null) writes = String(row.requests)
    else days.push({ day: row.day as string, requests: count(row.requests), totalTokens: count(row.total_tokens), totalCost: big(row.total_cost), actualTotalCost: big(row.actual_total_cost) })
  }
  return { days, writes }
}
