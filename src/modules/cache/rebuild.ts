// Rebuilds the prompt-cache tables from the raw usage rows, in set-based SQL: what
// ingestion maintains incrementally, computed at once with window functions. The seed
// uses it after loading rows straight into usage; an operator upgrading a database
// with history runs `node dist/cli.js rebuild-cache` once (the tables start empty).
//
// It must agree with src/modules/cache/timeline.ts row for row: the same timeline
// order (created_at, request_id), the same bins (width_bucket over bins.ts's lower
// bounds), the same rounding (PostgreSQL's round(numeric) is half away from zero,
// like roundDiv), the same rule for wasted writes (next gap over the TTL).
import type { Sql } from '../../db/prisma.js'
import { FIRST_BIN, lastBinWithin, SQL_LOWER_BOUNDS } from './bins.js'
import { TIMELINE_MAX_GAP_MS } from './timeline.js'

/** Replaces both tables' contents; run it inside a transaction. */
export async function rebuildCacheData (db: Sql): Promise<void> {
  // the window functions sort every completed row by timeline: in memory where it fits
  await db.query(`SET LOCAL work_mem = '256MB'`)
  await db.query('DELETE FROM cache_interval_hourly')
  await db.query('DELETE FROM cache_savings_hourly')
  await db.query('DELETE FROM cache_timeline_tail')
  await db.query('DELETE FROM cache_interval_daily')
  await db.query('DELETE FROM cache_points_hourly')
  // one pass per scope: the timeline of each key, then of each user (usage (api_key_id, created_at) / (user_id, created_at) order)
  for (const [scope, column] of [['api_key', 'api_key_id'], ['user', 'user_id']] as const) {
    await db.query(`
      INSERT INTO cache_interval_hourly (scope, scope_id, bucket, bin_index, count, sum_ms)
      SELECT $1, scope_id, date_trunc('hour', created_at), CASE WHEN gap IS NULL THEN $2 ELSE width_bucket(gap, $3::bigint[]) - 1 END,
             count(*), COALESCE(sum(gap), 0)
        FROM (SELECT ${column} AS scope_id, created_at,
                     (extract(epoch FROM created_at - lag(created_at) OVER (PARTITION BY ${column} ORDER BY created_at, request_id)) * 1000)::bigint AS gap
                FROM usage WHERE status = 'completed' AND ${column} IS NOT NULL) t
       GROUP BY 1, 2, 3, 4`, [scope, FIRST_BIN, SQL_LOWER_BOUNDS])
  }
  // the day sums and the timeline's points, from the hourly histogram (cache_interval_hourly primary key)
  await db.query(`
    INSERT INTO cache_interval_daily (scope, scope_id, day, bin_index, count, sum_ms)
    SELECT scope, scope_id, (bucket AT TIME ZONE 'UTC')::date, bin_index, sum(count), sum(sum_ms)
      FROM cache_interval_hourly GROUP BY 1, 2, 3, 4`)
  await db.query(`
    INSERT INTO cache_points_hourly (bucket, user_id, count)
    SELECT bucket, scope_id, sum(count) FROM cache_interval_hourly WHERE scope = 'user' AND bin_index BETWEEN 0 AND $1
     GROUP BY 1, 2`, [lastBinWithin(TIMELINE_MAX_GAP_MS)])
  // each timeline's last request (usage (api_key_id, created_at) / (user_id, created_at))
  for (const [scope, column] of [['api_key', 'api_key_id'], ['user', 'user_id']] as const) {
    await db.query(`
      INSERT INTO cache_timeline_tail (scope, scope_id, last_at, last_request_id, user_id, api_key_id, cache_write_5m_tokens, cache_write_1h_tokens,
        cache_write_5m_price_per_1m, cache_write_1h_price_per_1m)
      SELECT DISTINCT ON (${column}) $1, ${column}, created_at, request_id, user_id, api_key_id, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens,
             cache_write_5m_price_per_1m, cache_write_1h_price_per_1m
        FROM usage WHERE status = 'completed' AND ${column} IS NOT NULL AND api_key_id IS NOT NULL
       ORDER BY ${column}, created_at DESC, request_id DESC`, [scope])
  }
  await db.query(`
    INSERT INTO cache_savings_hourly (bucket, user_id, api_key_id, read_saving, write_5m_premium, write_1h_premium,
      cache_write_5m_tokens, cache_write_1h_tokens, wasted_5m_tokens, wasted_1h_tokens, wasted_cost)
    SELECT * FROM (
    SELECT date_trunc('hour', created_at) AS bucket, user_id, api_key_id,
           COALESCE(sum(round(cache_read_input_tokens::numeric * (input_price_per_1m - cache_read_price_per_1m) / 1e6)), 0) AS read_saving,
           COALESCE(sum(round(cache_creation_5m_input_tokens::numeric * (cache_write_5m_price_per_1m - input_price_per_1m) / 1e6)), 0),
           COALESCE(sum(round(cache_creation_1h_input_tokens::numeric * (cache_write_1h_price_per_1m - input_price_per_1m) / 1e6)), 0),
           sum(cache_creation_5m_input_tokens) AS w5_tokens, sum(cache_creation_1h_input_tokens) AS w1_tokens,
           sum(w5), sum(w1), COALESCE(sum(round(w5::numeric * cache_write_5m_price_per_1m / 1e6)), 0) + COALESCE(sum(round(w1::numeric * cache_write_1h_price_per_1m / 1e6)), 0)
      FROM (SELECT u.*,
                   CASE WHEN u.status = 'completed' AND next_gap > 300000 THEN cache_creation_5m_input_tokens ELSE 0 END AS w5,
                   CASE WHEN u.status = 'completed' AND next_gap > 3600000 THEN cache_creation_1h_input_tokens ELSE 0 END AS w1
              FROM (SELECT u.created_at, u.user_id, u.api_key_id, u.status, u.cache_read_input_tokens, u.cache_creation_5m_input_tokens,
                           u.cache_creation_1h_input_tokens, u.input_price_per_1m, u.cache_read_price_per_1m, u.cache_write_5m_price_per_1m,
                           u.cache_write_1h_price_per_1m,
                           (extract(epoch FROM lead(created_at) OVER (PARTITION BY api_key_id, status = 'completed' ORDER BY created_at, request_id) - created_at) * 1000)::bigint AS next_gap
                      FROM usage u WHERE status IN ('completed', 'failed', 'cancelled') AND user_id IS NOT NULL AND api_key_id IS NOT NULL) u) u
     GROUP BY 1, 2, 3) s
     -- the rows ingestion would have written: a write, or a read that saved something
     WHERE w5_tokens <> 0 OR w1_tokens <> 0 OR read_saving <> 0`)
}
