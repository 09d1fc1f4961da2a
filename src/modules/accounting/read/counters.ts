// A key's live counters, as SQL fragments the key lookup composes into its one query
// (gateway verify's hot path: one round trip for the key, its owner and its counters):
// the rate window (its requests and tokens: whole seconds from usage_key_seconds, the
// part-second at its start from usage) and in-flight requests from usage; today's
// cost — finished requests created in [local midnight, next local midnight), by finishedSpendSql,
// the one rule budgets use too. Live admission holds
// (accounting/holds.ts) add to them: their cost to every cost counter, and — until their
// request's usage row exists — one request each to the window and to in flight.
import sql, { empty, raw, type Sql as Fragment } from 'sql-template-tag'
import { liveHoldSql } from '../holds.js'
import { recentRowsSql } from '../../../db/partitions.js'
import { finishedSql, inFlightSql } from '../rules.js'
import { big } from './sql.js'

/** null = not computed (the key has no such limit and every counter was not asked for) */
export interface KeyCounters {
  /** requests created in the key's rate window (the last rate_window_seconds, any status), and holds taken in it whose row does not exist yet (usage: 0 when not computed) */
  window_requests: number
  /** the tokens of the requests created in the window, and of the live holds taken in it (0 when not computed) */
  window_tokens: bigint
  window_oldest: Date | null
  /** the window's length, seconds */
  window_seconds: number
  /** pending or streaming requests younger than PENDING_TIMEOUT_MINUTES, and live holds whose row does not exist yet */
  in_flight: number | null
  /** the key's live holds, nano-USD: counted against each of its cost limits beside what it spent */
  held_cost: bigint
  /** finished requests' cost since local midnight in APP_TIMEZONE, nano-USD */
  today_cost: bigint | null
}

export interface CounterSettings {
  timeZone: string
  pendingTimeoutMinutes: number
  /** every counter (key holders read them all); else only those of the limits the key has */
  allCounters?: boolean
}

/** The key row's columns the counters need: its id, and the limits that decide which counters are computed. */
export interface CountedKey { id: Fragment, rateLimit: Fragment, tokenLimit: Fragment, windowSeconds: Fragment, concurrentLimit: Fragment, dailyCostLimit: Fragment }

/**
 * The counters' select list (window_requests, window_oldest, in_flight, today_cost,
 * held_cost) and the lateral joins it reads (aliases l, m, ws, w, h: the caller's FROM must not use them).
 * A counter is computed only for a limit the key has, unless every counter is asked for
 * (the CASEs and the window's gate are evaluated per key).
 */
export function keyCounters (k: CountedKey, s: CounterSettings): { columns: Fragment, joins: Fragment } {
  const all = s.allCounters === true
  // the window is read only for a key with a rate or token limit (or when every counter is asked for)
  const windowed = sql`(${all}::boolean OR ${k.rateLimit} IS NOT NULL OR ${k.tokenLimit} IS NOT NULL)`
  // every read of usage below is of the last 38 hours at most: its plan names the latest months' partitions only
  const recent = recentRowsSql('created_at')
  const columns = sql`w.requests + h.window_requests AS window_requests, w.tokens + h.window_tokens AS window_tokens,
         LEAST(w.oldest, h.window_oldest) AS window_oldest, ${k.windowSeconds} AS window_seconds, h.cost AS held_cost,
         -- served by usage_in_flight_key_idx (api_key_id, created_at) WHERE in flight: the key's in-flight rows only
         CASE WHEN ${all}::boolean OR ${k.concurrentLimit} IS NOT NULL THEN
           (SELECT count(*)::int FROM usage WHERE api_key_id = ${k.id} AND ${inFlightSql()} AND ${recent}
               AND created_at > now() - make_interval(mins => ${s.pendingTimeoutMinutes}::int)) + h.unstarted END AS in_flight,
         CASE WHEN ${all}::boolean OR ${k.dailyCostLimit} IS NOT NULL THEN
           ${finishedSpendSql({ column: 'api_key_id', id: k.id, recent }, raw('m.midnight'), raw('m.next_midnight'))}
         END::bigint AS today_cost`
  const joins = sql`
   CROSS JOIN LATERAL (SELECT date_trunc('day', now() AT TIME ZONE ${s.timeZone}::text) AS local_day) l
   CROSS JOIN LATERAL (SELECT l.local_day AT TIME ZONE ${s.timeZone}::text AS midnight, (l.local_day + interval '1 day') AT TIME ZONE ${s.timeZone}::text AS next_midnight) m
   -- the rate window (since, now]: its whole seconds from usage_key_seconds (api_key_id, second), the part-second
   -- (since, edge) from usage (api_key_id, created_at), and its oldest request by one probe of that index
   CROSS JOIN LATERAL (SELECT b.since, date_trunc('second', b.since) + interval '1 second' AS edge
                         FROM (SELECT now() - make_interval(secs => ${k.windowSeconds}) AS since) b) ws
   CROSS JOIN LATERAL (SELECT (ks.requests + e.requests)::int AS requests, (ks.tokens + e.tokens)::bigint AS tokens,
                              (SELECT min(created_at) FROM usage WHERE ${windowed} AND api_key_id = ${k.id} AND ${recent} AND created_at > ws.since) AS oldest
                         FROM (SELECT COALESCE(sum(requests), 0) AS requests, COALESCE(sum(tokens), 0) AS tokens
                                 FROM usage_key_seconds WHERE ${windowed} AND api_key_id = ${k.id} AND second >= ws.edge) ks,
                              (SELECT count(*) AS requests, COALESCE(sum(total_tokens), 0) AS tokens
                                 FROM usage WHERE ${windowed} AND api_key_id = ${k.id} AND ${recent} AND created_at > ws.since AND created_at < ws.edge) e) w
   -- served by admission_holds (api_key_id, expires_at): a key's live holds are its requests in flight, a few rows; the window's as above
   CROSS JOIN LATERAL (SELECT COALESCE(sum(amount), 0)::bigint AS cost, (count(*) FILTER (WHERE NOT started))::int AS unstarted,
                              (count(*) FILTER (WHERE NOT started AND created_at > ws.since))::int AS window_requests,
                              -- a started request's row has no tokens until it finishes, and then its hold is gone: never both
                              (COALESCE(sum(tokens) FILTER (WHERE created_at > ws.since), 0))::bigint AS window_tokens,
                              min(created_at) FILTER (WHERE NOT started AND created_at > ws.since) AS window_oldest
                         FROM admission_holds ah WHERE ah.api_key_id = ${k.id} AND ${liveHoldSql('ah')}) h`
  return { columns, joins }
}

/**
 * Whose spend finishedSpendSql sums: a key or a user by id, and only one model's when `model` is given (SQL NULL there: every model);
 * `recent` (db/partitions.ts recentRowsSql) when the window is known to lie within it: the raw rows' reads then plan only its partitions.
 */
export interface SpendOf { column: 'api_key_id' | 'user_id', id: Fragment, model?: Fragment, recent?: Fragment }

/**
 * Finished requests' total_cost of a key or user created in [start, end), nano-USD: the
 * whole UTC hours from usage_hourly (api_key_id, bucket) or (user_id, bucket), and raw
 * usage rows (api_key_id, created_at) or (user_id, created_at) for the partial hours at
 * either edge (a half-hour zone's midnight, a rolling window); a window within one hour
 * is read from raw rows alone. The edges' guards skip their reads when the bound is on the hour.
 */
export function finishedSpendSql (of: SpendOf, start: Fragment, end: Fragment): Fragment {
  const owner = sql`${raw(of.column)} = ${of.id}`
  const model = of.model === undefined ? empty : sql`AND (${of.model}::text IS NULL OR model = ${of.model}::text)`
  const finished = of.recent === undefined ? finishedSql() : sql`${finishedSql()} AND ${of.recent}`
  return sql`(SELECT COALESCE((SELECT sum(total_cost) FROM usage_hourly WHERE ${owner} ${model} AND bucket >= e.first_hour AND bucket < e.end_hour), 0)
           + COALESCE((SELECT sum(total_cost) FROM usage WHERE e.lo < LEAST(e.first_hour, e.hi) AND ${owner} ${model}
                        AND ${finished} AND created_at >= e.lo AND created_at < LEAST(e.first_hour, e.hi)), 0)
           + COALESCE((SELECT sum(total_cost) FROM usage WHERE GREATEST(e.first_hour, e.end_hour) < e.hi AND ${owner} ${model}
                        AND ${finished} AND created_at >= GREATEST(e.first_hour, e.end_hour) AND created_at < e.hi), 0)
      -- the first whole hour is the start rounded up; the last ends at the end rounded down
      FROM (SELECT x.lo, x.hi, date_trunc('hour', x.lo - interval '1 microsecond', 'UTC') + interval '1 hour' AS first_hour, date_trunc('hour', x.hi, 'UTC') AS end_hour
              FROM (SELECT (${start})::timestamptz AS lo, (${end})::timestamptz AS hi) x) e)::bigint`
}

/** The counters from a row holding keyCounters' columns (node-postgres returns bigint columns as strings). */
export function toKeyCounters (row: Record<string, unknown>): KeyCounters {
  return {
    window_requests: row.window_requests as number,
    window_tokens: big(row.window_tokens),
    window_oldest: row.window_oldest as Date | null,
    window_seconds: row.window_seconds as number,
    in_flight: row.in_flight as number | null,
    today_cost: row.today_cost === null ? null : big(row.today_cost),
    held_cost: big(row.held_cost)
  }
}

/** A hold just taken: its amount (nano-USD), its tokens, whether its request's row exists (in flight), and when (the database's now()); its model (none: null or absent) for budgets. */
export interface NewHold { amount: bigint, tokens: bigint, started: boolean, at: Date, model?: string | null }

/**
 * The counters once `hold` is live beside them: the h lateral's rule above, applied in
 * memory (its cost to held_cost, its tokens to the window; unstarted, one request to the
 * window and to in flight). test/modules/accounting/count-hold.test.ts proves it reads the same.
 */
export function countHold (counters: KeyCounters, hold: NewHold): void {
  counters.held_cost += hold.amount
  counters.window_tokens += hold.tokens
  if (hold.started) return
  counters.window_requests += 1
  if (counters.in_flight !== null) counters.in_flight += 1
  if (counters.window_oldest === null || hold.at < counters.window_oldest) counters.window_oldest = hold.at
}

/** Seconds until the oldest request in the window leaves it; 0 for an empty window. */
export function windowResetsIn (counters: KeyCounters, now = Date.now()): number {
  if (counters.window_oldest === null) return 0
  return Math.max(0, Math.ceil((counters.window_oldest.getTime() + counters.window_seconds * 1000 - now) / 1000))
}
