// Rebuilds the prompt-cache tables from the raw usage rows, in set-based SQL: what
// ingestion maintains incrementally, computed at once with window functions. The seed
// uses it after loading rows straight into usage; an operator upgrading a database
// with history runs `node dist/cli.js rebuild-cache` once (the tables start empty).
//
// It must agree with timeline.ts row for row: the same timeline order (created_at,
// request_id), the same bins (width_bucket over bins.ts's lower bounds), the same
// rounding (pricing.ts's componentCostSql), the same rule for wasted writes
// (timeline.ts's wastedTokensSql).
import type pg from 'pg'
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import { inTransaction, type Sql } from '../../../db/prisma.js'
import { CACHE_TABLES, DIMENSIONS } from '../model.js'
import { cacheEconomicsSql, componentCostSql, tierPricesJoinSql } from '../pricing.js'
import { finishedSql, SETTLED_HOURS_CHANGED } from '../rules.js'
import { keyTenantSql } from '../tenant.js'
import { FIRST_BIN, lastBinWithin, SQL_LOWER_BOUNDS } from './bins.js'
import { sqlEntry } from './packed.js'
import { SAVINGS_COLUMN_NAMES, SAVINGS_SUMMED, TIMELINE_MAX_GAP_MS, walkingIndexes, wastedTokensSql } from './timeline.js'

/** Replaces the cache tables' contents; run it inside a transaction. */
export async function rebuildCacheData (db: Sql): Promise<void> {
  // the window functions sort every completed row by timeline: in memory where it fits
  await db.query(`SET LOCAL work_mem = '256MB'`)
  await clear(db)
  for (const step of INDEPENDENT_STEPS) await step(db)
  await finish(db)
}

/**
 * The same for a database whose cache tables are empty and whose usage nobody else
 * writes (the seed): the two timeline passes run at once, each on its own connection.
 */
export async function rebuildCacheDataInParallel (pool: pg.Pool): Promise<void> {
  await clear(pool)
  // The points' time index is built once after the bulk insert: the user pass writes its
  // rows in (user, time) order, so this index alone would take them in random order.
  await pool.query(`DROP INDEX ${POINTS_TIME_INDEX}`)
  try {
    await Promise.all(INDEPENDENT_STEPS.map(async (step) => {
      const client = await pool.connect()
      try {
        await client.query(`SET work_mem = '256MB'`)
        await step(client)
      } finally {
        await client.query('RESET work_mem').catch(() => {})
        client.release()
      }
    }))
  } finally {
    await pool.query(`SET maintenance_work_mem = '1GB'; CREATE INDEX ${POINTS_TIME_INDEX} ON cache_timeline_points (created_at, request_id) INCLUDE (user_id, model, gap_ms); RESET maintenance_work_mem`)
  }
  // one connection and one transaction, so walkingIndexes' transaction-local settings hold
  await inTransaction(pool, finish)
}

/** cache_timeline_points (created_at, request_id) INCLUDE (user_id, model, gap_ms), as its migrations create it */
const POINTS_TIME_INDEX = 'cache_timeline_points_created_at_request_id_idx'

/** TRUNCATE, not DELETE: a rebuild leaves no dead rows behind (it also holds ingestion off until it commits). */
async function clear (db: Sql): Promise<void> {
  await db.query(`TRUNCATE ${CACHE_TABLES.join(', ')}`)
  // kept settled days of the histograms (read/cache.ts SettledIntervals) are rebuilt too
  await db.query(SETTLED_HOURS_CHANGED.text)
}

/** A timeline's (id, hour, bin) gap counts and sums, from its sorted rows `t` (gap null: bin -1, the first request). */
const binSums = (id: string) => sql`SELECT ${raw(id)}, ${raw(DIMENSIONS.hour.raw)} AS bucket,
         CASE WHEN gap IS NULL THEN ${FIRST_BIN}::int ELSE width_bucket(gap, ${SQL_LOWER_BOUNDS}::bigint[]) - 1 END AS bin,
         count(*) AS count, COALESCE(sum(gap), 0) AS sum_ms
    FROM t GROUP BY 1, 2, 3`

const run = async (db: Sql, query: Fragment) => db.query(query.text, query.values)

/** each finished row's tier, for its unit prices (rows copy none): bare price column names resolve to it */
const PRICES = tierPricesJoinSql('usage')

/** An hour's bins packed as ingestion keeps them (packed.ts), from binSums' rows */
const PACKED_BINS = `string_agg(${sqlEntry('bin', 'count', 'sum_ms')}, ''::bytea ORDER BY bin)`

/** The two timeline passes: each reads only usage and writes its own rows (the user pass also the hourly point counts), so they may run at once. */
const INDEPENDENT_STEPS: Array<(db: Sql) => Promise<unknown>> = [
  // each key's timeline, sorted once: its gaps (lag) into the histogram, and each write's next gap (lead) for the wasted writes
  async (db) => run(db, sql`
    WITH t AS MATERIALIZED (
      SELECT api_key_id, user_id, model, ${raw(DIMENSIONS.provider.raw)} AS provider_id, created_at, cache_creation_5m_input_tokens AS w5, cache_creation_1h_input_tokens AS w1,
             cache_write_5m_price_per_1m AS p5, cache_write_1h_price_per_1m AS p1,
             (extract(epoch FROM created_at - lag(created_at) OVER w) * 1000)::bigint AS gap,
             (extract(epoch FROM lead(created_at) OVER w - created_at) * 1000)::bigint AS next_gap
        FROM usage ${raw(PRICES)} WHERE status = 'completed' AND api_key_id IS NOT NULL
      WINDOW w AS (PARTITION BY api_key_id ORDER BY created_at, request_id)
    ), intervals AS (
      INSERT INTO cache_interval_hourly (scope, scope_id, bucket, tenant_id, bins)
      SELECT 'api_key', b.api_key_id, b.bucket, ${keyTenantSql('k')}, ${raw(PACKED_BINS)}
        FROM (${binSums('api_key_id')}) b JOIN api_keys k ON k.id = b.api_key_id
       GROUP BY b.api_key_id, b.bucket, k.id
      RETURNING 1
    )
    INSERT INTO cache_savings_hourly AS s (bucket, user_id, api_key_id, model, provider_id, wasted_5m_tokens, wasted_1h_tokens, wasted_cost)
    SELECT ${raw(DIMENSIONS.hour.raw)}, user_id, api_key_id, model, provider_id, sum(x5), sum(x1),
           COALESCE(sum(${componentCostSql(raw('x5'), raw('p5'))}), 0) + COALESCE(sum(${componentCostSql(raw('x1'), raw('p1'))}), 0)
      FROM (SELECT *, ${wastedTokensSql('5m', raw('w5'), raw('next_gap'))} AS x5, ${wastedTokensSql('1h', raw('w1'), raw('next_gap'))} AS x1 FROM t) w
     WHERE user_id IS NOT NULL AND (x5 > 0 OR x1 > 0)
     GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, user_id, api_key_id, model, provider_id) DO UPDATE SET
      wasted_5m_tokens = EXCLUDED.wasted_5m_tokens, wasted_1h_tokens = EXCLUDED.wasted_1h_tokens, wasted_cost = EXCLUDED.wasted_cost`),
  // each user's timeline (across their keys), sorted once: its gaps into the histogram and the hourly point counts,
  // and its points (gap at most 120 minutes) into cache_timeline_points, in that table's primary-key order (the
  // points migration's backfill is this query)
  async (db) => run(db, sql`
    WITH t AS MATERIALIZED (
      SELECT user_id, created_at, request_id, model,
             (extract(epoch FROM created_at - lag(created_at) OVER (PARTITION BY user_id ORDER BY created_at, request_id)) * 1000)::bigint AS gap
        FROM usage WHERE status = 'completed' AND user_id IS NOT NULL
    ), points AS (
      INSERT INTO cache_timeline_points (user_id, created_at, request_id, gap_ms, model)
      SELECT user_id, created_at, request_id, gap, model FROM t WHERE gap <= ${TIMELINE_MAX_GAP_MS}
      RETURNING 1
    ), hours AS (
      -- the timeline's points per hour are the gaps in bins 0 … the one ending at 120 minutes
      SELECT user_id, bucket, ${raw(PACKED_BINS)} AS bins, sum(count) FILTER (WHERE bin BETWEEN 0 AND ${lastBinWithin(TIMELINE_MAX_GAP_MS)})::int AS points
        FROM (${binSums('user_id')}) b
       GROUP BY user_id, bucket
    ), point_hours AS (
      INSERT INTO cache_points_hourly (bucket, user_id, count)
      SELECT bucket, user_id, points FROM hours WHERE points > 0
      RETURNING 1
    )
    INSERT INTO cache_interval_hourly (scope, scope_id, bucket, tenant_id, bins)
    SELECT 'user', user_id, bucket, user_id, bins FROM hours`)
]

const ECONOMICS = cacheEconomicsSql()

/** each of SAVINGS_SUMMED from cache_savings_hourly */
const SUM_SAVINGS = SAVINGS_SUMMED.map(({ table, keys }) => `
  INSERT INTO ${table} (${keys.join(', ')}, ${SAVINGS_COLUMN_NAMES.join(', ')})
  SELECT ${keys.join(', ')}, ${SAVINGS_COLUMN_NAMES.map((c) => `sum(${c})`).join(', ')} FROM cache_savings_hourly GROUP BY ${keys.join(', ')} ORDER BY ${keys.join(', ')}`)

/** What depends on the timelines: the savings rows (merged into the wasted writes' rows), the tails. */
async function finish (db: Sql): Promise<void> {
  // what each finished request's cache reads saved and writes cost above input (no order needed: one grouping pass)
  await run(db, sql`
    INSERT INTO cache_savings_hourly (bucket, user_id, api_key_id, model, provider_id, read_saving, write_5m_premium, write_1h_premium, cache_write_5m_tokens, cache_write_1h_tokens)
    SELECT * FROM (
      SELECT ${raw(DIMENSIONS.hour.raw)} AS bucket, user_id, api_key_id, model, ${raw(DIMENSIONS.provider.raw)} AS provider_id,
             COALESCE(sum(${ECONOMICS.readSaving}), 0) AS read_saving,
             COALESCE(sum(${ECONOMICS.write5mPremium}), 0),
             COALESCE(sum(${ECONOMICS.write1hPremium}), 0),
             sum(cache_creation_5m_input_tokens) AS w5_tokens, sum(cache_creation_1h_input_tokens) AS w1_tokens
        FROM usage ${raw(PRICES)} WHERE ${finishedSql()} AND user_id IS NOT NULL AND api_key_id IS NOT NULL
       GROUP BY 1, 2, 3, 4, 5) s
     -- the rows ingestion would have written: a write, or a read that saved something
     WHERE w5_tokens <> 0 OR w1_tokens <> 0 OR read_saving <> 0
    ON CONFLICT (bucket, user_id, api_key_id, model, provider_id) DO UPDATE SET
      read_saving = EXCLUDED.read_saving, write_5m_premium = EXCLUDED.write_5m_premium, write_1h_premium = EXCLUDED.write_1h_premium,
      cache_write_5m_tokens = EXCLUDED.cache_write_5m_tokens, cache_write_1h_tokens = EXCLUDED.cache_write_1h_tokens`)

  // the whole scope's hours, and its hours by model and provider: the rows above summed over users and keys
  for (const statement of SUM_SAVINGS) await db.query(statement)

  // each timeline's last request: one backward index walk per key and per user (usage (api_key_id, created_at) / (user_id, created_at))
  await walkingIndexes(db, async () => {
    // each timeline's tenant: a key's (tenant.ts), a user's own id
    for (const [scope, owners, column, tenant] of [['api_key', 'api_keys', 'api_key_id', keyTenantSql('o').text], ['user', 'users', 'user_id', 'o.id']] as const) {
      await db.query(`
        INSERT INTO cache_timeline_tail (scope, scope_id, tenant_id, last_at, last_request_id, user_id, api_key_id, cache_write_5m_tokens, cache_write_1h_tokens,
          cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, model, provider_id)
        SELECT $1, o.id, ${tenant}, l.created_at, l.request_id, l.user_id, l.api_key_id, l.cache_creation_5m_input_tokens, l.cache_creation_1h_input_tokens,
               l.cache_write_5m_price_per_1m, l.cache_write_1h_price_per_1m, l.model, l.provider_id
          FROM ${owners} o CROSS JOIN LATERAL (
            SELECT created_at, request_id, user_id, api_key_id, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens,
                   cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, model, ${DIMENSIONS.provider.raw} AS provider_id
              FROM usage u ${tierPricesJoinSql('u')} WHERE u.${column} = o.id AND u.status = 'completed' AND u.api_key_id IS NOT NULL
             ORDER BY created_at DESC, request_id DESC LIMIT 1) l`, [scope])
    }
  })
}
