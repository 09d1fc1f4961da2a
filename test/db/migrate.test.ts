// applyMigrations / pendingMigrations against empty databases on the test server:
// the bookkeeping must be exactly what `prisma migrate deploy` would have written.
import { createHash } from 'node:crypto'
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { applyMigrations, MIGRATIONS_DIR, MigrationError, pendingMigrations, readMigrations } from '../../src/db/migrate.js'
import { createDatabase } from '../helper.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

interface MigrationRow {
  id: string, checksum: string, finished_at: Date | null, migration_name: string, logs: string | null,
  rolled_back_at: Date | null, started_at: Date, applied_steps_count: number
}

async function connect (t: Test, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

async function migrationRows (client: pg.Client): Promise<MigrationRow[]> {
  return (await client.query<MigrationRow>('SELECT * FROM "_prisma_migrations" ORDER BY migration_name, started_at')).rows
}

/** The folders under prisma/migrations, each with the sha256 of its migration.sql. */
async function migrationFolders (): Promise<Array<{ name: string, checksum: string }>> {
  const entries = await readdir(MIGRATIONS_DIR, { withFileTypes: true })
  const names = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()
  return Promise.all(names.map(async (name) => ({
    name,
    checksum: createHash('sha256').update(await readFile(join(MIGRATIONS_DIR, name, 'migration.sql'))).digest('hex')
  })))
}

/** A copy of prisma/migrations the test may edit, removed afterwards. */
async function migrationsCopy (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-migrations-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(MIGRATIONS_DIR, dir, { recursive: true })
  return dir
}

/** Adds a migration folder `name` with `sql` to a copy made by migrationsCopy. */
async function addMigration (dir: string, name: string, sql: string): Promise<void> {
  await mkdir(join(dir, name))
  await writeFile(join(dir, name, 'migration.sql'), sql)
}

async function tableExists (client: pg.Client, name: string): Promise<boolean> {
  const res = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`public."${name}"`])
  return res.rows[0]?.t !== null
}

t.test('applyMigrations applies the init migration to an empty database', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const folders = await migrationFolders()
  t.ok(folders.some((f) => f.name.endsWith('_init')), 'there is an init migration')

  const applied = await applyMigrations(url)
  t.same(applied, folders.map((f) => f.name), 'every folder is applied, in name order')

  const client = await connect(t, url)
  t.ok(await tableExists(client, 'users'), 'the init migration created its tables')
  t.ok(await tableExists(client, 'usage'))
  t.same(await pendingMigrations(client, await readMigrations()), [], 'nothing is pending afterwards')
})

t.test('_prisma_migrations has exactly the columns Prisma creates', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = await connect(t, url)
  const { rows } = await client.query<{ column_name: string, data_type: string, character_maximum_length: number | null, is_nullable: string, column_default: string | null }>(
    `SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
       FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = '_prisma_migrations'
      ORDER BY ordinal_position`)
  t.same(rows, [
    { column_name: 'id', data_type: 'character varying', character_maximum_length: 36, is_nullable: 'NO', column_default: null },
    { column_name: 'checksum', data_type: 'character varying', character_maximum_length: 64, is_nullable: 'NO', column_default: null },
    { column_name: 'finished_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES', column_default: null },
    { column_name: 'migration_name', data_type: 'character varying', character_maximum_length: 255, is_nullable: 'NO', column_default: null },
    { column_name: 'logs', data_type: 'text', character_maximum_length: null, is_nullable: 'YES', column_default: null },
    { column_name: 'rolled_back_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'YES', column_default: null },
    { column_name: 'started_at', data_type: 'timestamp with time zone', character_maximum_length: null, is_nullable: 'NO', column_default: 'now()' },
    { column_name: 'applied_steps_count', data_type: 'integer', character_maximum_length: null, is_nullable: 'NO', column_default: '0' }
  ])
  const pk = await client.query<{ column_name: string }>(
    `SELECT k.column_name FROM information_schema.table_constraints c
       JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_name = c.table_name
      WHERE c.table_name = '_prisma_migrations' AND c.constraint_type = 'PRIMARY KEY'`)
  t.same(pk.rows, [{ column_name: 'id' }], 'id is the primary key')
})

t.test('one finished row per migration folder, with the sha256 of its migration.sql', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = await connect(t, url)
  const rows = await migrationRows(client)
  const folders = await migrationFolders()
  t.equal(rows.length, folders.length, 'one row per folder')
  for (const folder of folders) {
    const row = rows.find((r) => r.migration_name === folder.name)
    if (row === undefined) { t.fail(`no row for ${folder.name}`); continue }
    t.equal(row.checksum, folder.checksum, `${folder.name}: checksum is the sha256 hex of migration.sql`)
    t.match(row.checksum, /^[0-9a-f]{64}$/)
    t.ok(row.finished_at instanceof Date, `${folder.name}: finished_at is set`)
    t.ok(row.finished_at !== null && row.finished_at.getTime() >= row.started_at.getTime(), 'finished no earlier than started')
    t.equal(row.applied_steps_count, 1)
    t.equal(row.rolled_back_at, null)
    t.equal(row.logs, null)
    t.match(row.id, UUID, 'id is a uuid')
  }
})

t.test('a second run applies nothing and leaves the rows unchanged', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  t.not((await applyMigrations(url)).length, 0)
  const client = await connect(t, url)
  const before = await migrationRows(client)
  const lines: string[] = []
  t.same(await applyMigrations(url, { log: (line) => lines.push(line) }), [], 'nothing applied')
  t.same(lines, [], 'nothing logged as applied')
  t.same(await migrationRows(client), before, 'rows unchanged, ids and timestamps included')
})

t.test('two concurrent runs on a fresh database both succeed and apply each migration once', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const folders = await migrationFolders()
  const results = await Promise.allSettled([applyMigrations(url), applyMigrations(url)])
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled'], 'neither run failed')
  const applied = results.flatMap((r) => r.status === 'fulfilled' ? r.value : [])
  t.same(applied.sort(), folders.map((f) => f.name).sort(), 'between them, each migration was applied by exactly one run')
  const client = await connect(t, url)
  const rows = await migrationRows(client)
  t.same(rows.map((r) => r.migration_name), folders.map((f) => f.name), 'each migration recorded exactly once')
})

t.test('an applied migration edited on disk stops with a MigrationError naming it', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = await connect(t, url)
  const before = await migrationRows(client)

  const dir = await migrationsCopy(t)
  const [first] = await migrationFolders()
  if (first === undefined) throw new Error('no migrations')
  await appendFile(join(dir, first.name, 'migration.sql'), '\n-- edited after it was applied\n')

  await t.rejects(applyMigrations(url, { dir }), { name: 'MigrationError', message: new RegExp(`${first.name}.*modified`) })
  await t.rejects(applyMigrations(url, { dir }), MigrationError, 'the error is a MigrationError')
  await t.rejects(pendingMigrations(client, await readMigrations(dir)), { name: 'MigrationError', message: new RegExp(first.name) },
    'pendingMigrations raises it too')
  t.same(await migrationRows(client), before, 'the bookkeeping is untouched')
  t.same(await applyMigrations(url), [], 'the unedited migrations still agree with the database')
})

t.test('a failing migration is rolled back and named; earlier migrations stay applied', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const dir = await migrationsCopy(t)
  const broken = '99990101000000_broken'
  await addMigration(dir, broken, 'CREATE TABLE x (id int); SELECT * FROM no_such_table;')
  const folders = await migrationFolders()

  await t.rejects(applyMigrations(url, { dir }), { name: 'MigrationError', message: new RegExp(`${broken}.*no_such_table`) })
  await t.rejects(applyMigrations(url, { dir }), MigrationError, 'a retry fails the same way')

  const client = await connect(t, url)
  t.notOk(await tableExists(client, 'x'), 'table x was rolled back')
  const rows = await migrationRows(client)
  t.notOk(rows.some((r) => r.migration_name === broken), 'no row for the failed migration')
  t.same(rows.map((r) => r.migration_name), folders.map((f) => f.name), 'the earlier migrations are recorded')
  t.ok(rows.every((r) => r.finished_at !== null), 'and finished')
  t.ok(await tableExists(client, 'users'), 'and their tables exist')
  t.same((await pendingMigrations(client, await readMigrations(dir))).map((m) => m.name), [broken], 'only the broken one is pending')
})

t.test('a migration\'s row records when it started and when it finished, not its transaction\'s start twice', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const dir = await migrationsCopy(t)
  const slow = '99990101000000_slow'
  await addMigration(dir, slow, 'SELECT pg_sleep(0.3);')
  await applyMigrations(url, { dir })
  const client = await connect(t, url)
  const row = (await migrationRows(client)).find((r) => r.migration_name === slow)!
  t.ok(row.finished_at!.getTime() - row.started_at.getTime() >= 300, `took ${row.finished_at!.getTime() - row.started_at.getTime()} ms`)
})

t.test('a row left unfinished by a failed prisma deploy makes pendingMigrations throw naming it', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = await connect(t, url)
  const failed = '20990101000000_failed_in_prisma'
  await client.query(
    `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, logs, started_at, applied_steps_count)
     VALUES (gen_random_uuid()::text, repeat('a', 64), $1, 'error: boom', now(), 0)`, [failed])

  await t.rejects(pendingMigrations(client, await readMigrations()), { name: 'MigrationError', message: new RegExp(failed) })
  await t.rejects(applyMigrations(url), { name: 'MigrationError', message: new RegExp(failed) }, 'applyMigrations refuses too')

  // once resolved as rolled back (prisma migrate resolve --rolled-back), it no longer blocks
  await client.query('UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = $1', [failed])
  t.same(await pendingMigrations(client, await readMigrations()), [])
})
