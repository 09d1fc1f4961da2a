// Settled holds leave dead rows in admission_holds, and their index entries stay in their
// key's range of (api_key_id, expires_at) until something marks or removes them: a plain
// index scan marks the entries it passes (a bitmap scan never does; the verify pool plans
// none, db/prisma.ts VERIFY_PLANS), and each instance vacuums the table once it holds
// HOLDS_VACUUM_THRESHOLD dead rows (autovacuum visits a database once a minute at most).
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import t, { type Test } from 'tap'
import { HOLDS_VACUUM_THRESHOLD, vacuumHolds } from '../../../src/modules/gateway/holds.js'
import { waitUntil } from '../../helper.js'
import { gateway, type Gateway, type Json } from './fixtures.js'

/** `count` holds of `key`, then the first `settled` of them deleted (as settlement does), with the statistics flushed. */
async function churn (t: Test, g: Gateway, key: Json, count: number, settled: number, tag = randomBytes(4).toString('hex')): Promise<void> {
  const client = new pg.Client({ connectionString: g.url })
  await client.connect()
  t.teardown(async () => { await client.end() })
  await client.query(`INSERT INTO admission_holds (request_id, api_key_id, user_id, amount, expires_at)
    SELECT $3 || '-' || n, k.id, k.user_id, 1000, now() + interval '10 minutes' FROM api_keys k, generate_series(1, $2::int) n WHERE k.id = $1`, [key.id, count, tag])
  await client.query(`DELETE FROM admission_holds WHERE request_id = ANY(SELECT $2 || '-' || n FROM generate_series(1, $1::int) n)`, [settled, tag])
  await client.query('SELECT pg_stat_force_next_flush()')
  await client.query('SELECT 1')
}

const stats = async (g: Gateway) => (await g.app.pg.query<{ vacuums: string, dead: string }>(
  `SELECT vacuum_count AS vacuums, n_dead_tup AS dead FROM pg_stat_user_tables WHERE relid = 'admission_holds'::regclass`)).rows[0]!

/** The index entries of the key's live-hold range a scan visits now: settled holds' too, until a scan marks them or a vacuum removes them (a bitmap scan, so counting marks nothing). */
async function entriesVisited (g: Gateway, key: Json): Promise<number> {
  const client = new pg.Client({ connectionString: g.url, options: '-c enable_indexscan=off -c enable_seqscan=off' })
  await client.connect()
  try {
    const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT sum(amount) FROM admission_holds WHERE api_key_id = $1 AND expires_at > now()`, [key.id])
    const line = rows.map((row) => row['QUERY PLAN']).find((l) => l.includes('Bitmap Index Scan'))!
    return Number(/rows=([\d.]+)/.exec(line)![1])
  } finally {
    await client.end()
  }
}

t.test('vacuumHolds vacuums past the threshold of dead rows, not before, and a key\'s range then holds only its live holds', async (t) => {
  const g = await gateway(t, { ADMISSION_HOLD_VACUUM_SECONDS: '0' })
  const key = await g.standaloneKey()
  await churn(t, g, key, 1200, 300)
  const before = await stats(g)
  t.equal(await vacuumHolds(g.app.pg), 'clean', '300 dead rows: below the threshold of 1,000')
  t.equal((await stats(g)).vacuums, before.vacuums, 'no vacuum')

  await churn(t, g, key, 1000, 1000)
  t.equal(await entriesVisited(g, key), 2200, '900 live holds, and 1,300 settled ones still in the key\'s index range')
  t.ok(Number((await stats(g)).dead) >= HOLDS_VACUUM_THRESHOLD)
  t.equal(await vacuumHolds(g.app.pg), 'vacuumed')
  const after = await stats(g)
  t.equal(Number(after.vacuums), Number(before.vacuums) + 1)
  t.equal(Number(after.dead), 0)
  t.equal(await entriesVisited(g, key), 900, 'the key\'s range holds its 900 live holds only')
})

t.test('each instance checks every ADMISSION_HOLD_VACUUM_SECONDS and counts its vacuums', async (t) => {
  const g = await gateway(t, { ADMISSION_HOLD_VACUUM_SECONDS: '1' })
  const key = await g.standaloneKey()
  const before = Number((await stats(g)).vacuums)
  await churn(t, g, key, 1500, 1500)
  await waitUntil('admission_holds vacuumed', async () => Number((await stats(g)).vacuums), (n) => n > before, { timeoutMs: 10_000 })
  t.equal((await g.app.metrics.holdsVacuums.get()).values[0]?.value, 1, 'keymeter_admission_holds_vacuums_total')
})

t.test('a database user that does not own the table is told so, and vacuums nothing', async (t) => {
  const g = await gateway(t, { ADMISSION_HOLD_VACUUM_SECONDS: '0' })
  const key = await g.standaloneKey()
  await churn(t, g, key, 1100, 1100)
  const role = `km_reader_${randomBytes(4).toString('hex')}`
  await g.app.pg.query(`CREATE ROLE ${role} LOGIN PASSWORD 'reader-password'`)
  t.teardown(async () => { await g.app.pg.query(`DROP OWNED BY ${role}`); await g.app.pg.query(`DROP ROLE ${role}`) })
  const url = new URL(g.url)
  url.username = role
  url.password = 'reader-password'
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
  t.teardown(async () => { await pool.end() })
  const before = (await stats(g)).vacuums
  t.equal(await vacuumHolds(pool), 'not owner')
  t.equal((await stats(g)).vacuums, before)
})

t.test('a reservation\'s read of its key\'s holds marks the settled ones\' entries dead', async (t) => {
  const g = await gateway(t, { DB_POOL_VERIFY: '1', ADMISSION_DEFAULT_HOLD_USD: '0.01', ADMISSION_HOLD_VACUUM_SECONDS: '0' })
  const key = await g.standaloneKey()
  // nothing but the scans may clean the table meanwhile
  await g.app.pg.query('ALTER TABLE admission_holds SET (autovacuum_enabled = off)')
  // 1,100 holds, then 1,000 of them settled (deleted, as settlement does), beside 20 live holds of each of 50 other keys
  await g.app.pg.query(`INSERT INTO admission_holds (request_id, api_key_id, user_id, amount, expires_at)
    SELECT 'h-' || n, k.id, k.user_id, 1000, now() + interval '10 minutes' FROM api_keys k, generate_series(1, 1100) n WHERE k.id = $1`, [key.id])
  for (let i = 0; i < 50; i++) {
    const other = await g.standaloneKey()
    await g.app.pg.query(`INSERT INTO admission_holds (request_id, api_key_id, user_id, amount, expires_at)
      SELECT $2 || '-' || n, k.id, k.user_id, 1000, now() + interval '10 minutes' FROM api_keys k, generate_series(1, 20) n WHERE k.id = $1`, [other.id, `o${i}`])
  }
  // what the verify connection plans by: many keys, each with its holds
  await g.app.pg.query('ANALYZE admission_holds')
  await g.app.pg.query(`DELETE FROM admission_holds WHERE request_id = ANY(SELECT 'h-' || n FROM generate_series(1, 1000) n)`)
  t.equal(await entriesVisited(g, key), 1100, 'the settled holds\' entries are still in the key\'s range')

  t.equal((await g.verify({ key: key.key, request_id: 'after-settlement' })).statusCode, 200)
  // not every entry gets marked (here one leaf page's worth, 120 of the 1,000, stayed through later
  // reads too; why is not established): the instance's vacuum removes what the reads leave
  const visited = await entriesVisited(g, key)
  t.ok(visited <= 101 + 500, `the next reads skip most of the 1,000 settled holds' entries (${visited} visited for 101 live holds)`)
})
