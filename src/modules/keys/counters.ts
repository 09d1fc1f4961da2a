// A key, its owner and its live counters in one round trip: what gateway verify
// checks a request against and what a key holder reads in /api/key-stats/user-stats.
// One query and one row mapping, so both answer by the same rules.
import { prepared, type Sql } from '../../db/prisma.js'

/** The rate limit counts a key's requests created in the last this many seconds (any status). */
export const RATE_WINDOW_SECONDS = 60

export interface KeyState {
  id: string
  user_id: string
  name: string
  created_at: Date
  key_hash: string
  is_active: boolean
  expires_at: Date | null
  /** the owner is active and not deleted */
  user_active: boolean
  allowed_models: string[] | null
  allowed_providers: string[] | null
  allowed_api_formats: string[] | null
  user_allowed_models: string[] | null
  user_allowed_providers: string[] | null
  user_allowed_api_formats: string[] | null
  rate_limit: number | null
  concurrent_limit: number | null
  /** nano-USD, like every amount below */
  daily_cost_limit: bigint | null
  total_cost_limit: bigint | null
  total_cost: bigint
  current_balance: bigint | null
  balance_used: bigint
  /** the owner's quota and what they have used */
  quota: bigint | null
  used: bigint
  counters: KeyCounters
}

/** null = not computed (the key has no such limit and every counter was not asked for) */
export interface KeyCounters {
  /** requests created in the last RATE_WINDOW_SECONDS (0 when not computed) */
  window_requests: number
  window_oldest: Date | null
  /** pending or streaming requests younger than PENDING_TIMEOUT_MINUTES */
  in_flight: number | null
  /** finished requests' cost since local midnight in APP_TIMEZONE */
  today_cost: bigint | null
}

export interface CounterSettings {
  timeZone: string
  pendingTimeoutMinutes: number
  /** every counter (key holders read them all); else only those of the limits the key has */
  allCounters?: boolean
}

export type KeyLookup = { hash: string } | { id: string }

/**
 * $1 the key's hash or id, $2 the time zone, $3 PENDING_TIMEOUT_MINUTES, $4 every counter.
 * The counters are computed only for the limits a key has unless $4 (the CASEs and the
 * window's gate are evaluated per key): the rate window and in-flight count from usage
 * (api_key_id, created_at); today's cost — finished requests created in [local midnight,
 * next local midnight) — from usage_hourly (api_key_id, bucket) for the whole hours plus
 * raw rows for the edges when a midnight falls inside an hour (+05:30, +05:45 zones).
 */
const keyStateSql = (where: string) => `
  SELECT k.id, k.user_id, k.name, k.created_at, k.key_hash, k.is_active, k.expires_at, u.is_active AND NOT u.is_deleted AS user_active,
         k.allowed_models, k.allowed_providers, k.allowed_api_formats,
         u.allowed_models AS user_allowed_models, u.allowed_providers AS user_allowed_providers, u.allowed_api_formats AS user_allowed_api_formats,
         k.rate_limit, k.concurrent_limit, k.daily_cost_limit, k.total_cost_limit, k.total_cost, k.current_balance, k.balance_used, u.quota, u.used,
         w.requests AS window_requests, w.oldest AS window_oldest,
         CASE WHEN $4 OR k.concurrent_limit IS NOT NULL THEN
           (SELECT count(*)::int FROM usage WHERE api_key_id = k.id AND status IN ('pending', 'streaming')
               AND created_at > now() - make_interval(mins => $3::int)) END AS in_flight,
         CASE WHEN $4 OR k.daily_cost_limit IS NOT NULL THEN
           COALESCE((SELECT sum(total_cost) FROM usage_hourly WHERE api_key_id = k.id AND bucket >= d.first_hour AND bucket < d.end_hour), 0)
           + COALESCE((SELECT sum(total_cost) FROM usage WHERE d.midnight < d.first_hour AND api_key_id = k.id
                        AND status IN ('completed', 'failed', 'cancelled') AND created_at >= d.midnight AND created_at < d.first_hour), 0)
           + COALESCE((SELECT sum(total_cost) FROM usage WHERE d.end_hour < d.next_midnight AND api_key_id = k.id
                        AND status IN ('completed', 'failed', 'cancelled') AND created_at >= d.end_hour AND created_at < d.next_midnight), 0)
         END::bigint AS today_cost
    FROM api_keys k
    JOIN users u ON u.id = k.user_id
   CROSS JOIN LATERAL (SELECT date_trunc('day', now() AT TIME ZONE $2) AS local_day) l
   CROSS JOIN LATERAL (SELECT l.local_day AT TIME ZONE $2 AS midnight, (l.local_day + interval '1 day') AT TIME ZONE $2 AS next_midnight) m
   -- the whole hours of today (the first one is midnight rounded up) and the raw edges around them
   CROSS JOIN LATERAL (SELECT m.midnight, m.next_midnight, date_trunc('hour', m.midnight - interval '1 microsecond') + interval '1 hour' AS first_hour,
                              date_trunc('hour', m.next_midnight) AS end_hour) d
   CROSS JOIN LATERAL (SELECT count(*)::int AS requests, min(created_at) AS oldest
                         FROM usage WHERE ($4 OR k.rate_limit IS NOT NULL) AND api_key_id = k.id
                          AND created_at > now() - interval '${RATE_WINDOW_SECONDS} seconds') w
   WHERE ${where}`

// fixed texts: the lookup column is chosen here, never from input
const BY_HASH = keyStateSql('k.key_hash = $1')
const BY_ID = keyStateSql('k.id = $1::uuid')

export async function keyState (db: Sql, lookup: KeyLookup, settings: CounterSettings): Promise<KeyState | undefined> {
  const [text, value] = 'hash' in lookup ? [BY_HASH, lookup.hash] : [BY_ID, lookup.id]
  // named: PostgreSQL plans it once per connection instead of on every call
  const { rows } = await prepared(db).query(text, [value, settings.timeZone, settings.pendingTimeoutMinutes, settings.allCounters === true])
  const row = rows[0] as Record<string, unknown> | undefined
  return row === undefined ? undefined : toKeyState(row)
}

// node-postgres returns bigint columns as strings
const big = (value: unknown) => value === null ? null : BigInt(value as string)

function toKeyState (row: Record<string, unknown>): KeyState {
  const { window_requests: windowRequests, window_oldest: windowOldest, in_flight: inFlight, today_cost: todayCost, ...key } = row
  return {
    ...(key as unknown as Omit<KeyState, 'counters'>),
    daily_cost_limit: big(row.daily_cost_limit),
    total_cost_limit: big(row.total_cost_limit),
    total_cost: big(row.total_cost)!,
    current_balance: big(row.current_balance),
    balance_used: big(row.balance_used)!,
    quota: big(row.quota),
    used: big(row.used)!,
    counters: {
      window_requests: windowRequests as number,
      window_oldest: windowOldest as Date | null,
      in_flight: inFlight as number | null,
      today_cost: big(todayCost)
    }
  }
}

/** Seconds until the oldest request in the window leaves it; 0 for an empty window. */
export function windowResetsIn (counters: KeyCounters, now = Date.now()): number {
  if (counters.window_oldest === null) return 0
  return Math.max(0, Math.ceil((counters.window_oldest.getTime() + RATE_WINDOW_SECONDS * 1000 - now) / 1000))
}
