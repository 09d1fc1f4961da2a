// A database migrated up to (not including) one migration: where a migration's test puts
// the rows of the old form before applying it.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
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

/** The admin detail view (GET /api/admin/usage/:id) of each request, by request id. */
export async function detailsOf (t: Test, app: KeymeterApp, headers: Record<string, string>, requestIds: string[]): Promise<Map<string, Record<string, any>>> {
  const details = new Map<string, Record<string, any>>()
  for (const requestId of requestIds) {
    const { id } = await app.prisma.usage.findUniqueOrThrow({ where: { requestId } })
    const res = await app.inject({ method: 'GET', url: `/api/admin/usage/${id}`, headers })
    t.equal(res.statusCode, 200, `${requestId}: its detail`)
    details.set(requestId, res.json())
  }
  return details
}
