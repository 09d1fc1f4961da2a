// `keymeter seed`: a realistic, deterministic data set written straight into the tables
// the gateway writes. Three steps:
//   1. one transaction: refuse a database that already has data (or, with `reset`,
//      delete it), write the catalogue and the generator's lookup tables (_seed_*),
//      and drop usage's secondary indexes (kept in _seed_indexes): building each once
//      at the end costs a third of maintaining it row by row;
//   2. the usage rows in chunks of whole hours, on `connections` connections at once
//      (one backend per connection: the only way one load uses both cores), each
//      chunk one transaction with its request candidates and its hourly rollup;
//   3. the indexes rebuilt; one transaction: the in-flight rows, the coarse rollups,
//      key and user totals.
// A failure in step 2 or 3 leaves a partial data set: seed again with --reset (any
// seed run first restores indexes an interrupted one dropped).
//
// Refusing: synthetic rows mixed with real ones would corrupt both, so a database
// with usage, keys, providers, prices or non-admin users is refused; `reset` deletes
// those first (admins, their sessions and the audit log stay).
import type pg from 'pg'
import { buildCatalogue, planHours, type Catalogue, type HourPlan, type SeedContext } from './catalogue.js'
import { inTransaction } from '../../db/prisma.js'
import { addMonths, ensureMonth, monthStart, MONTHLY_TABLES } from '../../db/partitions.js'
import { rebuildCacheDataInParallel } from '../accounting/cache/rebuild.js'
import { rollupRegrouped } from '../accounting/bulk.js'
import { DERIVED_TABLES } from '../accounting/model.js'
import { chargeTotals, insertCandidates, insertChunk, insertInFlight, rollupHours } from './usage.js'

export interface SeedOptions {
  rows: number
  days?: number
  seed?: number
  reset?: boolean
  /** ENCRYPTION_KEY: keys and provider secrets are stored as the app stores them */
  encryptionKey: string
  /** the end of the window (default: now); tests pin it */
  now?: Date
  /** about this many rows per chunk (a chunk is whole hours) */
  chunk?: number
  /** connections loading chunks at once (default 2) */
  connections?: number
  onProgress?: (done: number, total: number) => void
  onPhase?: (phase: string, seconds: number) => void
}

export interface SeedSummary {
  rows: number, users: number, keys: number, providers: number, models: number, candidates: number, seconds: number
  /** false when the role may not skip per-row foreign-key checks (not a superuser): correct, but several times slower */
  fastLoad: boolean
}

export class SeedRefused extends Error {
  override name = 'SeedRefused'
}

const LOOKUPS = ['_seed_hours', '_seed_keys', '_seed_key_slots', '_seed_route_slots', '_seed_routes', '_seed_prices', '_seed_indexes']
const TABLES_RESET = ['usage_bodies', 'request_candidates', 'gateway_events', ...DERIVED_TABLES, 'usage', 'usage_requests', 'admission_holds', 'budgets', 'api_keys', 'model_prices', 'price_snapshot_tiers', 'price_snapshots', 'provider_api_keys', 'provider_endpoints', 'providers']

export async function seed (pool: pg.Pool, options: SeedOptions): Promise<SeedSummary> {
  const ctx: SeedContext = { seed: options.seed ?? 42, days: options.days ?? 90, now: options.now ?? new Date(), encryptionKey: options.encryptionKey }
  if (!Number.isInteger(options.rows) || options.rows < 1) throw new RangeError('rows must be a positive integer')
  if (!Number.isInteger(ctx.days) || ctx.days < 1 || ctx.days > 3650) throw new RangeError('days must be an integer from 1 to 3650')
  if (!Number.isInteger(ctx.seed) || ctx.seed < 0 || ctx.seed > 2 ** 31 - 1) throw new RangeError('seed must be an integer from 0 to 2^31 - 1')
  const started = performance.now()
  let phaseStart = started
  const phase = (name: string) => {
    const at = performance.now()
    options.onPhase?.(name, (at - phaseStart) / 1000)
    phaseStart = at
  }

  // the in-flight rows are the last few minutes; the finished ones end 5 minutes ago
  const inFlight = Math.min(12, Math.floor(options.rows / 400))
  const finished = options.rows - inFlight
  const catalogue = buildCatalogue(ctx)
  const hours = planHours(ctx, finished, ctx.now.getTime() - 5 * 60_000, catalogue.seedKeys.filter((k) => k.expired !== true).map((k) => k.idx as number))
  await recoverInterrupted(pool)
  await transaction(pool, async (db) => {
    await makeRoom(db, options.reset === true)
    await insertCatalogue(db, catalogue, hours)
    await db.query(`CREATE UNLOGGED TABLE _seed_indexes AS SELECT indexname AS name, indexdef AS def FROM pg_indexes
      WHERE schemaname = current_schema() AND tablename = 'usage' AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype = 'p')`)
    await db.query(`DO $$ DECLARE i record; BEGIN FOR i IN SELECT name FROM _seed_indexes LOOP EXECUTE format('DROP INDEX %I', i.name); END LOOP; END $$`)
  })
  phase('catalogue')

  const chunks = chunkHours(hours, options.chunk ?? 200_000)
  // the seeded months' partitions first, as a server that ran through them would have made them (else the rows fill the default)
  if (chunks.length > 0) {
    for (const spec of MONTHLY_TABLES) {
      for (let month = monthStart(new Date(chunks[0]!.fromMs)); month <= ctx.now; month = addMonths(month, 1)) await ensureMonth(pool, spec, month)
    }
  }
  let fastLoad = true
  let next = 0
  let done = 0
  let failed = false
  const load = async () => {
    const client = await pool.connect()
    try {
      // rows reference ids the seed itself just wrote: skip the per-row foreign-key lookups where the role may
      fastLoad = await client.query('SET session_replication_role = replica').then(() => fastLoad, () => false)
      await client.query(`SET work_mem = '256MB'`)
      while (!failed && next < chunks.length) {
        const chunk = chunks[next++]!
        await client.query('BEGIN')
        await insertChunk(client, ctx.seed, chunk.first, chunk.end)
        await insertCandidates(client, ctx.seed, chunk.first, chunk.end)
        await rollupHours(client, chunk.fromMs, chunk.toMs)
        await client.query('COMMIT')
        done += chunk.end - chunk.first
        options.onProgress?.(done, options.rows)
      }
    } catch (error) {
      failed = true
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      await client.query('RESET session_replication_role; RESET work_mem').catch(() => {})
      client.release()
    }
  }
  try {
    // every loader stopped (one failing stops the others after their chunk) before going on or giving up
    const loaders = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(options.connections ?? 2, chunks.length)) }, load))
    for (const loader of loaders) if (loader.status === 'rejected') throw loader.reason
    phase('usage rows, candidates, hourly rollup')
    // usage's triggers did not fire as a replica: its request ids in one pass (the table holds only the seeded rows)
    if (fastLoad) await pool.query('INSERT INTO usage_requests (request_id, usage_id, created_at) SELECT request_id, id, created_at FROM usage')
    await restoreIndexes(pool)
    // statistics before the totals' per-key lookups: without them the planner takes the fresh table for empty
    await pool.query('ANALYZE usage, usage_requests, usage_hourly')
    phase('indexes, analyze')

    await transaction(pool, async (db) => {
      await insertInFlight(db, ctx.seed, finished, options.rows, ctx.now.getTime())
      options.onProgress?.(options.rows, options.rows)
      await rollupRegrouped(db)
      await chargeTotals(db, catalogue.users.filter((u) => u.has_quota === true).map((u) => u.id as string))
      await db.query(`DROP TABLE ${LOOKUPS.join(', ')}`)
    })
    phase('coarse rollups and totals')
    await rebuildCacheDataInParallel(pool)
    phase('prompt-cache tables')
  } catch (error) {
    throw Object.assign(error as Error, { message: `${(error as Error).message} (the database now holds a partial data set: seed again with --reset)` })
  }
  await pool.query(`ANALYZE request_candidates, ${DERIVED_TABLES.join(', ')}, api_keys, users, providers`)
  const counts = await pool.query<{ rows: string, candidates: string }>('SELECT (SELECT count(*) FROM usage) AS rows, (SELECT count(*) FROM request_candidates) AS candidates')
  phase('analyze')
  return {
    rows: Number(counts.rows[0]!.rows),
    users: catalogue.users.length,
    keys: catalogue.keys.length,
    providers: catalogue.providers.length,
    models: new Set(catalogue.routes.map((r) => r.model)).size,
    candidates: Number(counts.rows[0]!.candidates),
    seconds: (performance.now() - started) / 1000,
    fastLoad
  }
}

/** One transaction, with room for the sorts of the seed's grouping statements. */
async function transaction (pool: pg.Pool, body: (db: pg.PoolClient) => Promise<void>): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query(`SET LOCAL work_mem = '256MB'`)
    await body(client)
  })
}

/** Consecutive whole hours of about `size` rows each (hour-aligned: chunks never share a rollup row). */
function chunkHours (hours: HourPlan[], size: number) {
  const chunks: Array<{ first: number, end: number, fromMs: number, toMs: number }> = []
  for (const hour of hours) {
    const last = chunks.at(-1)
    if (last !== undefined && last.end - last.first < size) Object.assign(last, { end: hour.end_n, toMs: hour.to_ms })
    else chunks.push({ first: hour.first_n, end: hour.end_n, fromMs: hour.from_ms, toMs: hour.to_ms })
  }
  return chunks.filter((c) => c.end > c.first)
}

/**
 * Recreates the usage indexes listed in _seed_indexes that are missing, two at a time on
 * two connections: a build's heap scan and its final merge and write run on one core,
 * so a second build keeps the other busy (and concurrent scans of one table share reads).
 */
async function restoreIndexes (pool: pg.Pool): Promise<void> {
  // pg_indexes defines a partitioned table's index ON ONLY the parent (no partition's copy): built on every partition instead
  const { rows } = await pool.query<{ def: string }>(`SELECT replace(def, ' ON ONLY ', ' ON ') AS def FROM _seed_indexes s WHERE to_regclass(quote_ident(s.name)) IS NULL`)
  let next = 0
  const build = async () => {
    const client = await pool.connect()
    try {
      await client.query(`SET maintenance_work_mem = '1GB'`)
      while (next < rows.length) await client.query(rows[next++]!.def)
    } finally {
      await client.query('RESET maintenance_work_mem').catch(() => {})
      client.release()
    }
  }
  await Promise.all([build(), build()])
}

/** What an interrupted seed left: the indexes it dropped come back, its tables go (committed, whatever follows). */
async function recoverInterrupted (pool: pg.Pool): Promise<void> {
  if ((await pool.query(`SELECT to_regclass('_seed_indexes') IS NOT NULL AS left`)).rows[0].left === true) await restoreIndexes(pool)
  await pool.query(`DROP TABLE IF EXISTS ${LOOKUPS.join(', ')}`)
}

async function makeRoom (db: pg.PoolClient, reset: boolean): Promise<void> {
  if (reset) {
    await db.query(`TRUNCATE ${TABLES_RESET.join(', ')}`)
    await db.query(`DELETE FROM users WHERE role <> 'admin'`)
    return
  }
  const found = await db.query<{ what: string }>(`
    SELECT what FROM (VALUES
      ('usage rows', EXISTS (SELECT 1 FROM usage)), ('API keys', EXISTS (SELECT 1 FROM api_keys)), ('providers', EXISTS (SELECT 1 FROM providers)),
      ('model prices', EXISTS (SELECT 1 FROM model_prices)), ('price snapshots', EXISTS (SELECT 1 FROM price_snapshots)), ('non-admin users', EXISTS (SELECT 1 FROM users WHERE role <> 'admin'))
    ) AS t(what, present) WHERE present`)
  if (found.rows.length > 0) {
    throw new SeedRefused(`the database already has ${found.rows.map((r) => r.what).join(', ')}; seed only fills an empty one ` +
      '(--reset deletes usage, keys, providers, prices and non-admin users first)')
  }
}

async function insertCatalogue (db: pg.PoolClient, c: Catalogue, hours: HourPlan[]): Promise<void> {
  const insert = (table: string, columns: string, types: string, rows: unknown[]) => db.query(
    `INSERT INTO ${table} (${columns}) SELECT ${columns} FROM jsonb_to_recordset($1::jsonb) AS r(${types})`, [JSON.stringify(rows)])
  const at = c.modelPrices[0]!.effective_from as string
  await insert('users', 'id, email, username, password_hash, role, is_active, created_at, updated_at',
    'id uuid, email text, username text, password_hash text, role user_role, is_active boolean, created_at timestamptz, updated_at timestamptz',
    c.users.map((u) => ({ ...u, updated_at: u.created_at })))
  await insert('api_keys', 'id, user_id, key_hash, key_prefix, key_encrypted, name, rate_limit, concurrent_limit, daily_cost_limit, is_standalone, is_active, expires_at, created_at, updated_at',
    'id uuid, user_id uuid, key_hash text, key_prefix text, key_encrypted text, name text, rate_limit int, concurrent_limit int, daily_cost_limit bigint, is_standalone boolean, is_active boolean, expires_at timestamptz, created_at timestamptz, updated_at timestamptz',
    c.keys.map((k) => ({ ...k, updated_at: k.created_at })))
  await insert('providers', 'id, name, billing_type, monthly_quota, priority, created_at, updated_at',
    'id uuid, name text, billing_type billing_type, monthly_quota bigint, priority int, created_at timestamptz, updated_at timestamptz',
    c.providers.map((p) => ({ ...p, created_at: at, updated_at: at })))
  await insert('provider_endpoints', 'id, provider_id, api_format, base_url, created_at, updated_at',
    'id uuid, provider_id uuid, api_format text, base_url text, created_at timestamptz, updated_at timestamptz',
    c.endpoints.map((e) => ({ ...e, created_at: at, updated_at: at })))
  await insert('provider_api_keys', 'id, provider_id, name, secret_encrypted, secret_display, rate_multiplier, cache_ttl_minutes, created_at, updated_at',
    'id uuid, provider_id uuid, name text, secret_encrypted text, secret_display text, rate_multiplier numeric, cache_ttl_minutes int, created_at timestamptz, updated_at timestamptz',
    c.providerKeys.map((k) => ({ ...k, created_at: at, updated_at: at })))
  await insert('model_prices', 'id, model, provider_id, tiers, price_per_request, effective_from, created_at',
    'id uuid, model text, provider_id uuid, tiers jsonb, price_per_request bigint, effective_from timestamptz, created_at timestamptz',
    c.modelPrices.map((p) => ({ ...p, created_at: at })))

  // what the generator joins to: small unlogged tables the loading connections can all see, dropped at the end
  const lookup = (name: string, types: string, rows: unknown[]) =>
    db.query(`CREATE UNLOGGED TABLE ${name} AS SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(${types})`, [JSON.stringify(rows)])
  await lookup('_seed_hours', 'idx int, from_ms bigint, to_ms bigint, first_n bigint, end_n bigint, burst_key int, burst_share float8, incident boolean', hours)
  await lookup('_seed_keys', 'idx int, id uuid, user_id uuid, home_model int, stream_share float8, cache_affinity float8, balance text', c.seedKeys)
  await lookup('_seed_key_slots', 'slot bigint, key_idx int', c.keySlots.map((key, slot) => ({ slot, key_idx: key })))
  await lookup('_seed_route_slots', 'key bigint, route_idx int', c.routeSlots)
  await lookup('_seed_routes', `idx int, model_idx int, model text, target_model text, api_format text, provider_id uuid, provider_name text, endpoint_id uuid,
    provider_key_id uuid, ttl int, up_to int, cache int, in_median float8, prefix_median float8, out_median float8, speed float8, ttfb float8`, c.routes)
  await lookup('_seed_prices', `key int, priced boolean, price_id uuid, per_request bigint, p_in bigint, p_out bigint, p_w5 bigint, p_w1h bigint, p_rd bigint,
    free boolean, micros bigint, rate_multiplier numeric`, c.prices)
  await db.query(`ANALYZE ${LOOKUPS.filter((name) => name !== '_seed_indexes').join(', ')}`)
}
