// A database migrated up to (not including) one migration: where a migration's test puts
// the rows of the old form before applying it.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
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
