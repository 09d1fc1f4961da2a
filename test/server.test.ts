// The real process (src/server.ts under tsx): boot on an empty database, migrate, create
// the first admin, serve, stop cleanly on SIGTERM; restart idempotently; refuse to
// start on a tampered migration or an invalid variable. Then the embedded PostgreSQL.
import { access, chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { startEmbedded } from '../src/db/embedded.js'
import { readMigrations } from '../src/db/migrate.js'
import { createDatabase, waitUntil } from './helper.js'
import { spawnServerProcess } from './process.js'

const ADMIN_PASSWORD = 'first-admin-password'

/** The server with exactly `env` (plus PATH, HOME, HOST, PORT), at LOG_LEVEL=info unless `env` says. */
const spawnServer = (t: Test, env: Record<string, string>) => spawnServerProcess(t, { LOG_LEVEL: 'info', ...env })

/** Everything a first boot needs, on `url`. */
function serverEnv (url: string): Record<string, string> {
  return {
    DATABASE_URL: url,
    SESSION_SECRET: 'server-test-session-secret-0123456789',
    ENCRYPTION_KEY: 'server-test-encryption-key-0123456789',
    ADMIN_PASSWORD
  }
}

async function query<T extends pg.QueryResultRow> (url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(sql)).rows
  } finally {
    await client.end()
  }
}

const migrationRows = (url: string) =>
  query<{ id: string, migration_name: string, checksum: string }>(url, 'SELECT id, migration_name, checksum FROM "_prisma_migrations" ORDER BY migration_name')
const adminCount = async (url: string) =>
  Number((await query<{ n: string }>(url, `SELECT count(*) AS n FROM users WHERE role = 'admin'`))[0]?.n)

t.test('the server process on an external database', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const migrations = await readMigrations()
  const init = migrations.find((m) => m.name.endsWith('_init'))
  if (init === undefined) throw new Error('no init migration')

  await t.test('first boot migrates the empty database, creates the admin, serves, and stops on SIGTERM with 0', async (t) => {
    const server = await spawnServer(t, serverEnv(url))
    await server.waitFor(/Server listening/)
    t.match(server.stdout(), `applied migration ${init.name}`)

    const ready = await fetch(`http://127.0.0.1:${server.port}/ready`)
    t.equal(ready.status, 200, 'ready')
    t.same(await ready.json(), { status: 'ready' })

    const login = await fetch(`http://127.0.0.1:${server.port}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: ADMIN_PASSWORD })
    })
    t.equal(login.status, 200, 'the first admin signs in with ADMIN_PASSWORD')
    t.type((await login.json() as { access_token?: unknown }).access_token, 'string')

    const rows = await migrationRows(url)
    t.same(rows.map((r) => r.migration_name), migrations.map((m) => m.name), 'the init migration is recorded')
    t.equal(rows.find((r) => r.migration_name === init.name)?.checksum, init.checksum)
    t.equal(await adminCount(url), 1, 'one admin')
    t.notMatch(server.stdout(), /generated password/, 'no password generated when ADMIN_PASSWORD is given')

    server.child.kill('SIGTERM')
    t.same(await server.exited, { code: 0, signal: null }, 'exits with code 0')
    t.match(server.stdout(), /SIGTERM: draining requests and stopping/)
    t.equal(server.stderr(), '')
  })

  await t.test('a second boot on the same database migrates nothing and creates no second admin', async (t) => {
    const before = await migrationRows(url)
    const server = await spawnServer(t, serverEnv(url))
    await server.waitFor(/Server listening/)
    t.match(server.stdout(), 'database is up to date')
    t.notMatch(server.stdout(), /applied migration/)
    t.same(await migrationRows(url), before, '_prisma_migrations unchanged')
    t.equal(await adminCount(url), 1, 'still one admin')
    server.child.kill('SIGTERM')
    t.same(await server.exited, { code: 0, signal: null })
  })

  await t.test('a tampered checksum stops the boot with code 1 naming the migration', async (t) => {
    await query(url, `UPDATE "_prisma_migrations" SET checksum = repeat('0', 64) WHERE migration_name = '${init.name}'`)
    const server = await spawnServer(t, serverEnv(url))
    const exit = await server.exited
    t.equal(exit.code, 1)
    t.match(server.stderr(), init.name)
    t.match(server.stderr(), /modified after it was applied/)
    t.notMatch(server.stdout(), /Server listening/)
  })
})

t.test('without ADMIN_PASSWORD the first admin\'s password goes to a 0600 file under DATA_DIR, never to the log', async (t) => {
  const url = await createDatabase(t)
  const dataDir = await mkdtemp(join(tmpdir(), 'keymeter-admin-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const { ADMIN_PASSWORD: _, ...env } = serverEnv(url)
  const server = await spawnServer(t, { ...env, DATA_DIR: dataDir })
  await server.waitFor(/Server listening/)
  const file = join(dataDir, 'first-admin-password')
  t.equal((await stat(file)).mode & 0o777, 0o600, 'only its owner reads it')
  const password = (await readFile(file, 'utf8')).trim()
  t.match(password, /^[A-Za-z0-9]{20}$/, 'a generated password')
  t.notOk(server.stdout().includes(password) || server.stderr().includes(password), 'not in the log')
  t.match(server.stdout(), `its generated password is in ${file}`)
  const login = await fetch(`http://127.0.0.1:${server.port}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password })
  })
  t.equal(login.status, 200, 'the first admin signs in with it')
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
})

t.test('an invalid PORT stops the boot with code 1 naming PORT', async (t) => {
  const server = await spawnServer(t, { ...serverEnv('postgresql://nobody@127.0.0.1:1/none'), PORT: 'abc' })
  const exit = await server.exited
  t.equal(exit.code, 1)
  t.match(server.stderr(), /invalid configuration: .*\bPORT\b/)
  t.notMatch(server.stdout(), /Server listening/)
})

t.test('embedded PostgreSQL', async (t) => {
  // the cluster runs as the `postgres` user, which must be able to reach the data directory
  const parent = await mkdtemp(join(tmpdir(), 'keymeter-embedded-'))
  await chmod(parent, 0o755)
  t.teardown(() => rm(parent, { recursive: true, force: true }))
  const options = { dataDir: join(parent, 'pg'), password: 'embedded-test-password', database: 'km_embedded' }

  async function start (t: Test) {
    const db = await startEmbedded(options)
    let stopped = false
    t.teardown(async () => { if (!stopped) await db.stop() })
    return { url: db.url, stop: async () => { stopped = true; await db.stop() } }
  }

  await t.test('starts on a new data directory, creates the database, serves queries, and stops', async (t) => {
    const db = await start(t)
    t.match(db.url, /\/km_embedded$/)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const res = await client.query<{ db: string }>('SELECT current_database() AS db')
    t.equal(res.rows[0]?.db, 'km_embedded')
    await client.query(`CREATE TABLE kept (note text); INSERT INTO kept VALUES ('first run')`)
    await client.end()

    await db.stop()
    const after = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 })
    after.on('error', () => {})
    await t.rejects(after.connect(), 'nothing listens after stop()')
  })

  await t.test('starts again on the same data directory with the data kept', async (t) => {
    const db = await start(t)
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const res = await client.query<{ note: string }>('SELECT note FROM kept')
    await client.end()
    t.same(res.rows, [{ note: 'first run' }])
    await db.stop()
  })
})

t.test('the server on its embedded database under load: SIGTERM drains the requests in flight, closes busy connections as they idle, then stops the cluster', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'keymeter-server-embedded-'))
  await chmod(dataDir, 0o755)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const server = await spawnServer(t, { DATA_DIR: dataDir, ADMIN_PASSWORD })
  await server.waitFor(/Server listening/)
  const url = `http://127.0.0.1:${server.port}/ready`

  // readiness checks (each a database query) from four loops until the server stops answering
  const answers: Array<{ status: number, body: string }> = []
  let signalled = false
  const loop = async () => {
    for (;;) {
      try {
        const res = await fetch(url)
        answers.push({ status: res.status, body: await res.text() })
      } catch {
        if (signalled) return // refused or reset: the server has stopped listening
      }
    }
  }
  const loops = Promise.all([loop(), loop(), loop(), loop()])
  // signal once the loops are answered, so the drain has requests in flight
  await waitUntil('answers while running', async () => answers.filter((a) => a.status === 200).length, (ok) => ok > 10, { intervalMs: 10, timeoutMs: 30_000 })
  signalled = true
  const stopAt = Date.now()
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null }, 'exits with code 0')
  // the connections the loops keep busy are closed as they idle, not left to their 72-s keep-alive timeout
  t.ok(Date.now() - stopAt < 30_000, `stopped in ${Date.now() - stopAt} ms, not after the keep-alive timeout`)
  await loops

  t.ok(answers.filter((a) => a.status === 200).length > 10, `answered while running (${answers.length} answers)`)
  // a request that reached the handler finished on a live database; requests arriving while
  // closing are refused by Fastify itself (503 without a readiness body)
  t.same(answers.filter((a) => a.body.includes('not_ready')), [], 'no readiness check lost its database')
  t.equal(server.stderr(), '', 'nothing on stderr (no connection terminated under the pool)')
  t.match(server.stdout(), /SIGTERM: draining requests and stopping/)
  await t.rejects(access(join(dataDir, 'pg', 'postmaster.pid')), 'the cluster stopped')
})
