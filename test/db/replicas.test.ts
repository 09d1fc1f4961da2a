// The statistics' read routing (src/db/replicas.ts) against real databases: a second
// database stands in for a replica (test/db/replicas.ts says how it lags and goes down), and
// current_database() tells which one answered. The clock is injected: a check is due only
// when the test moves it.
import pg from 'pg'
import t, { type Test } from 'tap'
import { loadConfig, readUrls } from '../../src/config.js'
import { createPool, createStatsPool } from '../../src/db/prisma.js'
import { failureOf, ReadRouting, type ReplicaState } from '../../src/db/replicas.js'
import { createDatabase, testConfig } from '../helper.js'
import { fakeStandby, tcpProxy } from './replicas.js'

const CHECK_MS = 2000
const MAX_LAG_MS = 10_000

async function setUp (t: Test, replicaCount = 1, options: { proxied?: boolean } = {}) {
  const primaryUrl = await createDatabase(t, { migrated: false })
  const names = [await name(primaryUrl)]
  const standbys = []
  const proxies = []
  const targets: Array<{ label: string, pool: pg.Pool, probe: pg.Pool }> = []
  for (let i = 0; i < replicaCount; i++) {
    const url = await createDatabase(t, { migrated: false })
    names.push(await name(url))
    standbys.push(await fakeStandby(url))
    const proxy = options.proxied === true ? await tcpProxy(t, url) : null
    proxies.push(proxy)
    const reach = proxy?.url ?? url
    targets.push({ label: `read${i + 1}`, pool: createStatsPool(reach, 5000, { max: 2, waitMs: 1000, onLost: () => {} }), probe: createPool(reach, { max: 1, waitMs: 1000, onLost: () => {} }) })
  }
  const primary = createStatsPool(primaryUrl, 5000, { max: 2, onLost: () => {} })
  let clock = 1_000_000
  const changes: ReplicaState[] = []
  const reads = new ReadRouting(primary, targets, { maxLagMs: MAX_LAG_MS, checkMs: CHECK_MS, now: () => clock, onChange: (state) => changes.push(state) })
  t.teardown(async () => {
    for (const pool of [primary, ...targets.flatMap((r) => [r.pool, r.probe])]) await pool.end().catch(() => {})
  })
  const served = async () => (await reads.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db
  return {
    reads, standbys, proxies, targets, changes, served,
    primaryName: names[0]!,
    replicaNames: names.slice(1),
    /** moves the clock past the check interval and lets the check a read starts finish */
    recheck: async () => { clock += CHECK_MS; reads.checkIfDue(); await reads.check() },
    tick: (ms: number) => { clock += ms }
  }
}

async function name (url: string): Promise<string> {
  return new URL(url).pathname.slice(1)
}

t.test('DATABASE_READ_URL: one or more postgres URLs, a bad one named by position, never printed', async (t) => {
  const base = { DATABASE_URL: 'postgres://u:p@primary/db' }
  t.same(readUrls(loadConfig({ ...base, DATABASE_READ_URL: ' postgres://u:p@r1/db , postgresql://u:p@r2:5433/db ' }).DATABASE_READ_URL), ['postgres://u:p@r1/db', 'postgresql://u:p@r2:5433/db'])
  t.same(readUrls(undefined), [], 'unset: no replica')
  const config = loadConfig(base)
  t.equal(config.DATABASE_READ_MAX_LAG_MS, 10_000)
  t.equal(config.DATABASE_READ_CHECK_MS, 2000)
  t.throws(() => loadConfig({ ...base, DATABASE_READ_URL: ' , ' }), /DATABASE_READ_URL: no URL given/)
  t.throws(() => loadConfig({ ...base, DATABASE_READ_URL: 'postgres://u:secret@r1/db,mysql://u:secret@r2/db' }), /DATABASE_READ_URL: URL 2 of 2 is not a postgres:\/\/ or postgresql:\/\/ URL/)
  t.throws(() => loadConfig({ ...base, DATABASE_READ_URL: 'postgres://[bad' }), /URL 1 of 1/)
  try {
    loadConfig({ ...base, DATABASE_READ_URL: 'mysql://u:secret@r2/db', DATABASE_READ_MAX_LAG_MS: '-1' })
    t.fail('loaded')
  } catch (error) {
    t.notMatch((error as Error).message, /secret/, 'the URL is not repeated: it holds a password')
    t.match((error as Error).message, /DATABASE_READ_MAX_LAG_MS: must be a whole number from 0 to 3600000/)
  }
  t.throws(() => testConfig('postgres://u:p@h/db', { DATABASE_READ_CHECK_MS: '50' }), /DATABASE_READ_CHECK_MS: must be a whole number from 100 to 60000/)
})

t.test('failures: unreachable, a recovery conflict, or the query\'s own', async (t) => {
  const dbError = (code: string) => Object.assign(new pg.DatabaseError('x', 1, 'error'), { code })
  t.equal(failureOf(new Error('Connection terminated unexpectedly')), 'unavailable', 'no SQLSTATE: the server never answered')
  t.equal(failureOf(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), 'unavailable')
  for (const code of ['08006', '28P01', '3D000', '57P01', '57P03', '53300']) t.equal(failureOf(dbError(code)), 'unavailable', code)
  t.equal(failureOf(new pg.DatabaseError('x', 1, 'error')), 'unavailable', 'a server error without a code')
  for (const code of ['40001', '40P01']) t.equal(failureOf(dbError(code)), 'conflict', code)
  for (const code of ['57014', '42601', '22P02']) t.equal(failureOf(dbError(code)), 'query', code)
})

t.test('a current replica serves the reads; a lagging one is skipped until it catches up', async (t) => {
  const s = await setUp(t)
  t.equal(await s.served(), s.primaryName, 'before the first check: the primary')
  await s.reads.check()
  t.match(s.reads.states(), [{ label: 'read1', usable: true, reason: null }])
  t.ok(s.reads.states()[0]!.lagMs! < 1000, 'its lag measured')
  t.equal(await s.served(), s.replicaNames[0], 'the replica')

  await s.standbys[0]!.lag(MAX_LAG_MS + 5000)
  t.equal(await s.served(), s.replicaNames[0], 'within the check interval its state is not read again')
  await s.recheck()
  t.match(s.reads.states(), [{ usable: false, reason: /^lag 1\d{4} ms over 10000 ms$/ }])
  t.equal(await s.served(), s.primaryName, 'too far behind: the primary')

  await s.standbys[0]!.lag(MAX_LAG_MS - 5000)
  await s.recheck()
  t.equal(await s.served(), s.replicaNames[0], 'back within the bound: the replica again')

  await s.standbys[0]!.lag(null)
  await s.recheck()
  t.match(s.reads.states(), [{ usable: false, lagMs: null, reason: 'no transaction replayed yet' }])
  t.equal(await s.served(), s.primaryName)

  await s.standbys[0]!.promote()
  await s.recheck()
  t.match(s.reads.states(), [{ usable: true, lagMs: 0 }], 'not in recovery: no lag')

  t.same(s.changes.map((c) => [c.label, c.usable]), [['read1', true], ['read1', false], ['read1', true], ['read1', false], ['read1', true]], 'the first state and every change reported, once each')
  t.same(new Map(s.reads.servedCounts()), new Map([['primary', 3], ['read1', 3]]), 'each query counted where it ran')
})

t.test('the lag is read at most once per interval, however many reads', async (t) => {
  const s = await setUp(t)
  let probes = 0
  const probe = s.targets[0]!.probe
  const query = probe.query.bind(probe) as (...args: unknown[]) => Promise<unknown>
  ;(probe as unknown as { query: typeof query }).query = async (...args: unknown[]) => { probes++; return await query(...args) }
  await s.reads.check()
  await Promise.all(Array.from({ length: 50 }, () => s.served()))
  t.equal(probes, 1, 'fifty reads, no new check')
  s.tick(CHECK_MS - 1)
  await s.served()
  t.equal(probes, 1)
  s.tick(1)
  const [a, b] = [s.reads.check(), s.reads.check()]
  await Promise.all([a, b])
  t.equal(probes, 2, 'a check already running is joined, not repeated')
})

t.test('several replicas take turns; none usable, the primary', async (t) => {
  const s = await setUp(t, 3)
  await s.standbys[2]!.lag(MAX_LAG_MS * 2)
  await s.reads.check()
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) seen.add(await s.served())
  t.same([...seen].sort(), [s.replicaNames[0], s.replicaNames[1]].sort(), 'both current replicas, never the lagging one')
  for (const standby of s.standbys) await standby.lag(MAX_LAG_MS * 2)
  await s.recheck()
  t.equal(await s.served(), s.primaryName)
})

t.test('an unreachable replica is skipped, its failed query answered by the primary, and it is tried again later', async (t) => {
  const s = await setUp(t, 1, { proxied: true })
  const proxy = s.proxies[0]!
  await proxy.down()
  await s.reads.check()
  t.match(s.reads.states(), [{ usable: false, reason: /^unreachable: / }], 'down from the start: skipped, nothing thrown')
  t.equal(await s.served(), s.primaryName)

  await proxy.up()
  await s.recheck()
  t.equal(await s.served(), s.replicaNames[0], 'back: used again at the next check')

  // it goes away between two checks: the query that finds it gone is asked of the primary
  await proxy.down()
  t.equal(await s.served(), s.primaryName, 'the read still answered')
  t.match(s.reads.states(), [{ usable: false, reason: /^unreachable: / }], 'and the replica skipped at once')
  const client = await s.reads.connect()
  const { rows: [row] } = await client.query<{ db: string }>('SELECT current_database() AS db')
  client.release()
  t.equal(row!.db, s.primaryName, 'a connection too comes from the primary')

  await proxy.up()
  await s.recheck()
  const replicaClient = await s.reads.connect()
  t.equal((await replicaClient.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db, s.replicaNames[0])
  // destroyed, not kept idle: the next connect must open a connection, and find the replica gone
  replicaClient.release(true)
  // a replica gone while a connect is asked of it
  await proxy.down()
  const fallback = await s.reads.connect()
  t.equal((await fallback.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db, s.primaryName)
  fallback.release()
})

t.test('a replica whose pool stays full sheds the read to the primary, is skipped, and is used again once it has room', async (t) => {
  const s = await setUp(t)
  await s.reads.check()
  t.equal(await s.served(), s.replicaNames[0], 'usable at first')
  // every connection of the replica's pool (max 2) taken and kept past its wait (1 s)
  const held = [await s.targets[0]!.pool.connect(), await s.targets[0]!.pool.connect()]
  const started = Date.now()
  t.equal(await s.served(), s.primaryName, 'the read waits out the pool\'s bound, then the primary answers it')
  t.ok(Date.now() - started < 4000, 'after about the wait, not never')
  t.match(s.reads.states(), [{ usable: false, reason: /^unreachable: / }], 'the full replica is skipped')
  t.equal(await s.served(), s.primaryName, 'and the next read goes to the primary at once')
  for (const client of held) client.release()
  await s.recheck()
  t.equal(await s.served(), s.replicaNames[0], 'room again: used again at the next check')
})

t.test('a recovery conflict is retried on the primary; the query\'s own error is the caller\'s', async (t) => {
  const s = await setUp(t)
  const on = async (db: string, text: string) => {
    const url = new URL((s.targets[0]!.pool as unknown as { options: { connectionString: string } }).options.connectionString)
    url.pathname = `/${db}`
    const client = new pg.Client({ connectionString: url.toString() })
    await client.connect()
    try { await client.query(text) } finally { await client.end() }
  }
  // the replica cancels it as replay would; the primary answers it
  await on(s.replicaNames[0]!, `CREATE FUNCTION km_read() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'canceling statement due to conflict with recovery' USING ERRCODE = '40001'; END $$`)
  await on(s.primaryName, 'CREATE FUNCTION km_read() RETURNS text LANGUAGE sql AS $$ SELECT current_database()::text $$')
  await s.reads.check()
  const { rows: [row] } = await s.reads.query<{ db: string }>('SELECT km_read() AS db')
  t.equal(row!.db, s.primaryName, 'answered by the primary')
  t.match(s.reads.states(), [{ usable: true }], 'the replica stays in use')

  await t.rejects(s.reads.query('SELECT no_such_column FROM km_fake_standby'), { code: '42703' }, 'bad SQL: the caller hears it')
  t.match(s.reads.states(), [{ usable: true }])
  t.equal(await s.served(), s.replicaNames[0])
})
