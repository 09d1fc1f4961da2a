// A settled hold's index entry stays in its key's range of admission_holds (api_key_id,
// expires_at) until something marks it dead: a plain index scan does as it passes, a bitmap
// scan never does. The verify pool plans no bitmap scans (db/prisma.ts VERIFY_PLANS), so
// one reservation's read of a key's holds leaves the next reads (nearly) only the live ones.
import pg from 'pg'
import t from 'tap'
import { gateway, type Gateway, type Json } from './fixtures.js'

/** The index entries of the key's live-hold range a scan visits now (dead-marked ones are skipped by every scan). */
async function entriesVisited (g: Gateway, key: Json): Promise<number> {
  // a bitmap scan: counting must not mark anything itself
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
