// The usage rows, generated inside PostgreSQL: row n (0 ≤ n < N) is a pure function
// of (seed, n) through hashint8extended, so a chunk is one INSERT … SELECT over
// generate_series and nothing crosses the wire. Rows are numbered in time order (see
// planHours) and ids are uuidv7-style (milliseconds first), so the primary key and
// the request_id index grow at their right edge, as a real gateway's do. Costs use
// pricing.ts's integer arithmetic — round half up on non-negative nano-USD,
// (x + 500000) / 1000000 — and are checked against priceRequest row by row in the tests.
import type { Sql } from '../../db/prisma.js'

const NIL = '00000000-0000-0000-0000-000000000000'
const FINISHED = `status IN ('completed', 'failed', 'cancelled')`
/** a candidate actually sent to its provider */
const EXECUTED = `c.status NOT IN ('skipped', 'available')`

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

/** Fallbacks: 2% of requests, 70% of them with two attempts, the rest three. */
const FALLBACK_SHARE = 0.02

/**
 * Rows n ∈ [$1, $2) — or only the fallback ones among them — with every value a usage
 * row needs plus what its candidates need. Each level is fenced (OFFSET 0) so its
 * expressions are computed once, not copied into every use above it.
 */
function rowsSql (seed: number, fallbacksOnly: boolean): string {
  const b = streams(seed)
  return `
  SELECT t.*,
    t.prior_ms + CASE WHEN t.failed THEN round(t.ttfb * (0.3 + t.u_cancel))::int ELSE t.ttfb + round(t.output_tokens * 1000 / t.speed)::int END AS response_ms,
    (t.input_tokens::bigint * p.p_in + 500000) / 1000000 AS input_cost,
    (t.output_tokens::bigint * p.p_out + 500000) / 1000000 AS output_cost,
    (t.cw5::bigint * p.p_w5 + t.cw1h::bigint * p.p_w1h + 500000) / 1000000 AS cache_creation_cost,
    (t.cache_read::bigint * p.p_rd + 500000) / 1000000 AS cache_read_cost,
    CASE WHEN t.status = 'completed' THEN coalesce(p.per_request, 0) ELSE 0 END AS request_cost,
    p.priced, p.p_in, p.p_out, p.p_w5, p.p_w1h, p.p_rd, p.per_request, p.price_id, p.free, p.micros, p.rate_multiplier,
    CASE WHEN p.priced THEN p.facts || jsonb_build_object('total_input_context', t.context) END AS tiered_pricing
  FROM (
    SELECT s.*, s.input_tokens + s.cw5 + s.cw1h + s.cache_read AS context,
      -- the tier: the first whose up_to covers the input context (the seed prices at most two)
      s.route_idx * 2 + CASE WHEN s.up_to IS NULL OR s.input_tokens + s.cw5 + s.cw1h + s.cache_read <= s.up_to THEN 0 ELSE 1 END AS price_key
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
          CASE WHEN k.u_fallback < ${FALLBACK_SHARE * 0.7} THEN 2 WHEN k.u_fallback < ${FALLBACK_SHARE} THEN 3 ELSE 0 END AS candidates
        FROM (
          SELECT r.*, k.id AS api_key_id, k.user_id, k.stream_share, k.cache_affinity, ${idHex(b, 'r.ms')} AS id_hex, ${requestId(b, 'r.ms')} AS request_id,
            -- 80% of a key's requests go to its home model (64 slots per model), the rest anywhere by popularity
            CASE WHEN r.u_home < 0.8 THEN k.home_model * 64 + (r.route_slot & 63) ELSE 100000 + r.route_slot END AS route_key
          FROM (
            SELECT n, CASE WHEN h.incident THEN 0.25 ELSE 0.027 END AS fail_rate,
              h.from_ms + floor((n - h.first_n + ${u(b, 0)}) * (h.to_ms - h.from_ms) / (h.end_n - h.first_n))::bigint AS ms,
              CASE WHEN h.burst_key >= 0 AND ${u(b, 1)} < h.burst_share THEN h.burst_key END AS burst_key,
              hashint8extended(n, ${b + 2n}) & 65535 AS key_slot,
              ${u(b, 3)} AS u_home,
              hashint8extended(n, ${b + 4n}) & 4095 AS route_slot,
              ${z(b, 5)} AS z_in, ${z(b, 7)} AS z_prefix, ${z(b, 9)} AS z_out, ${z(b, 11)} AS z_ttfb, ${z(b, 13)} AS z_speed,
              ${u(b, 15)} AS u_cache, ${u(b, 16)} AS u_ext, ${u(b, 17)} AS u_status, ${u(b, 18)} AS u_code, ${u(b, 19)} AS u_stream,
              ${u(b, 20)} AS u_fallback, ${u(b, 21)} AS u_cancel,
              300 + floor(1500 * ${u(b, 22)})::int AS lat0, 300 + floor(1500 * ${u(b, 23)})::int AS lat1
            FROM _seed_hours h CROSS JOIN LATERAL generate_series(greatest(h.first_n, $1::bigint), least(h.end_n, $2::bigint) - 1) AS n
            WHERE h.first_n < $2::bigint AND h.end_n > $1::bigint ${fallbacksOnly ? `AND ${u(b, 20)} < ${FALLBACK_SHARE}` : ''}
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
  const actual = (c: string) => `CASE WHEN free THEN 0 ELSE (${c} * micros + 500000) / 1000000 END`
  await db.query(`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id, provider_name, model, target_model,
      api_format, is_stream, status, status_code, error_message, input_tokens, output_tokens, cache_creation_input_tokens, cache_creation_5m_input_tokens,
      cache_creation_1h_input_tokens, cache_read_input_tokens, total_tokens, input_cost, output_cost, cache_creation_cost, cache_read_cost, request_cost,
      total_cost, actual_input_cost, actual_output_cost, actual_cache_creation_cost, actual_cache_read_cost, actual_request_cost, actual_total_cost,
      input_price_per_1m, output_price_per_1m, cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m, price_per_request,
      pricing_source, model_price_id, tiered_pricing, rate_multiplier, response_time_ms, first_byte_time_ms, created_at, finished_at, updated_at)
    SELECT x.id_hex::uuid, x.request_id, x.user_id, x.api_key_id, rt.provider_id, rt.endpoint_id, rt.provider_key_id, rt.provider_name, rt.model, rt.target_model,
      rt.api_format, x.is_stream, x.status, x.status_code,
      CASE x.status_code WHEN 429 THEN 'rate limit exceeded' WHEN 529 THEN 'upstream overloaded' WHEN 500 THEN 'upstream internal error'
        WHEN 502 THEN 'bad gateway' WHEN 503 THEN 'upstream unavailable' WHEN 400 THEN 'invalid request: prompt is too long' END,
      x.input_tokens, x.output_tokens, x.cw5 + x.cw1h, x.cw5, x.cw1h, x.cache_read, x.input_tokens + x.output_tokens + x.cw5 + x.cw1h + x.cache_read,
      x.input_cost, x.output_cost, x.cache_creation_cost, x.cache_read_cost, x.request_cost,
      x.input_cost + x.output_cost + x.cache_creation_cost + x.cache_read_cost + x.request_cost,
      ${actual('x.input_cost')}, ${actual('x.output_cost')}, ${actual('x.cache_creation_cost')}, ${actual('x.cache_read_cost')}, ${actual('x.request_cost')},
      ${actual('x.input_cost')} + ${actual('x.output_cost')} + ${actual('x.cache_creation_cost')} + ${actual('x.cache_read_cost')} + ${actual('x.request_cost')},
      CASE WHEN priced THEN p_in END, CASE WHEN priced THEN p_out END, CASE WHEN priced THEN p_w5 END, CASE WHEN priced THEN p_w1h END,
      CASE WHEN priced THEN p_rd END, CASE WHEN priced THEN per_request END,
      CASE WHEN priced THEN 'model_price' ELSE 'unpriced' END, x.price_id, x.tiered_pricing, x.rate_multiplier,
      x.response_ms, CASE WHEN x.is_stream AND NOT x.failed THEN x.prior_ms + x.ttfb END,
      timestamptz 'epoch' + x.ms * interval '1 millisecond',
      timestamptz 'epoch' + (x.ms + x.response_ms) * interval '1 millisecond',
      timestamptz 'epoch' + (x.ms + x.response_ms) * interval '1 millisecond'
    FROM (${rowsSql(seed, false)}) x JOIN _seed_routes rt ON rt.idx = x.route_idx`, [from, to])
}

/**
 * The request candidates of the fallbacks among rows [from, to): the same rows,
 * re-derived (only the 2% that fell back get past the first level). Earlier attempts
 * went to another route of the same model — maybe the same provider, a retry on
 * another key — and failed; the last is the request's own outcome.
 */
export async function insertCandidates (db: Sql, seed: number, from: number, to: number): Promise<void> {
  const b = streams(seed)
  await db.query(`
    INSERT INTO request_candidates (request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at)
    SELECT g.request_id, c.i, 0, g.user_id, g.api_key_id, rt.provider_id, rt.endpoint_id, rt.provider_key_id,
      CASE WHEN f.failed THEN 'failed' ELSE 'success' END::candidate_status, false, f.code,
      CASE WHEN f.failed THEN (CASE f.code WHEN 429 THEN 'rate_limited' WHEN 529 THEN 'overloaded' WHEN 503 THEN 'unavailable'
        WHEN 400 THEN 'invalid_request' ELSE 'server_error' END) END,
      CASE WHEN f.failed THEN 'upstream attempt failed' END,
      f.finish - f.start, timestamptz 'epoch' + (g.ms + f.start) * interval '1 millisecond', timestamptz 'epoch' + (g.ms + f.finish) * interval '1 millisecond',
      timestamptz 'epoch' + g.ms * interval '1 millisecond'
    FROM (${rowsSql(seed, true)}) g
    CROSS JOIN LATERAL generate_series(0, g.candidates - 1) AS c(i)
    LEFT JOIN _seed_route_slots rs ON c.i < g.candidates - 1 AND rs.key = g.model_idx * 64 + (hashint8extended(g.n * 4 + c.i, ${b + 30n}) & 63)
    JOIN _seed_routes rt ON rt.idx = coalesce(rs.route_idx, g.route_idx)
    CROSS JOIN LATERAL (SELECT
      rs.key IS NOT NULL OR g.status = 'failed' AS failed,
      CASE WHEN rs.key IS NULL THEN g.status_code ELSE (ARRAY[429, 529, 503, 500])[1 + (hashint8extended(g.n * 4 + c.i, ${b + 31n}) & 3)] END AS code,
      CASE c.i WHEN 0 THEN 0 WHEN 1 THEN g.lat0 ELSE g.lat0 + g.lat1 END AS start,
      CASE c.i WHEN g.candidates - 1 THEN g.response_ms WHEN 0 THEN g.lat0 ELSE g.lat0 + g.lat1 END AS finish) f`, [from, to])
}

/**
 * The last rows: requests still in flight (pending, or streaming after their first
 * byte), started in the last few minutes, not yet priced, counted nowhere else.
 */
export async function insertInFlight (db: Sql, seed: number, from: number, to: number, nowMs: number): Promise<void> {
  const b = streams(seed)
  await db.query(`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id, provider_name, model, target_model,
      api_format, is_stream, status, first_byte_time_ms, created_at, updated_at)
    SELECT i.id_hex::uuid, ${requestId(b, 't.ms')}, k.user_id, k.id, rt.provider_id, rt.endpoint_id, rt.provider_key_id, rt.provider_name,
      rt.model, rt.target_model, rt.api_format, n % 3 = 0 OR ${u(b, 19)} < k.stream_share, CASE WHEN n % 3 = 0 THEN 'streaming' ELSE 'pending' END::usage_status,
      CASE WHEN n % 3 = 0 THEN 300 + (n % 7) * 150 END, timestamptz 'epoch' + t.ms * interval '1 millisecond', timestamptz 'epoch' + t.ms * interval '1 millisecond'
    FROM generate_series($1::bigint, $2::bigint - 1) AS n
    CROSS JOIN LATERAL (SELECT $3::bigint - ($2::bigint - n) * 13000 AS ms) t
    CROSS JOIN LATERAL (SELECT ${idHex(b, 't.ms')} AS id_hex) i
    JOIN _seed_key_slots ks ON ks.slot = hashint8extended(n, ${b + 2n}) & 65535
    JOIN _seed_keys k ON k.idx = ks.key_idx
    JOIN _seed_route_slots rs ON rs.key = 100000 + (hashint8extended(n, ${b + 4n}) & 4095)
    JOIN _seed_routes rt ON rt.idx = rs.route_idx`, [from, to, nowMs])
}

const MEASURES = `requests, errors, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens`
const TAIL = `total_cost, actual_total_cost, response_time_sum_ms, response_time_count`
/** the hourly rollups' measures (usage_hourly and the tables summed from it by provider, model or day) */
const HOURLY = `${MEASURES}, cache_creation_cost, cache_read_cost, ${TAIL}, cache_hit_requests`
const sums = (names: string) => names.split(',').map((name) => `sum(${name.trim()})`).join(', ')

/** The smallest uuidv7 of a millisecond: ids sort by time, so a time range is a primary-key range. */
const idAt = (ms: number) => ms.toString(16).padStart(12, '0') + '0'.repeat(20)

/**
 * The finest rollup (and the quarter-hours) for the rows created in [fromMs, toMs) — whole hours, so no other
 * chunk touches the same rollup rows — by GROUP BY over those raw rows (read through
 * the primary key), as ingestion would have left it (rollups.ts).
 */
export async function rollupHours (db: Sql, fromMs: number, toMs: number): Promise<void> {
  await db.query(`
    INSERT INTO usage_hourly (bucket, user_id, api_key_id, provider_id, model, api_format, ${HOURLY})
    SELECT date_trunc('hour', created_at, 'UTC'), coalesce(user_id, '${NIL}'), coalesce(api_key_id, '${NIL}'), coalesce(provider_id, '${NIL}'), model, coalesce(api_format, ''),
      count(*), count(*) FILTER (WHERE status = 'failed'), sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens), sum(cache_read_input_tokens),
      sum(total_tokens), sum(cache_creation_cost), sum(cache_read_cost), sum(total_cost), sum(actual_total_cost),
      sum(coalesce(response_time_ms, 0)), count(response_time_ms), count(*) FILTER (WHERE cache_read_input_tokens > 0)
    FROM usage WHERE id >= $1::uuid AND id < $2::uuid AND ${FINISHED}
    GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6`, [idAt(fromMs), idAt(toMs)])
  // quarter-hours are not a regrouping of hours: from the same raw rows (just read, so cached)
  await db.query(`
    INSERT INTO usage_quarter_hourly (bucket, provider_id, requests, total_tokens, total_cost, actual_total_cost)
    SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'), coalesce(provider_id, '${NIL}'),
      count(*), sum(total_tokens), sum(total_cost), sum(actual_total_cost)
    FROM usage WHERE id >= $1::uuid AND id < $2::uuid AND ${FINISHED}
    GROUP BY 1, 2 ORDER BY 1, 2`, [idAt(fromMs), idAt(toMs)])
}

/**
 * The coarser rollups, by summing the finest (exact: integer sums regroup freely);
 * days are UTC. Then the provider attempts: the executed candidates on their providers,
 * plus each finished request's implicit attempt on its provider (the coarse rollup's
 * requests) less those of the requests with an executed candidate (one usage
 * (request_id) probe each) — what ingestion's RollupDeltas.sent/change would have written.
 */
export async function deriveRollups (db: Sql): Promise<void> {
  await db.query(`
    INSERT INTO usage_hourly_model (bucket, provider_id, model, api_format, ${HOURLY})
    SELECT bucket, provider_id, model, api_format, ${sums(HOURLY)}
    FROM usage_hourly GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
  await db.query(`
    INSERT INTO usage_daily_model (day, provider_id, model, api_format, ${HOURLY})
    SELECT (bucket AT TIME ZONE 'UTC')::date, provider_id, model, api_format, ${sums(HOURLY)}
    FROM usage_hourly_model GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
  await db.query(`
    INSERT INTO usage_daily_key (day, user_id, api_key_id, model, ${MEASURES}, ${TAIL})
    SELECT (bucket AT TIME ZONE 'UTC')::date, user_id, api_key_id, model, ${sums(`${MEASURES}, ${TAIL}`)}
    FROM usage_hourly GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
  // the user ranking's hours and days: requests that reached a provider
  await db.query(`
    INSERT INTO usage_hourly_user (bucket, user_id, requests, errors, total_tokens, total_cost, actual_total_cost)
    SELECT bucket, user_id, ${sums('requests, errors, total_tokens, total_cost, actual_total_cost')}
    FROM usage_hourly WHERE provider_id IN (SELECT id FROM providers) GROUP BY 1, 2 ORDER BY 1, 2`)
  await db.query(`
    INSERT INTO usage_daily_user (day, user_id, requests, errors, total_tokens, total_cost, actual_total_cost)
    SELECT (bucket AT TIME ZONE 'UTC')::date, user_id, ${sums('requests, errors, total_tokens, total_cost, actual_total_cost')}
    FROM usage_hourly_user GROUP BY 1, 2 ORDER BY 1, 2`)
  await db.query(`
    INSERT INTO usage_hourly_provider (bucket, provider_id, ${HOURLY})
    SELECT bucket, provider_id, ${sums(HOURLY)}
    FROM usage_hourly_model GROUP BY 1, 2 ORDER BY 1, 2`)
  await db.query(`
    INSERT INTO provider_attempts_hourly (bucket, provider_id, attempts, successes, failures, latency_sum_ms, latency_count)
    SELECT bucket, provider_id, sum(attempts), sum(successes), sum(failures), sum(latency_sum_ms), sum(latency_count)
    FROM (
      SELECT date_trunc('hour', c.created_at, 'UTC') AS bucket, c.provider_id, count(*) AS attempts, count(*) FILTER (WHERE c.status = 'success') AS successes,
        count(*) FILTER (WHERE c.status = 'failed') AS failures, coalesce(sum(c.latency_ms), 0) AS latency_sum_ms, count(c.latency_ms) AS latency_count
      FROM request_candidates c WHERE ${EXECUTED} AND c.provider_id IS NOT NULL GROUP BY 1, 2
      UNION ALL
      SELECT bucket, provider_id, sum(requests), sum(requests - errors), sum(errors), sum(response_time_sum_ms), sum(response_time_count)
      FROM usage_hourly_model WHERE provider_id <> '${NIL}' GROUP BY 1, 2
      UNION ALL
      SELECT date_trunc('hour', u.created_at, 'UTC'), u.provider_id, -count(*), -count(*) FILTER (WHERE u.status <> 'failed'), -count(*) FILTER (WHERE u.status = 'failed'),
        -coalesce(sum(u.response_time_ms), 0), -count(u.response_time_ms)
      FROM (SELECT DISTINCT c.request_id FROM request_candidates c WHERE ${EXECUTED}) c JOIN usage u ON u.request_id = c.request_id
      WHERE u.${FINISHED} AND u.provider_id IS NOT NULL GROUP BY 1, 2
    ) p
    GROUP BY 1, 2 HAVING sum(attempts) <> 0 OR sum(latency_sum_ms) <> 0 OR sum(latency_count) <> 0 ORDER BY 1, 2`)
}

/**
 * What ingestion charges as it goes: each key's totals and balance_used and each
 * user's used are the sums over their finished rows (read from the daily rollup, which
 * holds exactly those sums). Then the balances and quotas granted, set around them.
 */
export async function chargeTotals (db: Sql, quotaUsers: string[]): Promise<void> {
  await db.query(`
    UPDATE api_keys k SET total_requests = s.requests, total_tokens = s.tokens, total_cost = s.cost, balance_used = s.cost,
      -- the last finish among the rows of the key's last day (through the (api_key_id, created_at) index)
      last_used_at = (SELECT max(u.finished_at) FROM usage u WHERE u.api_key_id = k.id AND u.created_at >= s.last_day::timestamp AT TIME ZONE 'UTC' AND u.${FINISHED})
    FROM (SELECT api_key_id, sum(requests) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost, max(day) AS last_day
          FROM usage_daily_key GROUP BY api_key_id) s
    WHERE k.id = s.api_key_id`)
  await db.query(`UPDATE users u SET used = s.cost FROM (SELECT user_id, sum(total_cost) AS cost FROM usage_daily_key GROUP BY user_id) s WHERE u.id = s.user_id`)
  // standalone balances: used up (granted = used), unlimited (null), or used × factor rounded up to whole USD
  await db.query(`
    UPDATE api_keys k SET current_balance = CASE sk.balance WHEN 'exhausted' THEN k.balance_used WHEN 'unlimited' THEN NULL
      ELSE greatest(10, ceil(k.balance_used * sk.balance::numeric / 1e9))::bigint * 1000000000 END
    FROM _seed_keys sk WHERE sk.id = k.id AND sk.balance IS NOT NULL`)
  await db.query(`UPDATE users SET quota = greatest(50, ceil(used * 1.5 / 1e9))::bigint * 1000000000 WHERE id = ANY($1::uuid[])`, [quotaUsers])
  // monthly-quota providers: this (UTC) month's actual cost
  await db.query(`
    UPDATE providers p SET monthly_used = coalesce((SELECT sum(actual_total_cost) FROM usage_hourly_model m
      WHERE m.provider_id = p.id AND m.bucket >= date_trunc('month', now(), 'UTC')), 0)
    WHERE p.billing_type = 'monthly_quota'`)
}
