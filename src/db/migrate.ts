// Applies prisma/migrations/<timestamp>_<name>/migration.sql the way `prisma migrate
// deploy` does, for machines without Prisma's schema engine: same advisory lock, same
// `_prisma_migrations` rows, so either tool can take over from the other.
import { createHash, randomUUID } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import sql from 'sql-template-tag'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url))

// The key Prisma's schema engine locks on PostgreSQL, so the two never run at once.
const PRISMA_ADVISORY_LOCK = 72707369

export interface Migration { name: string, sql: string, checksum: string }

export class MigrationError extends Error {
  override name = 'MigrationError'
}

export async function readMigrations (dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()
  return Promise.all(names.map(async (name) => {
    const sql = await readFile(join(dir, name, 'migration.sql'), 'utf8')
    return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') }
  }))
}

// Prisma's own DDL for the bookkeeping table.
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`

interface AppliedRow { migration_name: string, checksum: string, finished_at: Date | null, rolled_back_at: Date | null }

/** Anything that runs a constant SQL string: a pg client, or Prisma through $queryRawUnsafe. */
export interface Queryable { query: <T>(sql: string) => Promise<{ rows: T[] }> }

async function appliedRows (db: Queryable): Promise<AppliedRow[] | null> {
  const exists = await db.query<{ t: string | null }>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`)
  if (exists.rows[0]?.t === null || exists.rows[0]?.t === undefined) return null
  const res = await db.query<AppliedRow>('SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" ORDER BY started_at')
  return res.rows
}

/** Names of migrations on disk that the database has not applied; throws on a tampered or failed one. */
export async function pendingMigrations (db: Queryable, migrations: Migration[]): Promise<Migration[]> {
  const rows = (await appliedRows(db)) ?? []
  const done = new Map<string, AppliedRow>()
  for (const row of rows) {
    if (row.rolled_back_at !== null) continue
    if (row.finished_at === null) {
      throw new MigrationError(`migration ${row.migration_name} failed or is still running; resolve it (prisma migrate resolve) before starting`)
    }
    done.set(row.migration_name, row)
  }
  for (const m of migrations) {
    const row = done.get(m.name)
    if (row !== undefined && row.checksum !== m.checksum) {
      throw new MigrationError(`migration ${m.name} was modified after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${m.checksum.slice(0, 12)}… on disk)`)
    }
  }
  return migrations.filter((m) => !done.has(m.name))
}

/** Applies every pending migration, each in its own transaction, under the advisory lock. */
export async function applyMigrations (databaseUrl: string, options: { dir?: string, log?: (line: string) => void } = {}): Promise<string[]> {
  const migrations = await readMigrations(options.dir)
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    await client.query(sql`SELECT pg_advisory_lock(${PRISMA_ADVISORY_LOCK})`)
    try {
      await client.query(CREATE_TABLE)
      const pending = await pendingMigrations(client, migrations)
      for (const migration of pending) {
        await applyOne(client, migration)
        options.log?.(`applied migration ${migration.name}`)
      }
      return pending.map((m) => m.name)
    } finally {
      await client.query(sql`SELECT pg_advisory_unlock(${PRISMA_ADVISORY_LOCK})`)
    }
  } finally {
    await client.end()
  }
}

async function applyOne (client: pg.Client, migration: Migration): Promise<void> {
  const id = randomUUID()
  await client.query('BEGIN')
  try {
    await client.query(sql`INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES (${id}, ${migration.checksum}, ${migration.name}, clock_timestamp(), 0)`)
    await client.query(migration.sql)
    await client.query(sql`UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = ${id}`)
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK')
    throw new MigrationError(`migration ${migration.name} failed: ${(error as Error).message}`)
  }
}
