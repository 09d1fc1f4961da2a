// The database handles, created from the config inside a named plugin (never at
// module level) and proven reachable at boot: the pg adapter connects lazily.
// Each workload has its own bounded pool, so one cannot starve another of connections:
// Prisma (admin and user API, sign-in, audit) on `prisma`; the gateway's verify and the
// session lookups on `pg`; usage ingestion on `ingestPg`; the statistics on `statsPg`
// (the read replicas' pools when DATABASE_READ_URL names usable ones, else the primary's).
// The hot paths talk SQL directly: Prisma's per-query overhead outweighs their short queries.
import { PrismaPg } from '@prisma/adapter-pg'
import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import pg from 'pg'
import { PrismaClient, type Prisma } from '../generated/prisma/client.js'
import { ReadRouting, type ReplicaState } from './replicas.js'

export type Db = PrismaClient | Prisma.TransactionClient

/** Plain SQL on a pool (or one of its clients, inside a transaction). */
export type Sql = Pick<pg.Pool, 'query'>

/** Plain SQL, and a connection for a transaction: a pool, or the statistics' read routing. */
export type SqlPool = Sql & { connect: () => Promise<pg.PoolClient> }

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient
    /** gateway verify and session lookups: short reads */
    pg: pg.Pool
    /** usage ingestion: one long transaction per batch */
    ingestPg: pg.Pool
    /** the statistics' reads only, on a usable replica or the primary (src/db/replicas.ts): statement_timeout set, so a query past it is cancelled by PostgreSQL, not left running */
    statsPg: ReadRouting
    /**
     * every pool by workload (the admin one is Prisma's), for the metrics; `stats` is the
     * primary's statistics pool (the reads' fallback, and what must see the primary: a read
     * call's audit row, a key holder's client restrictions, the table gauges); read1, read2, …
     * the replicas' read pools
     */
    pools: { admin: pg.Pool, verify: pg.Pool, ingest: pg.Pool, stats: pg.Pool } & Record<string, pg.Pool>
  }
}

/** Bounds for a pool: its size, the longest wait for a connection, and (server side) the longest lock wait and idle transaction. */
export interface PoolLimits {
  max?: number
  /** a connection not obtained within this is an error (answered 503 database_busy), never an endless queue */
  waitMs?: number
  /** an idle connection is closed after this (0: never; default node-postgres' 10 s) */
  idleMs?: number
  /** lock_timeout and idle_in_transaction_session_timeout of every session: a transaction never holds its locks, or waits on another's, past it */
  transactionTimeoutMs?: number
  /** where a lost idle connection is reported (default: a line on stderr) */
  onLost?: (error: Error) => void
}

/** A key deletion takes this advisory lock exclusively, every usage batch shared (see deleteKey). */
export const KEY_DELETION_LOCK = 0x6b6d6b64 // "kmkd"

function sessionOptions (limits: PoolLimits, extra = ''): string {
  // sessions in UTC: date_trunc on timestamptz and day casts must not follow the server's zone
  let options = '-c TimeZone=UTC'
  if (limits.transactionTimeoutMs !== undefined) {
    const ms = Math.trunc(limits.transactionTimeoutMs)
    options += ` -c lock_timeout=${ms} -c idle_in_transaction_session_timeout=${ms}`
  }
  return `${options}${extra}`
}

/** A bounded pool whose lost connections (server restart, failover, terminated backend) never crash the process. */
export function createPool (databaseUrl: string, limits: PoolLimits = {}, extraOptions = ''): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: limits.max ?? 10,
    ...(limits.waitMs !== undefined && { connectionTimeoutMillis: limits.waitMs }),
    ...(limits.idleMs !== undefined && { idleTimeoutMillis: limits.idleMs }),
    options: sessionOptions(limits, extraOptions)
  })
  // a checked-out client has no listener of the pool's: its connection lost between two
  // queries would emit an unhandled 'error' and end the process; its next query fails
  // instead, and the pool discards it on release (it is no longer queryable)
  pool.on('connect', (client) => { client.on('error', () => {}) })
  reportLostConnections(pool, limits.onLost)
  return pool
}

export function createDatabase (databaseUrl: string, limits: PoolLimits & { transactionMaxWaitMs?: number } = {}): { pool: pg.Pool, prisma: PrismaClient } {
  const pool = createPool(databaseUrl, limits)
  const transactionOptions = {
    ...(limits.transactionMaxWaitMs !== undefined && { maxWait: limits.transactionMaxWaitMs }),
    ...(limits.transactionTimeoutMs !== undefined && { timeout: limits.transactionTimeoutMs })
  }
  return { pool, prisma: new PrismaClient({ adapter: new PrismaPg(pool), transactionOptions }) }
}

/**
 * An idle connection the server terminates (restart, failover) must not crash the
 * process: the pool drops it, the next query opens a new one, and the loss is reported.
 * Not once the pool is ending: its end() resolves as soon as it has asked each
 * connection to close, so a database stopped right after (the embedded one, at the
 * server's stop) may still terminate one of them.
 */
function reportLostConnections (pool: pg.Pool, report = (error: Error) => { process.stderr.write(`database connection lost: ${error.message}\n`) }): void {
  pool.on('error', (error) => {
    if (!pool.ending) report(error)
  })
}

/**
 * A small pool for the usage statistics: every statement is cancelled server-side past
 * `statementTimeoutMs` (error 57014, answered 503 query_timeout) instead of running on
 * after the client gave up; and no parallel workers, whose start-up costs the small
 * rollup and index reads more than it saves on two busy cores.
 */
export function createStatsPool (databaseUrl: string, statementTimeoutMs: number, limits: PoolLimits = {}): pg.Pool {
  // its only write is a read call's audit row, committed asynchronously (writeReadAudit)
  return createPool(databaseUrl, { max: 4, ...limits },
    ` -c statement_timeout=${Math.trunc(statementTimeoutMs)} -c max_parallel_workers_per_gather=0 -c synchronous_commit=off`)
}

export interface DatabaseOptions {
  databaseUrl: string
  statsStatementTimeoutMs: number
  pools: { admin: number, verify: number, ingest: number, stats: number }
  /** the longest wait for a pooled connection (and for Prisma to start a transaction) */
  poolWaitMs: number
  /**
   * how long a pooled connection may sit idle before it is closed (0: never): each new
   * connection plans its statements again (the reservation's 23–115 ms, bench/README), so
   * a quiet spell must not cost the next requests that
   */
  poolIdleMs?: number
  /** the longest interactive transaction, lock wait or idle transaction */
  transactionTimeoutMs: number
  /** read replicas for the statistics (DATABASE_READ_URL), each with a pool of pools.stats connections */
  readUrls?: string[]
  /** a replica further behind is skipped (DATABASE_READ_MAX_LAG_MS) */
  readMaxLagMs?: number
  /** how often each replica's lag is read (DATABASE_READ_CHECK_MS) */
  readCheckMs?: number
}

/**
 * How the verify pool plans. Its generic plans are made once per connection, with the tables'
 * sizes of that moment: one made while admission_holds or users was small kept scanning them
 * whole as they grew (bench/README, issue 17), so no sequential scans wherever an index
 * serves (every lookup here has one). No bitmap scans either: a plain index scan marks the
 * entries of rows it finds dead so the next scan skips them, and a bitmap scan never does —
 * a hot key's settled holds left ~20,000 dead entries that every read of its holds visited
 * again (bench/README, thirty-second session); the ORs of two indexed columns a bitmap would
 * serve are written as a UNION of two index lookups. And a random page read priced as what it
 * is for these cached tables: at the default (4× a sequential one) a key's holds were read
 * through admission_holds (expires_at), every key's live holds, since holds are stored in
 * expiry order and the key's own index is not.
 */
const VERIFY_PLANS = '-c enable_seqscan=off -c enable_bitmapscan=off -c random_page_cost=1.1'

export default fp<DatabaseOptions>(async (app, opts) => {
  const bounds = { waitMs: opts.poolWaitMs, idleMs: opts.poolIdleMs, transactionTimeoutMs: opts.transactionTimeoutMs, onLost: (error: Error) => { app.log.error(`database connection lost: ${error.message}`) } }
  const { pool: adminPool, prisma } = createDatabase(opts.databaseUrl, { ...bounds, max: opts.pools.admin, transactionMaxWaitMs: opts.poolWaitMs })
  await prisma.$queryRaw`SELECT 1`
  // generic plans: verify's statements are lookups by key whose plans do not depend on the values, and planning
  // the key state's laterals for each call (custom plans) cost 1.6–5.7 ms against its 0.4–1.2 ms of execution
  const verifyPool = createPool(opts.databaseUrl, { ...bounds, max: opts.pools.verify }, ` -c plan_cache_mode=force_generic_plan ${VERIFY_PLANS}`)
  const ingestPool = createPool(opts.databaseUrl, { ...bounds, max: opts.pools.ingest })
  const statsLimits = { max: opts.pools.stats, waitMs: opts.poolWaitMs, idleMs: opts.poolIdleMs, onLost: bounds.onLost }
  const statsPool = createStatsPool(opts.databaseUrl, opts.statsStatementTimeoutMs, statsLimits)
  // a replica is never connected to at boot: one that is down must not stop the start, it is skipped until it answers
  const replicas = (opts.readUrls ?? []).map((url, i) => ({
    label: `read${i + 1}`,
    pool: createStatsPool(url, opts.statsStatementTimeoutMs, statsLimits),
    probe: createPool(url, { max: 1, waitMs: opts.poolWaitMs, idleMs: opts.poolIdleMs, onLost: bounds.onLost }, ` -c statement_timeout=${Math.trunc(opts.poolWaitMs)}`)
  }))
  const report = (state: ReplicaState) => {
    if (state.usable) app.log.info({ replica: state.label, lag_ms: state.lagMs }, 'read replica in use')
    else app.log.warn({ replica: state.label, lag_ms: state.lagMs, reason: state.reason }, 'read replica skipped: the primary serves its reads')
  }
  const reads = new ReadRouting(statsPool, replicas, { maxLagMs: opts.readMaxLagMs ?? 10_000, checkMs: opts.readCheckMs ?? 2000, onChange: report })
  reads.checkIfDue()
  app.decorate('prisma', prisma)
  app.decorate('pg', verifyPool)
  app.decorate('ingestPg', ingestPool)
  app.decorate('statsPg', reads)
  app.decorate('pools', { admin: adminPool, verify: verifyPool, ingest: ingestPool, stats: statsPool, ...Object.fromEntries(replicas.map((r) => [r.label, r.pool])) })
  app.addHook('onClose', async () => {
    await prisma.$disconnect()
    // the adapter may have ended its pool already
    for (const pool of [adminPool, verifyPool, ingestPool, statsPool, ...replicas.flatMap((r) => [r.pool, r.probe])]) await pool.end().catch(() => {})
  })
}, { name: 'prisma' })

/** A pool that runs a piece of work again elsewhere when its first server cannot finish it (db/replicas.ts ReadRouting). */
export interface RetryingPool extends Pick<SqlPool, 'connect'> {
  retrying: <T>(work: (pool: Pick<SqlPool, 'connect'>) => Promise<T>) => Promise<T>
}

/**
 * Runs `body` in one transaction on one connection of `pool`: committed when it returns,
 * rolled back when it throws. Through a RetryingPool the whole transaction is the unit of
 * work: one a standby cancels midway (a recovery conflict) runs again on the primary.
 */
export async function inTransaction<T> (pool: Pick<SqlPool, 'connect'> | RetryingPool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  if ('retrying' in pool) return await pool.retrying(async (target) => await inTransaction(target, body))
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const result = await body(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    // a failed ROLLBACK means the connection is gone: the caller hears the first error, the pool drops the client
    await client.query('ROLLBACK').catch((rollbackError: Error) => { broken = rollbackError })
    throw error
  } finally {
    client.release(broken)
  }
}

const statementNames = new Map<string, string>()

/** A statement's name after its text: one per text, the same on every connection. */
export function statementName (text: string): string {
  let name = statementNames.get(text)
  if (name === undefined) {
    name = `km_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
    statementNames.set(text, name)
  }
  return name
}

/**
 * The same connection or pool, with every statement named after its text: PostgreSQL
 * then plans each once per connection instead of on every call. For the hot paths,
 * whose statements are fixed texts with parameters.
 */
export function prepared (db: Sql): Sql {
  return {
    query: ((text: string, values?: unknown[]) => db.query({ name: statementName(text), text, values })) as Sql['query']
  }
}
