// The usage statistics SQL, on the shared pg pool (unnamed statements, so each is
// planned with its parameter values: an absent filter's `$n IS NULL` folds away).
//
// Totals come from the hourly rollups for the whole hours of a range and from raw
// usage rows for its ragged edges (see plan.ts); a raw row is shaped exactly like
// the contribution ingestion adds to a rollup (src/modules/usage/rollups.ts), so the
// two halves add up to what a GROUP BY over the raw rows gives. The fragments below
// are constants: every value reaches PostgreSQL as a parameter.
import type { Sql } from '../../db/prisma.js'
import type { TieredPricing } from '../accounting/pricing.js'
import type { DayPlan, HourPlan } from '../../lib/spans.js'

/** what rollups count: finished requests */
const FINISHED = `u.status IN ('completed', 'failed', 'cancelled')`
/** a candidate that was actually sent to its provider */
const EXECUTED = `c.status NOT IN ('skipped', 'available')`
/** the raw rows of a plan's two edges, $3–$6 */
const EDGES = `(u.created_at >= $3 AND u.created_at < $4 OR u.created_at >= $5 AND u.created_at < $6)`

/** a raw usage row as the measures it adds to a rollup row */
const RAW_MEASURES = `1 AS requests, (u.status = 'failed')::int AS errors, u.total_tokens::bigint AS total_tokens,
  u.total_cost, u.actual_total_cost, COALESCE(u.response_time_ms, 0)::bigint AS response_time_sum_ms,
  (u.response_time_ms IS NOT NULL)::int AS response_time_count, u.cache_creation_input_tokens::bigint AS cache_creation_tokens,
  u.cache_read_input_tokens::bigint AS cache_read_tokens, u.cache_creation_cost, u.cache_read_cost`
const ROLLUP_MEASURES = `r.requests, r.errors, r.total_tokens, r.total_cost, r.actual_total_cost, r.response_time_sum_ms,
  r.response_time_count, r.cache_creation_tokens, r.cache_read_tokens, r.cache_creation_cost, r.cache_read_cost`
const SUMS = `COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(errors), 0)::bigint AS errors,
  COALESCE(sum(total_tokens), 0)::bigint AS total_tokens, COALESCE(sum(total_cost), 0)::bigint AS total_cost,
  COALESCE(sum(actual_total_cost), 0)::bigint AS actual_total_cost, COALESCE(sum(response_time_sum_ms), 0)::bigint AS response_time_sum_ms,
  COALESCE(sum(response_time_count), 0)::bigint AS response_time_count, COALESCE(sum(cache_creation_tokens), 0)::bigint AS cache_creation_tokens,
  COALESCE(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens, COALESCE(sum(cache_creation_cost), 0)::bigint AS cache_creation_cost,
  COALESCE(sum(cache_read_cost), 0)::bigint AS cache_read_cost`

/** Sums over finished requests; bigint columns arrive as strings. */
export interface Totals {
  requests: string
  errors: string
  total_tokens: string
  total_cost: string
  actual_total_cost: string
  response_time_sum_ms: string
  response_time_count: string
  cache_creation_tokens: string
  cache_read_tokens: string
  cache_creation_cost: string
  cache_read_cost: string
}

const hourParams = (plan: HourPlan) => [plan.hours.from, plan.hours.to, plan.edges[0].from, plan.edges[0].to, plan.edges[1].from, plan.edges[1].to]

/** Every finished request in the range. usage_hourly_provider primary key (bucket, …); usage (created_at) for the edges. */
export async function globalTotals (db: Sql, plan: HourPlan): Promise<Totals> {
  const { rows } = await db.query<Totals>(`
    SELECT ${SUMS} FROM (
      SELECT ${ROLLUP_MEASURES} FROM usage_hourly_provider r WHERE r.bucket >= $1 AND r.bucket < $2
      UNION ALL
      SELECT ${RAW_MEASURES} FROM usage u WHERE ${FINISHED} AND ${EDGES}
    ) p`, hourParams(plan))
  return rows[0]!
}

/** One user's finished requests in the range. usage_hourly (user_id, bucket); usage (user_id, created_at) for the edges. */
export async function userTotals (db: Sql, userId: string, plan: HourPlan): Promise<Totals> {
  const { rows } = await db.query<Totals>(`
    SELECT ${SUMS} FROM (
      SELECT ${ROLLUP_MEASURES} FROM usage_hourly r WHERE r.user_id = $7 AND r.bucket >= $1 AND r.bucket < $2
      UNION ALL
      SELECT ${RAW_MEASURES} FROM usage u WHERE u.user_id = $7 AND ${FINISHED} AND ${EDGES}
    ) p`, [...hourParams(plan), userId])
  return rows[0]!
}

export type Grouped = Totals & { key: string }

// Aggregations leave out requests that reached no provider: a rollup row counts when
// its provider exists (absent is the nil uuid; a deleted provider's rows are SET NULL
// in usage, so the rollup must forget them too), a raw row when provider_id is set.
const grouped = (rollupKey: string, rawKey: string, rollup: string) => `
  SELECT key, ${SUMS} FROM (
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM ${rollup} r
     WHERE r.bucket >= $1 AND r.bucket < $2 AND r.provider_id IN (SELECT id FROM providers)
    UNION ALL
    SELECT ${rawKey} AS key, ${RAW_MEASURES} FROM usage u WHERE ${FINISHED} AND ${EDGES} AND u.provider_id IS NOT NULL
  ) p
  GROUP BY key HAVING sum(requests) <> 0`

/**
 * As `grouped`, for a DayPlan: whole UTC days from usage_daily_model (day × provider ×
 * model × format; primary key (day, …)), the whole hours beside them from
 * usage_hourly_model (bucket, …), the raw edges through usage (created_at).
 */
const groupedByDay = (rollupKey: string, rawKey: string) => `
  SELECT key, ${SUMS} FROM (
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM usage_daily_model r
     WHERE r.day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND r.day < ($2::timestamptz AT TIME ZONE 'UTC')::date
       AND r.provider_id IN (SELECT id FROM providers)
    UNION ALL
    SELECT ${rollupKey} AS key, ${ROLLUP_MEASURES} FROM usage_hourly_model r
     WHERE (r.bucket >= $3 AND r.bucket < $4 OR r.bucket >= $5 AND r.bucket < $6) AND r.provider_id IN (SELECT id FROM providers)
    UNION ALL
    SELECT ${rawKey} AS key, ${RAW_MEASURES} FROM usage u
     WHERE ${FINISHED} AND (u.created_at >= $7 AND u.created_at < $8 OR u.created_at >= $9 AND u.created_at < $10) AND u.provider_id IS NOT NULL
  ) p
  GROUP BY key HAVING sum(requests) <> 0`

const BY_MODEL = `${groupedByDay('r.model', 'u.model')} ORDER BY requests DESC, key LIMIT $11`
// a request without a format is '' in rollups, NULL in usage
const BY_API_FORMAT = `${groupedByDay('r.api_format', `COALESCE(u.api_format, '')`)} ORDER BY requests DESC, key LIMIT $11`
// usage_hourly_provider primary key (bucket, …): a few rows an hour
const BY_PROVIDER = grouped('r.provider_id', 'u.provider_id', 'usage_hourly_provider')

const dayParams = (plan: DayPlan) => [plan.days.from, plan.days.to, plan.hours[0].from, plan.hours[0].to, plan.hours[1].from, plan.hours[1].to,
  plan.edges[0].from, plan.edges[0].to, plan.edges[1].from, plan.edges[1].to]

export async function totalsByModel (db: Sql, plan: DayPlan, limit: number): Promise<Grouped[]> {
  return (await db.query<Grouped>(BY_MODEL, [...dayParams(plan), limit])).rows
}

export async function totalsByApiFormat (db: Sql, plan: DayPlan, limit: number): Promise<Grouped[]> {
  return (await db.query<Grouped>(BY_API_FORMAT, [...dayParams(plan), limit])).rows
}

export interface ProviderRow {
  provider_id: string
  provider: string
  total_tokens: string
  total_cost: string
  actual_total_cost: string
  attempts: string
  successes: string
  failures: string
  latency_sum_ms: string
  latency_count: string
}

/**
 * Per provider: tokens and costs from the rollups (as BY_MODEL); attempts, successes,
 * failures and latency from provider_attempts_hourly (primary key (bucket, provider_id))
 * for the whole hours: each executed candidate on its provider, plus one implicit
 * attempt for each finished request reported without an executed candidate — failed
 * if the request failed, successful otherwise (a cancellation is the client's doing),
 * with the request's response time. The edges read the same raw: candidates through
 * request_candidates (provider_id, created_at), one probe per provider; requests
 * through usage (created_at), each probing request_candidates (request_id, …).
 */
export async function totalsByProvider (db: Sql, plan: HourPlan, limit: number): Promise<ProviderRow[]> {
  const { rows } = await db.query<ProviderRow>(`
    WITH spent AS (${BY_PROVIDER}),
    tried AS (
      SELECT provider_id, sum(attempts) AS attempts, sum(successes) AS successes, sum(failures) AS failures,
             sum(latency_sum_ms) AS latency_sum_ms, sum(latency_count) AS latency_count
        FROM (
          SELECT a.provider_id, a.attempts, a.successes, a.failures, a.latency_sum_ms, a.latency_count
            FROM provider_attempts_hourly a WHERE a.bucket >= $1 AND a.bucket < $2
          UNION ALL
          SELECT c.provider_id, 1, (c.status = 'success')::int, (c.status = 'failed')::int, COALESCE(c.latency_ms, 0), (c.latency_ms IS NOT NULL)::int
            FROM providers p JOIN request_candidates c ON c.provider_id = p.id
           WHERE (c.created_at >= $3 AND c.created_at < $4 OR c.created_at >= $5 AND c.created_at < $6) AND ${EXECUTED}
          UNION ALL
          SELECT u.provider_id, 1, (u.status <> 'failed')::int, (u.status = 'failed')::int, COALESCE(u.response_time_ms, 0), (u.response_time_ms IS NOT NULL)::int
            FROM usage u
           WHERE ${FINISHED} AND ${EDGES} AND u.provider_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM request_candidates c WHERE c.request_id = u.request_id AND ${EXECUTED})
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
     LIMIT $7`, [...hourParams(plan), limit])
  return rows
}

export interface UserRow { user_id: string, email: string | null, username: string, requests: string, total_tokens: string, total_cost: string }

/**
 * Per user, from the smallest rollups that answer each part exactly: usage_daily_user
 * (day × user) for whole UTC days, usage_hourly_user (hour × user) for the whole hours
 * beside them, raw rows for the edges. Both rollups count only requests that reached a
 * provider that still exists (deleting a provider subtracts its part), as a raw row
 * counts when its provider_id is set; a deleted user's rows are left out on both sides
 * by the join on users.
 */
export async function totalsByUser (db: Sql, plan: DayPlan, limit: number): Promise<UserRow[]> {
  const { rows } = await db.query<UserRow>(`
    SELECT s.user_id, us.email, us.username, s.requests, s.total_tokens, s.total_cost
      FROM (
        SELECT user_id, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens, sum(total_cost)::bigint AS total_cost
          FROM (
            -- usage_daily_user primary key (day, …)
            SELECT d.user_id, d.requests, d.total_tokens, d.total_cost FROM usage_daily_user d
             WHERE d.day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND d.day < ($2::timestamptz AT TIME ZONE 'UTC')::date
            UNION ALL
            -- usage_hourly_user primary key (bucket, …)
            SELECT r.user_id, r.requests, r.total_tokens, r.total_cost FROM usage_hourly_user r
             WHERE r.bucket >= $3 AND r.bucket < $4 OR r.bucket >= $5 AND r.bucket < $6
            UNION ALL
            -- usage (created_at)
            SELECT u.user_id, 1, u.total_tokens::bigint, u.total_cost FROM usage u
             WHERE (u.created_at >= $7 AND u.created_at < $8 OR u.created_at >= $9 AND u.created_at < $10) AND ${FINISHED} AND u.provider_id IS NOT NULL
          ) p
         GROUP BY user_id HAVING sum(requests) <> 0
      ) s
      JOIN users us ON us.id = s.user_id
     ORDER BY s.requests DESC, s.user_id
     LIMIT $11`, [...dayParams(plan), limit])
  return rows
}

export interface HeatmapDay { day: string, requests: string, total_tokens: string, total_cost: string, actual_total_cost: string }

/**
 * Finished requests per local day of `timeZone`, for the days first…last.
 * Whole hours come from usage_hourly_provider (primary key (bucket, …)), each counted on
 * the local day that holds its middle: the local midnights are converted once each and
 * every hour finds its day among them by binary search (width_bucket), with no zone
 * conversion per hour. Where a local midnight falls inside an hour (+05:30, +05:45), the
 * smaller part of that hour (at most 30 minutes, all on one local day) is summed from
 * usage_quarter_hourly (an offset on a quarter-hour, as every zone in use today) or
 * else from raw rows (usage (created_at)), and moved from the middle's day to its own.
 * Zones on whole-hour offsets read neither.
 */
export async function heatmapDays (db: Sql, timeZone: string, first: string, last: string): Promise<HeatmapDay[]> {
  const { rows } = await db.query<HeatmapDay>(`
    WITH midnights AS MATERIALIZED ( -- first … last + 1, each converted once
      SELECT day, at, date_trunc('hour', at, 'UTC') AS hour
        FROM (SELECT d::date AS day, d AT TIME ZONE $1 AS at
                FROM generate_series($2::date::timestamp, ($3::date + 1)::timestamp, interval '1 day') AS d) m
    ), bounds AS MATERIALIZED (
      SELECT array_agg(at ORDER BY at) AS ats, array_agg(day ORDER BY at) AS days FROM midnights
    ), minor AS MATERIALIZED (
      SELECT CASE WHEN early THEN hour ELSE at END AS from_at, CASE WHEN early THEN at ELSE hour + interval '1 hour' END AS to_at,
             CASE WHEN early THEN day - 1 ELSE day END AS own_day, CASE WHEN early THEN day ELSE day - 1 END AS middle_day,
             extract(epoch FROM at) % 900 = 0 AS quarters
        FROM (SELECT *, at - hour <= interval '30 minutes' AS early FROM midnights WHERE at <> hour) m
    ), totals AS MATERIALIZED ( -- an hour's providers summed first, so each hour finds its day once
      SELECT bucket, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens,
             sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost
        FROM usage_hourly_provider
       -- a constant superset of the local days (no zone is 24 hours off UTC), so the planner can estimate it;
       -- the hours outside them land on days the final WHERE drops
       WHERE bucket >= ($2::date - 1)::timestamp AT TIME ZONE 'UTC' AND bucket < ($3::date + 2)::timestamp AT TIME ZONE 'UTC'
       GROUP BY bucket
    ), hours AS (
      -- the day whose [midnight, next midnight) holds the hour's middle; before the first midnight: none (NULL, dropped)
      SELECT b.days[width_bucket(t.bucket + interval '30 minutes', b.ats)] AS day, t.requests, t.total_tokens, t.total_cost, t.actual_total_cost
        FROM totals t CROSS JOIN bounds b
    ), moved AS MATERIALIZED ( -- once per midnight
      SELECT m.own_day, m.middle_day, x.requests, x.total_tokens, x.total_cost, x.actual_total_cost
        FROM minor m CROSS JOIN LATERAL (
          -- usage_quarter_hourly primary key (bucket, …): every zone in use today is whole quarter-hours off UTC
          SELECT COALESCE(sum(q.requests), 0)::bigint AS requests, COALESCE(sum(q.total_tokens), 0)::bigint AS total_tokens,
                 COALESCE(sum(q.total_cost), 0)::bigint AS total_cost, COALESCE(sum(q.actual_total_cost), 0)::bigint AS actual_total_cost
            FROM usage_quarter_hourly q WHERE m.quarters AND q.bucket >= m.from_at AND q.bucket < m.to_at
          UNION ALL
          -- usage (created_at), one range per midnight: an offset off the quarter-hour (a historical local mean time)
          SELECT count(*), COALESCE(sum(u.total_tokens), 0)::bigint, COALESCE(sum(u.total_cost), 0)::bigint, COALESCE(sum(u.actual_total_cost), 0)::bigint
            FROM usage u WHERE NOT m.quarters AND u.created_at >= m.from_at AND u.created_at < m.to_at AND ${FINISHED}
        ) x
    ), parts AS (
      SELECT day, requests, total_tokens, total_cost, actual_total_cost FROM hours
      UNION ALL
      SELECT d.day, d.sign * requests, d.sign * total_tokens, d.sign * total_cost, d.sign * actual_total_cost
        FROM moved CROSS JOIN LATERAL (VALUES (own_day, 1), (middle_day, -1)) AS d(day, sign)
    )
    SELECT to_char(day, 'YYYY-MM-DD') AS day, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens,
           sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost
      FROM parts
     WHERE day BETWEEN $2::date AND $3::date
     GROUP BY day`, [timeZone, first, last])
  return rows
}

// ---- records and detail (raw rows) ----

export interface RecordFilter {
  start: Date | null
  end: Date | null
  userId: string | null
  username: string | null
  model: string | null
  provider: string | null
  apiKeyId: string | null
  /** statuses allowed, null = any */
  statuses: string[] | null
  isStream: boolean | null
  /** failed or status_code >= 400 */
  errorsOnly: boolean
  /** ILIKE patterns (wildcards already escaped), all of which must match; at most KEYWORD_SLOTS */
  patterns: string[]
  /** what one of the patterns matches, as ids: its rows are found through their indexes (see searchPage) */
  driver?: KeywordMatch | null
  /** with a driver: what each pattern matches, in order, so the driven rows are tested on their own columns */
  keywords?: KeywordMatch[]
}

/** A filter whose names are resolved to ids (resolveNames), so usage is only ever read through id indexes. */
export type ResolvedFilter = RecordFilter & {
  /** the user `username` names */
  namedUserId: string | null
  /** the provider `provider` names */
  providerId: string | null
}

/**
 * The user and provider a filter names, through users (username) and providers (name),
 * both unique: null for a name given that names nothing.
 */
export async function resolveNames (db: Sql, username: string | null, provider: string | null): Promise<{ userId: string | null, providerId: string | null }> {
  if (username === null && provider === null) return { userId: null, providerId: null }
  const { rows } = await db.query<{ user_id: string | null, provider_id: string | null }>(`
    SELECT (SELECT id FROM users WHERE username = $1) AS user_id, (SELECT id FROM providers WHERE name = $2) AS provider_id`, [username, provider])
  return { userId: rows[0]!.user_id, providerId: rows[0]!.provider_id }
}

/**
 * Search keywords, one per parameter slot ($11–$20; an unused slot is NULL and folds
 * away): each must match one of the four fields. Written out as plain column ILIKE
 * constant, each gets the columns' statistics, so for a common word the planner walks
 * usage (created_at) backwards to fill the page instead of sorting every match.
 */
export const KEYWORD_SLOTS = 10
const keywordSlot = (n: number) =>
  `AND ($${n}::text IS NULL OR us.username ILIKE $${n} OR k.name ILIKE $${n} OR u.model ILIKE $${n} OR COALESCE(p.name, u.provider_name) ILIKE $${n})`

const RECORD_FROM = `
  FROM usage u
  LEFT JOIN users us ON us.id = u.user_id
  LEFT JOIN api_keys k ON k.id = u.api_key_id
  LEFT JOIN providers p ON p.id = u.provider_id`

// Filters are ids (names resolved first, resolveNames) so each can use its index: usage (user_id, created_at),
// (model, created_at), (provider_id, created_at), (api_key_id, created_at), (status). $4 is the user `username` names.
const RECORD_WHERE = `
  WHERE ($1::timestamptz IS NULL OR u.created_at >= $1)
    AND ($2::timestamptz IS NULL OR u.created_at < $2)
    AND ($3::uuid IS NULL OR u.user_id = $3)
    AND ($4::uuid IS NULL OR u.user_id = $4)
    AND ($5::text IS NULL OR u.model = $5)
    AND ($6::uuid IS NULL OR u.provider_id = $6)
    AND ($7::uuid IS NULL OR u.api_key_id = $7)
    AND ($8::usage_status[] IS NULL OR u.status = ANY($8))
    AND ($9::boolean IS NULL OR u.is_stream = $9)
    AND (NOT $10::boolean OR u.status = 'failed' OR u.status_code >= 400)
    ${Array.from({ length: KEYWORD_SLOTS }, (_, i) => keywordSlot(11 + i)).join('\n    ')}`

const filterParams = (f: ResolvedFilter) => [f.start, f.end, f.userId, f.namedUserId, f.model, f.providerId, f.apiKeyId, f.statuses, f.isStream, f.errorsOnly,
  ...Array.from({ length: KEYWORD_SLOTS }, (_, i) => f.patterns[i] ?? null)]

/** has_fallback: more than one candidate actually sent; request_candidates (request_id, …) */
const RECORD_COLUMNS = `
  u.id, u.request_id, u.user_id, us.username, us.email, u.api_key_id, k.name AS api_key_name, k.key_prefix AS api_key_display,
  u.provider_id, COALESCE(p.name, u.provider_name) AS provider, u.model, u.target_model, u.api_format, u.is_stream, u.status::text AS status,
  u.status_code, u.error_message, u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.total_tokens,
  u.total_cost, u.actual_total_cost, u.response_time_ms, u.first_byte_time_ms, u.created_at,
  (SELECT count(*) FROM request_candidates c WHERE c.request_id = u.request_id AND ${EXECUTED}) > 1 AS has_fallback`

export interface RecordRow {
  id: string
  request_id: string
  user_id: string | null
  username: string | null
  email: string | null
  api_key_id: string | null
  api_key_name: string | null
  api_key_display: string | null
  provider_id: string | null
  provider: string | null
  model: string
  target_model: string | null
  api_format: string | null
  is_stream: boolean
  status: string
  status_code: number | null
  error_message: string | null
  input_tokens: number
  output_tokens: number
  cache_creation_input_tokens: number
  cache_read_input_tokens: number
  total_tokens: number
  total_cost: string
  actual_total_cost: string
  response_time_ms: number | null
  first_byte_time_ms: number | null
  created_at: Date
  has_fallback: boolean
}

/** What a keyword matches in the small tables: usernames, key names, provider names, and the models in usage. */
export interface KeywordMatch { pattern: string, users: string[], keys: string[], providers: string[], models: string[] }

/**
 * Resolves keywords to ids, all in one statement. The models are usage's distinct
 * models, read once by a loose scan of usage (model, created_at): one index probe per
 * model, however many rows. For one user's rows (`userId`), only that user and their
 * keys can match: another's key would only lead to rows the user filter then drops.
 */
export async function keywordMatches (db: Sql, patterns: string[], userId: string | null = null): Promise<KeywordMatch[]> {
  const { rows } = await db.query<KeywordMatch & { n: string }>(`
    WITH RECURSIVE models AS (
      SELECT min(model) AS model FROM usage
      UNION ALL
      SELECT (SELECT min(u.model) FROM usage u WHERE u.model > m.model) FROM models m WHERE m.model IS NOT NULL
    ), known AS MATERIALIZED (SELECT model FROM models WHERE model IS NOT NULL)
    SELECT k.n, k.pattern,
           ARRAY(SELECT id::text FROM users WHERE username ILIKE k.pattern AND ($2::uuid IS NULL OR id = $2)) AS users,
           ARRAY(SELECT id::text FROM api_keys WHERE name ILIKE k.pattern AND ($2::uuid IS NULL OR user_id = $2)) AS keys,
           ARRAY(SELECT id::text FROM providers WHERE name ILIKE k.pattern) AS providers,
           ARRAY(SELECT model FROM known WHERE model ILIKE k.pattern) AS models
      FROM unnest($1::text[]) WITH ORDINALITY AS k(pattern, n)
     ORDER BY k.n`, [patterns, userId])
  return rows.map(({ n: _n, ...match }) => match)
}

/**
 * Whether a row of a deleted provider (provider_id cleared, provider_name kept) has a
 * name matching `pattern`: the one way a keyword matching no id still matches rows.
 * usage (provider_id, created_at) finds the rows whose provider is gone.
 */
export async function goneProviderMatches (db: Sql, pattern: string): Promise<boolean> {
  const { rows } = await db.query<{ found: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM usage u WHERE u.provider_id IS NULL AND u.provider_name ILIKE $1) AS found', [pattern])
  return rows[0]!.found
}

/** The planner's estimate of the usage rows a keyword's ids select (usage's statistics on each column). */
export async function estimateKeyword (db: Sql, match: KeywordMatch): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(`
    EXPLAIN (FORMAT JSON) SELECT 1 FROM usage u
     WHERE u.user_id = ANY($1::uuid[]) OR u.api_key_id = ANY($2::uuid[]) OR u.model = ANY($3::text[]) OR u.provider_id = ANY($4::uuid[])`,
  [match.users, match.keys, match.models, match.providers])
  return rows[0]!['QUERY PLAN'][0]!.Plan['Plan Rows']
}

/**
 * The rows matching the filter, found through one keyword (the driver): every row it
 * matches has one of its users, keys, models or providers — or, provider gone, a
 * matching provider_name — so each of those is read newest first through its own
 * index (usage (user_id | api_key_id | model | provider_id, created_at)), with every
 * filter applied, at most $21 rows each; their union holds the newest $21 matches.
 * Each keyword is tested on the row's own columns against the ids it resolved to
 * (DRIVEN_WHERE), not by ILIKE on joined names: a branch may read several rows per
 * match, and the joins and eight ILIKEs were most of each row's cost.
 * Params: the filter's $1–$20, $21 rows per branch, $22–$26 the driver's ids and
 * pattern, $27–$66 each keyword's ids (four arrays per slot; its pattern is $11–$20).
 */
const resolvedSlot = (i: number) => {
  const [pattern, users, keys, models, providers] = [11 + i, 27 + 4 * i, 28 + 4 * i, 29 + 4 * i, 30 + 4 * i]
  return `AND ($${pattern}::text IS NULL OR u.user_id = ANY($${users}::uuid[]) OR u.api_key_id = ANY($${keys}::uuid[]) OR u.model = ANY($${models}::text[])
      OR u.provider_id = ANY($${providers}::uuid[]) OR (u.provider_id IS NULL AND u.provider_name ILIKE $${pattern}))`
}
const DRIVEN_WHERE = `${RECORD_WHERE.slice(0, RECORD_WHERE.indexOf(keywordSlot(11)))}
    ${Array.from({ length: KEYWORD_SLOTS }, (_, i) => resolvedSlot(i)).join('\n    ')}`
const branch = (values: string, column: string) => `
      SELECT x.id, x.created_at FROM unnest(${values}) AS v(value) CROSS JOIN LATERAL (
        SELECT u.id, u.created_at FROM usage u ${DRIVEN_WHERE} AND u.${column} = v.value
         ORDER BY u.created_at DESC, u.id DESC LIMIT $21
      ) x`
const DRIVEN = `
    SELECT id, created_at FROM (${branch('$22::uuid[]', 'user_id')}
      UNION ${branch('$23::uuid[]', 'api_key_id')}
      UNION ${branch('$24::text[]', 'model')}
      UNION ${branch('$25::uuid[]', 'provider_id')}
      UNION (
        SELECT u.id, u.created_at FROM usage u ${DRIVEN_WHERE} AND u.provider_id IS NULL AND u.provider_name ILIKE $26
         ORDER BY u.created_at DESC, u.id DESC LIMIT $21)
    ) d`
/**
 * The driven queries' parameters after the filter's $1–$20. The driver's own slot is
 * left empty: every driven row matches it by construction, and a second test of it
 * would only make the planner think each branch's rows rarer than they are (it then
 * prefers a bitmap of all the driver's rows to the branch's newest-first index walk).
 */
const drivenParams = (filter: ResolvedFilter, perBranch: number): unknown[] => {
  const driver = filter.driver!
  const keywords = filter.keywords!
  const own = keywords.findIndex((k) => k.pattern === driver.pattern)
  const base = filterParams(filter)
  base[10 + own] = null
  return [...base, perBranch, driver.users, driver.keys, driver.models, driver.providers, driver.pattern,
    ...Array.from({ length: KEYWORD_SLOTS }, (_, i) => {
      const k = keywords[i]
      return k === undefined || i === own ? [null, null, null, null] : [k.users, k.keys, k.models, k.providers]
    }).flat()]
}

/** One page, newest first; the page's ids first, so has_fallback runs for those rows only. */
export async function recordPage (db: Sql, filter: ResolvedFilter, limit: number, offset: number): Promise<RecordRow[]> {
  const driver = filter.driver ?? null
  const { rows } = await db.query<RecordRow>(`
    WITH page AS (
      ${driver === null
        ? `SELECT u.id, u.created_at ${RECORD_FROM} ${RECORD_WHERE} ORDER BY u.created_at DESC, u.id DESC LIMIT $21 OFFSET $22`
        : `${DRIVEN} ORDER BY created_at DESC, id DESC LIMIT $67 OFFSET $68`}
    )
    SELECT ${RECORD_COLUMNS}
      FROM page JOIN usage u ON u.id = page.id
      LEFT JOIN users us ON us.id = u.user_id
      LEFT JOIN api_keys k ON k.id = u.api_key_id
      LEFT JOIN providers p ON p.id = u.provider_id
     ORDER BY page.created_at DESC, page.id DESC`,
  driver === null ? [...filterParams(filter), limit, offset] : [...drivenParams(filter, limit + offset), limit, offset])
  return rows
}

/**
 * How many rows match, counting at most `cap` + 1 of them (an exact count of millions
 * costs seconds). Through a driver, each branch stops at `cap` + 1: the union exceeds
 * `cap` exactly when the matches do.
 */
export async function countRecords (db: Sql, filter: ResolvedFilter, cap: number): Promise<number> {
  const driver = filter.driver ?? null
  const { rows } = driver === null
    ? await db.query<{ n: number }>(`
      SELECT count(*)::int AS n FROM (SELECT 1 ${RECORD_FROM} ${RECORD_WHERE} LIMIT $21) s`, [...filterParams(filter), cap + 1])
    : await db.query<{ n: number }>(`
      SELECT count(*)::int AS n FROM (${DRIVEN} LIMIT $21) s`, drivenParams(filter, cap + 1))
  return rows[0]!.n
}

/** The planner's estimate of the matching rows. */
export async function estimateRecords (db: Sql, filter: ResolvedFilter): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: { 'Plan Rows': number } }> }>(
    `EXPLAIN (FORMAT JSON) SELECT 1 ${RECORD_FROM} ${RECORD_WHERE}`, filterParams(filter))
  return Math.round(rows[0]!['QUERY PLAN'][0]!.Plan['Plan Rows'])
}

export type DetailRow = RecordRow & Record<
  'input_cost' | 'output_cost' | 'cache_creation_cost' | 'cache_read_cost' | 'request_cost' | 'actual_input_cost' | 'actual_output_cost' |
  'actual_cache_creation_cost' | 'actual_cache_read_cost' | 'actual_request_cost' | 'rate_multiplier', string> & Record<
  'input_price_per_1m' | 'output_price_per_1m' | 'cache_write_5m_price_per_1m' | 'cache_write_1h_price_per_1m' | 'cache_read_price_per_1m' |
  'price_per_request', string | null> & {
    cache_creation_5m_input_tokens: number
    cache_creation_1h_input_tokens: number
    provider_endpoint_id: string | null
    provider_api_key_id: string | null
    pricing_source: string | null
    tiered_pricing: TieredPricing | null
    metadata: unknown
    finished_at: Date | null
    request_headers: unknown
    response_headers: unknown
    request_body: unknown
    response_body: unknown
  }

/** One usage row with everything about it; `userId` scopes it to its owner. usage primary key, usage_bodies primary key. */
export async function usageDetail (db: Sql, id: string, userId: string | null): Promise<DetailRow | undefined> {
  const { rows } = await db.query<DetailRow>({
    name: 'usage-detail', // planned once per connection: planning was half of this lookup's time
    text: `
    SELECT ${RECORD_COLUMNS},
           u.cache_creation_5m_input_tokens, u.cache_creation_1h_input_tokens, u.provider_endpoint_id, u.provider_api_key_id,
           u.input_cost, u.output_cost, u.cache_creation_cost, u.cache_read_cost, u.request_cost,
           u.actual_input_cost, u.actual_output_cost, u.actual_cache_creation_cost, u.actual_cache_read_cost, u.actual_request_cost,
           u.input_price_per_1m, u.output_price_per_1m, u.cache_write_5m_price_per_1m, u.cache_write_1h_price_per_1m,
           u.cache_read_price_per_1m, u.price_per_request, u.rate_multiplier::text AS rate_multiplier, u.pricing_source,
           u.tiered_pricing, u.metadata, u.finished_at,
           b.request_headers, b.response_headers, b.request_body, b.response_body
      ${RECORD_FROM}
      LEFT JOIN usage_bodies b ON b.usage_id = u.id
     WHERE u.id = $1 AND ($2::uuid IS NULL OR u.user_id = $2)`,
    values: [id, userId]
  })
  return rows[0]
}

export interface CandidateRow {
  candidate_index: number
  retry_index: number
  provider_id: string | null
  provider: string | null
  provider_endpoint_id: string | null
  provider_api_key_id: string | null
  status: string
  skip_reason: string | null
  is_cached: boolean
  status_code: number | null
  error_type: string | null
  error_message: string | null
  latency_ms: number | null
  started_at: Date | null
  finished_at: Date | null
}

/** A request's candidates in the order they were tried. request_candidates (request_id, candidate_index, retry_index). */
/** The candidates of the usage row `usageId` (usage primary key, then request_candidates (request_id, …)), so they can be read beside the row. */
export async function requestCandidates (db: Sql, usageId: string): Promise<CandidateRow[]> {
  const { rows } = await db.query<CandidateRow>({
    name: 'usage-detail-candidates',
    text: `
    SELECT c.candidate_index, c.retry_index, c.provider_id, p.name AS provider, c.provider_endpoint_id, c.provider_api_key_id,
           c.status::text AS status, c.skip_reason, c.is_cached, c.status_code, c.error_type, c.error_message, c.latency_ms,
           c.started_at, c.finished_at
      FROM request_candidates c
      LEFT JOIN providers p ON p.id = c.provider_id
     WHERE c.request_id = (SELECT request_id FROM usage WHERE id = $1)
     ORDER BY c.candidate_index, c.retry_index`,
    values: [usageId]
  })
  return rows
}
