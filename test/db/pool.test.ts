// The shared pool survives a connection the server terminates, and says so; a pool
// being ended stays quiet about the connections it is closing.
import pg from 'pg'
import t, { type Test } from 'tap'
import { createDatabase as openDatabase } from '../../src/db/prisma.js'
import { buildTestApp, createDatabase, waitUntil } from '../helper.js'

function captureStderr (t: Test): string[] {
  const lines: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true }) as typeof process.stderr.write
  t.teardown(() => { process.stderr.write = write })
  return lines
}

t.test('an idle connection terminated by the server is reported, and the pool goes on', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const { pool, prisma } = openDatabase(url)
  t.teardown(async () => { await prisma.$disconnect(); await pool.end().catch(() => {}) })
  const lines = captureStderr(t)
  const { rows: [own] } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query('SELECT pg_terminate_backend($1)', [own!.pid])
  await admin.end()
  for (let i = 0; i < 50 && lines.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.match(lines.join(''), /^database connection lost: terminating connection due to administrator command/)
  const { rows: [after] } = await pool.query<{ one: number }>('SELECT 1 AS one')
  t.equal(after?.one, 1, 'the next query opens a new connection')
})

t.test('a pool being ended does not report the connections it is closing', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const { pool } = openDatabase(url)
  await pool.query('SELECT 1')
  const lines = captureStderr(t)
  const ended = pool.end()
  pool.emit('error', new Error('terminating connection due to administrator command'))
  await ended
  t.same(lines, [])
})

// each new connection plans its statements again (a reservation's 23–115 ms, bench/README):
// the app's pools keep theirs through a quiet spell longer than node-postgres' 10 s default
t.test('the app\'s pools keep an idle connection for DB_POOL_IDLE_MS, then close it', async (t) => {
  const { app: kept } = await buildTestApp(t)
  const pid = async (pool: pg.Pool) => (await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
  const before = { verify: await pid(kept.pg), ingest: await pid(kept.ingestPg) }
  await new Promise((resolve) => setTimeout(resolve, 11_000))
  t.same({ verify: await pid(kept.pg), ingest: await pid(kept.ingestPg) }, before, 'after 11 s idle, by default, the same backends answer')

  const { app: brief } = await buildTestApp(t, { env: { DB_POOL_IDLE_MS: '200' } })
  await pid(brief.pg)
  t.equal(brief.pg.totalCount, 1)
  await waitUntil('the idle connection closed', async () => brief.pg.totalCount, (count) => count === 0, { timeoutMs: 5000 })
  t.pass('with DB_POOL_IDLE_MS=200 the idle connection is closed')
})
