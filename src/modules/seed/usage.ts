// The usage rows, generated inside PostgreSQL: row n (0 ≤ n < N) is a pure function
// of (seed, n) through hashint8extended, so a chunk is one INSERT … SELECT over
// generate_series and nothing crosses the wire. Rows are numbered in time order (see
// planHours) and ids are uuidv7-style (milliseconds first), so the primary key and
// the request_id index grow at their right edge, as a real gateway's do. Costs are
// priced by the SQL form of accounting/pricing.ts's rule (its constants, its rounding,
// its tier choice), and the tests check them against priceRequest row by row.
import sql, { empty, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { chargeFromRollups, rollupInFlightSeconds, rollupUsageRange } from '../accounting/bulk.js'
import { actualCostSql, cacheCreationCostSql, componentCostSql, inputContextSql, requestCostSql, tierIndexSql } from '../accounting/pricing.js'

const streams = (seed: number) => BigInt(seed) * 1000n
/** uniform in (0, 1) from 53 bits of a seeded 64-bit hash of n; `k` picks an independent stream */
const u = (base: bigint, k: number) => `((hashint8extended(n, ${base + BigInt(k)}) & 9007199254740991)::float8 + 0.5) / 9007199254740992.0`
/** standard normal (Box–Muller) */
const z = (base: bigint, k: number) => `sqrt(-2 * ln(${u(base, k)})) * cos(2 * pi() * ${u(base, k + 1)})`
/** a uuidv7 as 32 hex digits: 48 bits of milliseconds, version 7, 12 + 62 hash bits with the RFC variant (10xx) */
const idHex = (base: bigint, ms: string) => `lpad(to_hex(${ms}), 12, '0') || '7' || lpad(to_hex(hashint8extended(n, ${base + 40n}) & 4095), 3, '0')
  || to_hex((hashint8extended(n, ${base + 41n}) & 4611686018427387903) | -9223372036854775808)`

/** a request id that sorts by time too (its index grows at the right edge) */
const requestId = (base: bigint, ms: string) => `'req_' || lpad(to_hex(${ms}), 12, '0') || lpad(to_hex(hashint8extended(n, ${base + 42n})), 16, '0')`

const query = async (db: Sql, q: Fragment) => db.query(q.text, q.values)

/** A row's input context, over the columns rowsSql names its token counts */
const SEED_CONTEXT = inputContextSql({ input: raw('s.input_tokens'), cacheWrite5m: raw('s.cw5'), cacheWrite1h: raw('s.cw1h'), cacheRead: raw('s.cache_read') })

/** Fallbacks: 2% of requests, 70% of them with two attempts, the rest three. */
const FALLBACK_SHARE = 0.02

/**
 * Rows n ∈ [$1, $2) — or only the fallback ones among them — with every value a usage
 * row needs plus what its candidates need. Each level is fenced (OFFSET 0) so its
 * expressions are computed once, not copied into every use above it.
 */
function rowsSql (seed: number, fallbacksOnly: boolean, from: number, to: number): Fragment {
  const b = streams(seed)
  return sql`
  SELECT t.*,
    t.prior_ms + CASE WHEN t.failed THEN round(t.ttfb * (0.3 + t.u_cancel))::int ELSE t.ttfb + round(t.output_tokens * 1000 / t.speed)::int END AS response_ms,
    ${componentCostSql(raw('t.input_tokens'), raw('p.p_in'))} AS input_cost,
    ${componentCostSql(raw('t.output_tokens'), raw('p.p_out'))} AS output_cost,
    ${cacheCreationCostSql(raw('t.cw5'), raw('p.p_w5'), raw('t.cw1h'), raw('p.p_w1h'))} AS cache_creation_cost,
    ${componentCostSql(raw('t.cache_read'), raw('p.p_rd'))} AS cache_read_cost,
    ${requestCostSql(raw(`t.status = 'completed'`), raw('p.per_request'))} AS request_cost,
    p.priced, p.p_in, p.p_out, p.p_w5, p.p_w1h, p.p_rd, p.per_request, p.price_id, p.free, p.micros, p.rate_multiplier
  FROM (
    SELECT s.*, ${SEED_CONTEXT} AS context,
      -- the tier, chosen as priceRequest chooses it (the seed prices at most two: s.up_to is the first's bound)
      s.route_idx * 2 + ${tierIndexSql(SEED_CONTEXT, [raw('s.up_to')])} AS price_key
    FROM (
      SELECT a.n, a.ms, a.id_hex, a.request_id, a.api_key_id, a.user_id, a.route_idx, a.model_idx, a.up_to, a.status, a.failed, a.is_stream, a.ttfb, a.speed,
        a.candidates, a.lat0, a.lat1, a.u_cancel,
        CASE WHEN a.failed THEN 0 WHEN a.cache_case = 0 THEN a.fresh + a.prefix ELSE a.fresh - e.extension END AS input_tokens,
        CASE WHEN a.failed OR a.ttl = 60 THEN 0 WHEN a.cache_case = 2 THEN a.prefix ELSE e.extension END AS cw5,
        CASE WHEN a.failed OR a.ttl <> 60 THEN 0 WHEN a.cache_case = 2 THEN a.prefix ELSE e.extension END AS cw1h,
        CASE WHEN a.failed OR a.cache_case <> 1 THEN 0 ELSE a.prefix END AS cache_read,
        CASE a.status WHEN 'completed' THEN a.out WHEN 'cancelled' THEN floor(a.out * a.u_cancel)::int ELSE 0 END AS output_tokens,
        CASE a.status WHEN 'completed' THEN 200 WHEN 'cancelled' THEN 499
          ELSE (CASE WHEN a.u_code < 0.35 THEN 429 WHEN a.u_code < 0.55 THEN 529 WHEN a.u_code < 0.7 THEN 500 WHEN a.u_code < 0.8 THEN 502 WHEN a.u_code < 0.9 THEN 503 ELSE 400 END) END AS status_code,
        CASE a.candidates WHEN 2 THEN a.lat0 WHEN 3 THEN a.lat0 + a.lat1 ELSE 0 END AS prior_ms
      FROM (
        SELECT k.n, k.ms, k.id_hex, k.request_id, k.api_key_id, k.user_id, k.u_cancel, k.u_code, k.lat0, k.lat1, k.u_ext,
          rt.idx AS route_idx, rt.model_idx, rt.up_to, rt.ttl, rt.cache,
          CASE WHEN k.u_status < k.fail_rate THEN 'failed' WHEN k.u_status < k.fail_rate + 0.005 THEN 'cancelled' ELSE 'completed' END::usage_status AS status,
          k.u_status < k.fail_rate AS failed,
          least(200000, greatest(1, round(rt.in_median * exp(k.z_in))))::int AS fresh,
          least(900000, round(rt.prefix_median * exp(1.1 * k.z_prefix)))::int AS prefix,
          least(64000, greatest(1, round(rt.out_median * exp(k.z_out))))::int AS out,
          -- 0 no cache, 1 a hit (reads the prefix), 2 a miss that writes it; hit rates vary by key
          CASE WHEN rt.cache = 0 THEN 0 WHEN k.u_cache < 0.3 + 0.5 * k.cache_affinity THEN 1
               WHEN rt.cache = 2 AND k.u_cache < 0.55 + 0.5 * k.cache_affinity THEN 2 ELSE 0 END AS cache_case,
          k.u_stream < k.stream_share AS is_stream,
          round(rt.ttfb * exp(0.4 * k.z_ttfb))::int AS ttfb,
          rt.speed * exp(0.25 * k.z_speed) AS speed,
          CASE WHEN k.u_fallback < ${raw(String(FALLBACK_SHARE * 0.7))} THEN 2 WHEN k.u_fallback < ${raw(String(FALLBACK_SHARE))} THEN 3 ELSE 0 END AS candidates
        FROM (
          SELECT r.*, k.id AS api_key_id, k.user_id, k.stream_share, k.cache_affinity, ${raw(idHex(b, 'r.ms'))} AS id_hex, ${raw(requestId(b, 'r.ms'))} AS request_id,
            -- 80% of a key's requests go to its home model (64 slots per model), the rest anywhere by popularity
            CASE WHEN r.u_home < 0.8 THEN k.home_model * 64 + (r.route_slot & 63) ELSE 100000 + r.route_slot END AS route_key
          FROM (
            SELECT n, CASE WHEN h.incident THEN 0.25 ELSE 0.027 END AS fail_rate,
              h.from_ms + floor((n - h.first_n + ${raw(u(b, 0))}) * (h.to_ms - h.from_ms) / (h.end_n - h.first_n))::bigint AS ms,
              CASE WHEN h.burst_key >= 0 AND ${raw(u(b, 1))} < h.burst_share THEN h.burst_key END AS burst_key,
              hashint8extended(n, ${raw(String(b + 2n))}) & 65535 AS key_slot,
              ${raw(u(b, 3))} AS u_home,
              hashint8extended(n, ${raw(String(b + 4n))}) & 4095 AS route_slot,
              ${raw(z(b, 5))} AS z_in, ${raw(z(b, 7))} AS z_prefix, ${raw(z(b, 9))} AS z_out, ${raw(z(b, 11))} AS z_ttfb, ${raw(z(b, 13))} AS z_speed,
              ${raw(u(b, 15))} AS u_cache, ${raw(u(b, 16))} AS u_ext, ${raw(u(b, 17))} AS u_status, ${raw(u(b, 18))} AS u_code, ${raw(u(b, 19))} AS u_stream,
              ${raw(u(b, 20))} AS u_fallback, ${raw(u(b, 21))} AS u_cancel,
              300 + floor(1500 * ${raw(u(b, 22))})::int AS lat0, 300 + floor(1500 * ${raw(u(b, 23))})::int AS lat1
            FROM _seed_hours h CROSS JOIN LATERAL generate_series(greatest(h.first_n, ${from}::bigint), least(h.end_n, ${to}::bigint) - 1) AS n
            WHERE h.first_n < ${to}::bigint AND h.end_n > ${from}::bigint ${fallbacksOnly ? sql`AND ${raw(u(b, 20))} < ${raw(String(FALLBACK_SHARE))}` : empty}
            OFFSET 0
          ) r
          JOIN _seed_key_slots ks ON ks.slot = r.key_slot
          JOIN _seed_keys k ON k.idx = coalesce(r.burst_key, ks.key_idx)
          OFFSET 0
        ) k
        JOIN _seed_route_slots rs ON rs.key = k.route_key
        JOIN _seed_routes rt ON rt.idx = rs.route_idx
        OFFSET 0
      ) a
      -- a Claude cache hit often also writes the turn it adds
      CROSS JOIN LATERAL (SELECT CASE WHEN a.cache_case = 1 AND a.cache = 2 AND a.u_ext < 0.4 THEN a.fresh / 2 ELSE 0 END AS extension) e
      OFFSET 0
    ) s
    OFFSET 0
  ) t
  JOIN _seed_prices p ON p.key = t.price_key`
}

/** Inserts the usage rows n ∈ [from, to). */
export async function insertChunk (db: Sql, seed: number, from: number, to: number): Promise<void> {
  const actual = (c: string) => actualCostSql(raw(c), raw('micros'), raw('free'))
  await query(db, sql`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id, provider_name, model, target_model,
      api_format, is_stream, status, status_code, error_message, input_tokens, output_tokens, cache_creation_input_tokens, cache_creation_5m_input_tokens,
      cache_creation_1h_input_tokens, cache_read_input_tokens, total_tokens, input_cost, output_cost, cache_creation_cost, cache_read_cost, request_cost,
      total_cost, actual_total_cost,
      model_price_id, rate_multiplier, response_time_ms, first_byte_time_ms, created_at, finished_at, updated_at)
    SELECT x.id_hex::uuid, x.request_id, x.user_id, x.api_key_id, rt.provider_id, rt.endpoint_id, rt.provider_key_id, rt.provider_name, rt.model, rt.target_model,
      rt.api_format, x.is_stream, x.status, x.status_code,
      CASE x.status_code WHEN 429 THEN 'rate limit exceeded' WHEN 529 THEN 'upstream overloaded' WHEN 500 THEN 'upstream internal error'
        WHEN 502 THEN 'bad gateway' WHEN 503 THEN 'upstream unavailable' WHEN 400 THEN 'invalid request: prompt is too long' END,
      x.input_tokens, x.output_tokens, x.cw5 + x.cw1h, x.cw5, x.cw1h, x.cache_read, x.input_tokens + x.output_tokens + x.cw5 + x.cw1h + x.cache_read,
      x.input_cost, x.output_cost, x.cache_creation_cost, x.cache_read_cost, x.request_cost,
      x.input_cost + x.output_cost + x.cache_creation_cost + x.cache_read_cost + x.request_cost,
      ${actual('x.input_cost')} + ${actual('x.output_cost')} + ${actual('x.cache_creation_cost')} + ${actual('x.cache_read_cost')} + ${actual('x.request_cost')},
      x.price_id, x.rate_multiplier,
      x.response_ms, CASE WHEN x.is_stream AND NOT x.failed THEN x.prior_ms + x.ttfb END,
      timestamptz 'epoch' + x.ms * interval '1 millisecond',
      timestamptz 'epoch' + (x.ms + x.response_ms) * interval '1 millisecond',
      timestamptz 'epoch' + (x.ms + x.response_ms) * interval '1 millisecond'
    FROM (${rowsSql(seed, false, from, to)}) x JOIN _seed_routes rt ON rt.idx = x.route_idx`)
}

/**
 * The request candidates of the fallbacks among rows [from, to): the same rows,
 * re-derived (only the 2% that fell back get past the first level). Earlier attempts
 * went to another route of the same model — maybe the same provider, a retry on
 * another key — and failed; the last is the request's own outcome.
 */
export async function insertCandidates (db: Sql, seed: number, from: number, to: number): Promise<void> {
  const b = streams(seed)
  await query(db, sql`
    INSERT INTO request_candidates (request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at)
    SELECT g.request_id, c.i, 0, g.user_id, g.api_key_id, rt.provider_id, rt.endpoint_id, rt.provider_key_id,
      CASE WHEN f.failed THEN 'failed' ELSE 'success' END::candidate_status, false, f.code,
      CASE WHEN f.failed THEN (CASE f.code WHEN 429 THEN 'rate_limited' WHEN 529 THEN 'overloaded' WHEN 503 THEN 'unavailable'
        WHEN 400 THEN 'invalid_request' ELSE 'server_error' END) END,
      CASE WHEN f.failed THEN 'upstream attempt failed' END,
      f.finish - f.start, timestamptz 'epoch' + (g.ms + f.start) * interval '1 millisecond', timestamptz 'epoch' + (g.ms + f.finish) * interval '1 millisecond',
      timestamptz 'epoch' + g.ms * interval '1 millisecond'
    FROM (${rowsSql(seed, true, from, to)}) g
    CROSS JOIN LATERAL generate_series(0, g.candidates - 1) AS c(i)
    LEFT JOIN _seed_route_slots rs ON c.i < g.candidates - 1 AND rs.key = g.model_idx * 64 + (hashint8extended(g.n * 4 + c.i, ${raw(String(b + 30n))}) & 63)
    JOIN _seed_routes rt ON rt.idx = coalesce(rs.route_idx, g.route_idx)
    CROSS JOIN LATERAL (SELECT
      rs.key IS NOT NULL OR g.status = 'failed' AS failed,
      CASE WHEN rs.key IS NULL THEN g.status_code ELSE (ARRAY[429, 529, 503, 500])[1 + (hashint8extended(g.n * 4 + c.i, ${raw(String(b + 31n))}) & 3)] END AS code,
      CASE c.i WHEN 0 THEN 0 WHEN 1 THEN g.lat0 ELSE g.lat0 + g.lat1 END AS start,
      CASE c.i WHEN g.candidates - 1 THEN g.response_ms WHEN 0 THEN g.lat0 ELSE g.lat0 + g.lat1 END AS finish) f`)
}

/**
 * The last rows: requests still in flight (pending, or streaming after their first
 * byte), started in the last few minutes, not yet priced, counted nowhere else.
 */
export async function insertInFlight (db: Sql, seed: number, from: number, to: number, nowMs: number): Promise<void> {
  const b = streams(seed)
  await query(db, sql`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id, provider_name, model, target_model,
      api_format, is_stream, status, first_byte_time_ms, created_at, updated_at)
    SELECT i.id_hex::uuid, ${raw(requestId(b, 't.ms'))}, k.user_id, k.id, rt.provider_id, rt.endpoint_id, rt.provider_key_id, rt.provider_name,
      rt.model, rt.target_model, rt.api_format, n % 3 = 0 OR ${raw(u(b, 19))} < k.stream_share, CASE WHEN n % 3 = 0 THEN 'streaming' ELSE 'pending' END::usage_status,
      CASE WHEN n % 3 = 0 THEN 300 + (n % 7) * 150 END, timestamptz 'epoch' + t.ms * interval '1 millisecond', timestamptz 'epoch' + t.ms * interval '1 millisecond'
    FROM generate_series(${from}::bigint, ${to}::bigint - 1) AS n
    CROSS JOIN LATERAL (SELECT ${nowMs}::bigint - (${to}::bigint - n) * 13000 AS ms) t
    CROSS JOIN LATERAL (SELECT ${raw(idHex(b, 't.ms'))} AS id_hex) i
    JOIN _seed_key_slots ks ON ks.slot = hashint8extended(n, ${raw(String(b + 2n))}) & 65535
    JOIN _seed_keys k ON k.idx = ks.key_idx
    JOIN _seed_route_slots rs ON rs.key = 100000 + (hashint8extended(n, ${raw(String(b + 4n))}) & 4095)
    JOIN _seed_routes rt ON rt.idx = rs.route_idx`)
  await rollupInFlightSeconds(db)
}

/** The smallest uuidv7 of a millisecond: ids sort by time, so a time range is a primary-key range. */
const idAt = (ms: number) => ms.toString(16).padStart(12, '0') + '0'.repeat(20)

/** The rollups summed from the raw rows created in [fromMs, toMs) (whole hours: no other chunk touches their rows), read through the primary key. */
export async function rollupHours (db: Sql, fromMs: number, toMs: number): Promise<void> {
  await rollupUsageRange(db, { from: idAt(fromMs), to: idAt(toMs) })
}

/**
 * What ingestion charges as it goes (the keys' and users' totals, from the rollups),
 * then the balances and quotas granted, set around them.
 */
export async function chargeTotals (db: Sql, quotaUsers: string[]): Promise<void> {
  await chargeFromRollups(db)
  // standalone balances: used up (granted = used), unlimited (null), or used × factor rounded up to whole USD
  await db.query(`
    UPDATE api_keys k SET current_balance = CASE sk.balance WHEN 'exhausted' THEN k.balance_used WHEN 'unlimited' THEN NULL
      ELSE greatest(10, ceil(k.balance_used * sk.balance::numeric / 1e9))::bigint * 1000000000 END
    FROM _seed_keys sk WHERE sk.id = k.id AND sk.balance IS NOT NULL`)
  await db.query(`UPDATE users SET quota = greatest(50, ceil(used * 1.5 / 1e9))::bigint * 1000000000 WHERE id = ANY($1::uuid[])`, [quotaUsers])
  // every provider: this UTC month's actual cost, with the month it counts (accounting/model.ts PROVIDER_MONTH)
  await db.query(`
    UPDATE providers p SET monthly_used = coalesce((SELECT sum(actual_total_cost) FROM usage_hourly_provider m
      WHERE m.provider_id = p.id AND m.bucket >= date_trunc('month', now(), 'UTC')), 0),
      monthly_used_month = (date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC')::date`)
}
