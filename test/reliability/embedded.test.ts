// The default (embedded) deployment as a process: it starts again after a SIGKILL, a
// terminal's Ctrl-C (SIGINT to the whole process group) drains the requests in flight,
// a stale postmaster.pid does not stop a start, a second server on the same DATA_DIR
// refuses in one line, and every CLI command works beside a running server.
import { spawn } from 'node:child_process'
import { access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { CHILD_COVERAGE_OFF } from '../process.js'
import { ADMIN_PASSWORD, alive, postgresIds, dataDirFor, embeddedUrl, postmasterOf, runCli, signIn, spawnServer, startServer, until } from './server-process.js'

// every test starts real server processes, several seconds each on a busy 2-core machine
t.setTimeout(900_000)

const gone = (path: string) => access(path).then(() => false, () => true)

t.test('SIGKILL of the server: the postmaster it leaves is stopped by the next start, which serves the same data', async (t) => {
  const dataDir = await dataDirFor(t)
  const first = await startServer(t, dataDir)
  const headers = await signIn(first.base)
  const created = await fetch(`${first.base}/api/admin/users`, {
    method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'kept', password: 'correct-horse-battery' })
  })
  t.equal(created.status, 201, 'a user created before the kill')
  const left = await postmasterOf(dataDir)
  t.ok(left, 'a postmaster runs')

  first.child.kill('SIGKILL')
  await first.exited
  t.ok(alive(left!.pid), 'the postmaster outlives the SIGKILLed server')

  const started = Date.now()
  const second = await startServer(t, dataDir)
  t.comment(`restart after SIGKILL, spawn to ready: ${Date.now() - started} ms (first start: ${first.readyMs} ms)`)
  t.equal(second.stderr(), '', 'nothing on stderr')
  t.match(second.stdout(), `stopping the embedded PostgreSQL a previous run left on ${join(dataDir, 'pg')} (pid ${left!.pid})`)
  t.notOk(alive(left!.pid), 'the left-over postmaster was stopped')
  const now = await postmasterOf(dataDir)
  t.not(now?.pid, left!.pid, 'a new postmaster serves')
  const users = await fetch(`${second.base}/api/admin/users?limit=100`, { headers: await signIn(second.base) })
  t.match(JSON.stringify(await users.json()), /"username":"kept"/, 'the data written before the kill is there')

  second.child.kill('SIGTERM')
  t.same(await second.exited, { code: 0, signal: null })
  t.ok(await gone(join(dataDir, 'pg', 'postmaster.pid')), 'the cluster stopped')
  t.ok(await gone(join(dataDir, 'keymeter.lock')), 'the lock is released')
})

t.test('Ctrl-C (SIGINT to the process group) with requests in flight: they complete 200, the server exits 0, the cluster stops', async (t) => {
  const dataDir = await dataDirFor(t)
  const server = await startServer(t, dataDir)
  const db = new pg.Client({ connectionString: await embeddedUrl(dataDir) })
  db.on('error', () => {})
  await db.connect()
  t.teardown(() => db.end().catch(() => {}))

  // a lock on users holds every sign-in at its first query, in flight until it is released
  await db.query('BEGIN')
  await db.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE')
  const login = () => fetch(`${server.base}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: ADMIN_PASSWORD })
  }).then(async (res) => ({ status: res.status, body: await res.text() }), (error: Error) => ({ status: 0, body: error.message }))
  const inFlight = Array.from({ length: 4 }, login)
  await until(async () => {
    // inside a transaction pg_stat_activity is a snapshot taken once: clear it to see the new waits
    await db.query('SELECT pg_stat_clear_snapshot()')
    const waiting = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'keymeter'`)
    return waiting.rows[0]!.n >= 4
  }, 'four sign-ins waiting on the lock')

  process.kill(-server.child.pid!, 'SIGINT')
  await server.waitFor(/SIGINT: draining requests and stopping/)
  // the requests in flight go on once the lock goes, on a database the SIGINT did not reach
  await db.query('ROLLBACK').catch(() => {})

  const answers = await Promise.all(inFlight)
  t.same(answers.map((a) => a.status), [200, 200, 200, 200], `every request in flight completed: ${JSON.stringify(answers.filter((a) => a.status !== 200))}`)
  t.same(await server.exited, { code: 0, signal: null }, 'exits with code 0')
  t.ok(await gone(join(dataDir, 'pg', 'postmaster.pid')), 'no postmaster.pid left: the cluster stopped cleanly')
  t.equal(server.stderr(), '')
})

t.test('a stale postmaster.pid does not stop the start', async (t) => {
  const dataDir = await dataDirFor(t)
  const first = await startServer(t, dataDir)
  const left = (await postmasterOf(dataDir))!
  first.child.kill('SIGKILL')
  await first.exited
  // a hard crash of the cluster: the postmaster dies without removing postmaster.pid
  process.kill(left.pid, 'SIGKILL')
  await until(() => !alive(left.pid), 'the postmaster to die')

  await t.test('whose process is dead', async (t) => {
    const server = await startServer(t, dataDir)
    t.equal(server.stderr(), '')
    server.child.kill('SIGTERM')
    t.same(await server.exited, { code: 0, signal: null })
  })

  await t.test('whose pid now belongs to another process of the postgres user', async (t) => {
    // PostgreSQL refuses to start while the pid its lock file names is alive and signalable: a pid reused after a crash
    const ids = postgresIds()
    const other = spawn('sleep', ['600'], { ...ids, stdio: 'ignore' })
    t.teardown(() => { other.kill('SIGKILL') })
    const file = join(dataDir, 'pg', 'postmaster.pid')
    await writeFile(file, `${other.pid}\n${join(dataDir, 'pg')}\n1700000000\n5432\n/tmp\n127.0.0.1\n  1234567  8\nready   \n`)
    const server = await startServer(t, dataDir)
    t.equal(server.stderr(), '')
    t.ok(alive(other.pid!), 'the other process is left alone')
    server.child.kill('SIGTERM')
    t.same(await server.exited, { code: 0, signal: null })
  })
})

t.test('a second server on the same DATA_DIR refuses in one line; the first serves on', async (t) => {
  const dataDir = await dataDirFor(t)
  const first = await startServer(t, dataDir)
  const postmaster = await postmasterOf(dataDir)
  const second = await spawnServer(t, dataDir)
  t.same(await second.exited, { code: 1, signal: null }, 'exits with 1')
  t.match(JSON.parse(second.stderr()), { level: 60, msg: `keymeter failed to start: another keymeter server (pid ${first.child.pid}) is running on ${dataDir}; stop it first or give this one another DATA_DIR` }, 'one fatal line')
  t.same(await postmasterOf(dataDir), postmaster, 'the cluster is untouched')
  t.equal((await fetch(`${first.base}/ready`)).status, 200, 'the first server still serves')
  first.child.kill('SIGTERM')
  t.same(await first.exited, { code: 0, signal: null })
})

t.test('every CLI command beside a running server uses its cluster and leaves it running', async (t) => {
  const dataDir = await dataDirFor(t)
  const server = await startServer(t, dataDir)
  const postmaster = await postmasterOf(dataDir)
  const expected: Record<string, RegExp> = {
    migrate: /^migrations: database is up to date$/m,
    cleanup: /^disabled 0, deleted 0$/m,
    'rebuild-cache': /^cache analytics rebuilt from the usage rows$/m,
    seed: /^seeded 200 usage rows/m
  }
  const argv: Record<string, string[]> = { seed: ['seed', '--rows', '200', '--days', '2'] }
  for (const [command, pattern] of Object.entries(expected)) {
    const run = await runCli(dataDir, argv[command] ?? [command])
    t.equal(run.code, 0, `${command} exits 0 (stderr: ${run.stderr})`)
    // a JSON line each (stdout is no terminal): the pattern is a message's
    const messages = run.stdout.split('\n').filter((line) => line !== '').map((line) => (JSON.parse(line) as { msg: string }).msg).join('\n')
    t.match(messages, pattern, `${command} says what it did`)
    t.notMatch(run.stdout + run.stderr, /TypeError|undefined|\n\s+at /, `${command}: no stack trace, no "undefined"`)
    t.same(await postmasterOf(dataDir), postmaster, `${command} left the server's cluster running`)
  }
  t.equal((await fetch(`${server.base}/ready`)).status, 200, 'the server still serves')
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
  t.equal(server.stderr(), '', 'no connection of the server was cut under it')
})

t.test('a CLI command with no server starts the cluster for its length and stops it', async (t) => {
  const dataDir = await dataDirFor(t)
  const run = await runCli(dataDir, ['migrate'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /migrations: applied \d+/)
  t.equal(await postmasterOf(dataDir), null, 'no postmaster left')
  t.ok(await gone(join(dataDir, 'keymeter.lock')), 'the lock is released')

  const again = await runCli(dataDir, ['cleanup'])
  t.equal(again.code, 0, 'the next command starts it again')
  t.equal(await postmasterOf(dataDir), null, 'and stops it')
})

t.test('while a command runs the database itself, a server refuses in one line; Ctrl-C stops the command and its cluster', async (t) => {
  const dataDir = await dataDirFor(t)
  const seeding = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'seed', '--rows', '5000000'], {
    cwd: process.cwd(), detached: true, stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...CHILD_COVERAGE_OFF }
  })
  let stderr = ''
  seeding.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = new Promise<{ code: number | null, signal: string | null }>((resolve) => seeding.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => { if (seeding.exitCode === null && seeding.signalCode === null) seeding.kill('SIGKILL') })
  // seeding: past the migrations, into the rows
  await until(() => /catalogue|rows/.test(stderr) || seeding.exitCode !== null, 'the seed to start', 180_000)

  const server = await spawnServer(t, dataDir)
  t.same(await server.exited, { code: 1, signal: null }, 'the server exits 1')
  t.match(JSON.parse(server.stderr()), { level: 60, msg: `keymeter failed to start: keymeter seed (pid ${seeding.pid}) is using ${dataDir}; try again when it has finished` }, 'one fatal line')
  t.equal(seeding.exitCode, null, 'the seed runs on')

  process.kill(-seeding.pid!, 'SIGINT')
  t.same(await exited, { code: 130, signal: null }, `the command exits 130 (stderr: ${stderr.slice(-600)})`)
  t.equal(await postmasterOf(dataDir), null, 'its cluster stopped')
  t.ok(await gone(join(dataDir, 'keymeter.lock')), 'the lock is released')
})
