// The stop's deadline, on the real server process: a request held by a row lock (the
// test's own transaction) does not keep a SIGTERM'd server alive past SHUTDOWN_GRACE_MS;
// the process says so in a line and exits with 1. With nothing in flight it exits with 0.
import pg from 'pg'
import t from 'tap'
import { spawnServerProcess } from '../process.js'
import { createDatabase } from '../helper.js'
import { until } from './server-process.js'

t.setTimeout(300_000)

const GRACE_MS = 1500
const ADMIN_PASSWORD = 'first-admin-password'
const env = (url: string) => ({
  DATABASE_URL: url,
  SESSION_SECRET: 'test-session-secret-0123456789abcdef',
  ENCRYPTION_KEY: 'test-encryption-key-0123456789abcdef',
  ADMIN_PASSWORD,
  CLEANUP_CRON: 'off',
  LOG_LEVEL: 'warn',
  SHUTDOWN_GRACE_MS: String(GRACE_MS),
  // the held request waits on the lock far longer than the grace
  DB_TRANSACTION_TIMEOUT_MS: '120000'
})

async function ready (base: string): Promise<void> {
  await until(async () => (await fetch(`${base}/ready`).catch(() => null))?.status === 200, 'the server is ready', 120_000)
}

t.test('a request that hangs does not hold the stop past SHUTDOWN_GRACE_MS', async (t) => {
  const url = await createDatabase(t)
  const server = await spawnServerProcess(t, env(url))
  await ready(server.base)

  // the admin's row locked FOR UPDATE: a sign-in's session insert (its foreign key) waits on it
  const holder = new pg.Client({ connectionString: url })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query("SELECT id FROM users WHERE username = 'admin' FOR UPDATE")
  const login = fetch(`${server.base}/api/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: ADMIN_PASSWORD })
  }).then((res) => res.status, () => 'no answer' as const)
  await until(async () => {
    const { rows } = await holder.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    return Number(rows[0]!.n) > 0
  }, 'the sign-in waits on the lock')

  const signalled = performance.now()
  server.child.kill('SIGTERM')
  const exit = await server.exited
  const tookMs = performance.now() - signalled
  t.equal(exit.code, 1, 'exit code 1: a request was cut off')
  t.ok(tookMs >= GRACE_MS, `the request had its grace (${Math.round(tookMs)} ms)`)
  t.ok(tookMs < GRACE_MS + 10_000, `and the stop did not wait for it (${Math.round(tookMs)} ms; the lock is held for minutes)`)
  t.match(server.stdout(), /SIGTERM: draining requests and stopping/)
  t.match(server.stdout(), new RegExp(`shutdown: requests still in flight after SHUTDOWN_GRACE_MS \\(${GRACE_MS} ms\\); closing their connections and exiting`))
  t.equal(await login, 'no answer', 'the held request\'s connection was closed')
  await holder.query('ROLLBACK')
})

t.test('with nothing in flight the stop exits with 0 and no deadline line', async (t) => {
  const url = await createDatabase(t)
  const server = await spawnServerProcess(t, env(url))
  await ready(server.base)
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
  t.notMatch(server.stdout(), /still in flight/)
})
