// A database migrated up to (not including) one migration: where a migration's test puts
// the rows of the old form before applying it.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Test } from 'tap'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { monthStart } from '../../src/db/partitions.js'
import type { KeymeterApp } from '../../src/app.js'
import { createDatabase } from '../helper.js'

/** A new database with every migration before `migration` applied; its url. */
export async function migratedBefore (t: Test, migration: string): Promise<string> {
  const url = await createDatabase(t, { migrated: false })
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-migrations-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(MIGRATIONS_DIR)) if (name < migration) await cp(join(MIGRATIONS_DIR, name), join(dir, name), { recursive: true })
  await applyMigrations(url, { dir })
  return url
}

/** A database migrated up to (not including) `migration`, and a pool on it closed at teardown. */
export async function poolBefore (t: Test, migration: string): Promise<{ url: string, pool: pg.Pool }> {
  const url = await migratedBefore(t, migration)
  const pool = new pg.Pool({ connectionString: url, max: 3 })
  t.teardown(() => pool.end())
  return { url, pool }
}

/** The first instant of the UTC month `n` months from this one (partitions' bounds). */
export function month (n: number): Date {
  const now = monthStart(new Date())
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + n, 1))
}

/** The admin detail view (GET /api/admin/usage/:id) of each request, by request id. */
export async function detailsOf (t: Test, app: KeymeterApp, headers: Record<string, string>, requestIds: string[]): Promise<Map<string, Record<string, any>>> {
  const details = new Map<string, Record<string, any>>()
  for (const requestId of requestIds) {
    const { id } = await app.prisma.usage.findFirstOrThrow({ where: { requestId } })
    const res = await app.inject({ method: 'GET', url: `/api/admin/usage/${id}`, headers })
    t.equal(res.statusCode, 200, `${requestId}: its detail`)
    details.set(requestId, res.json())
  }
  return details
}
