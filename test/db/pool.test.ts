// The shared pool survives a connection the server terminates, and says so; a pool
// being ended stays quiet about the connections it is closing.
import pg from 'pg'
import t, { type Test } from 'tap'
import { createDatabase as openDatabase } from '../../src/db/prisma.js'
import { createDatabase } from '../helper.js'

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
