// The database handles, created from the config inside a named plugin (never at
// module level) and proven reachable at boot: the pg adapter connects lazily.
// One pg pool serves both Prisma (through its adapter) and the two hot paths that
// talk SQL directly (gateway verify and usage ingestion), where Prisma's per-query
// overhead would cost several times the query itself.
import { PrismaPg } from '@prisma/adapter-pg'
import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import pg from 'pg'
import { PrismaClient, type Prisma } from '../generated/prisma/client.js'

export type Db = PrismaClient | Prisma.TransactionClient

/** Plain SQL on the shared pool (or one of its clients, inside a transaction). */
export type Sql = Pick<pg.Pool, 'query'>

declare module 'fastify' {
  interface FastifyInstance {
    prisma: PrismaClient
    pg: pg.Pool
    /** the statistics' reads: statement_timeout set, so a query past it is cancelled by PostgreSQL, not left running */
    statsPg: pg.Pool
  }
}

export function createDatabase (databaseUrl: string, max = 10): { pool: pg.Pool, prisma: PrismaClient } {
  // sessions in UTC: date_trunc on timestamptz and day casts must not follow the server's zone
  const pool = new pg.Pool({ connectionString: databaseUrl, max, options: '-c TimeZone=UTC' })
  reportLostConnections(pool)
  return { pool, prisma: new PrismaClient({ adapter: new PrismaPg(pool) }) }
}

/**
 * An idle connection the server terminates (restart, failover) must not crash the
 * process: the pool drops it, the next query opens a new one, and the loss is reported.
 * Not once the pool is ending: its end() resolves as soon as it has asked each
 * connection to close, so a database stopped right after (the embedded one, at the
 * server's stop) may still terminate one of them.
 */
function reportLostConnections (pool: pg.Pool): void {
  pool.on('error', (error) => {
    if (!pool.ending) process.stderr.write(`database connection lost: ${error.message}\n`)
  })
}

/**
 * A small pool for the usage statistics: every statement is cancelled server-side past
 * `statementTimeoutMs` (error 57014, answered 503 query_timeout) instead of running on
 * after the client gave up; and no parallel workers, whose start-up costs the small
 * rollup and index reads more than it saves on two busy cores.
 */
export function createStatsPool (databaseUrl: string, statementTimeoutMs: number, max = 4): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    // its only write is a read call's audit row, committed asynchronously (writeReadAudit)
    options: `-c TimeZone=UTC -c statement_timeout=${Math.trunc(statementTimeoutMs)} -c max_parallel_workers_per_gather=0 -c synchronous_commit=off`
  })
  reportLostConnections(pool)
  return pool
}

export default fp<{ databaseUrl: string, statsStatementTimeoutMs: number }>(async (app, opts) => {
  const { pool, prisma } = createDatabase(opts.databaseUrl)
  await prisma.$queryRaw`SELECT 1`
  const statsPool = createStatsPool(opts.databaseUrl, opts.statsStatementTimeoutMs)
  app.decorate('prisma', prisma)
  app.decorate('pg', pool)
  app.decorate('statsPg', statsPool)
  app.addHook('onClose', async () => {
    await prisma.$disconnect()
    await pool.end().catch(() => {}) // the adapter may have ended it already
    await statsPool.end().catch(() => {})
  })
}, { name: 'prisma' })

/** Runs `body` in one transaction on one connection of `pool`: committed when it returns, rolled back when it throws. */
export async function inTransaction<T> (pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await body(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

const statementNames = new Map<string, string>()

/**
 * The same connection or pool, with every statement named after its text: PostgreSQL
 * then plans each once per connection instead of on every call. For the hot paths,
 * whose statements are fixed texts with parameters.
 */
export function prepared (db: Sql): Sql {
  const nameOf = (text: string) => {
    let name = statementNames.get(text)
    if (name === undefined) {
      name = `km_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`
      statementNames.set(text, name)
    }
    return name
  }
  return {
    query: ((text: string, values?: unknown[]) => db.query({ name: nameOf(text), text, values })) as Sql['query']
  }
}
