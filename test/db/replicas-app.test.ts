// DATABASE_READ_URL through the app: the statistics are read from the replica (a second
// database holding other usage, so the answer tells which served), the read call's audit row
// and a key holder's client restrictions from the primary; a lagging or unreachable replica
// hands its reads to the primary, and the metrics say so. test/db/replicas.ts: the stand-ins.
import t from 'tap'
import type { KeymeterApp } from '../../src/app.js'
import { buildTestApp, GATEWAY_TOKEN, logCapture, signIn, waitUntil } from '../helper.js'
import { fakeStandby, tcpProxy, totalRequests } from './replicas.js'

async function seed (app: KeymeterApp, requests: number, keyBody: object = {}) {
  const admin = await signIn(app, 'admin')
  const res = await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'seeded', ...keyBody } })
  const key = res.json() as { id: string, key: string }
  const events = Array.from({ length: requests }, (_, i) => ({
    type: 'complete', request_id: `r-${i}`, api_key_id: key.id, model: 'm', input_tokens: 10, output_tokens: 5,
    status: 'completed', status_code: 200, created_at: new Date(Date.now() - 60_000).toISOString()
  }))
  const sent = await app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { events } })
  if (sent.statusCode !== 200) throw new Error(sent.body)
  return { admin, key }
}

t.test('the statistics from the replica, every write and access decision on the primary', async (t) => {
  const replica = await buildTestApp(t)
  await seed(replica.app, 2)
  const standby = await fakeStandby(replica.url)
  const proxy = await tcpProxy(t, replica.url)
  const log = logCapture()
  const { app } = await buildTestApp(t, { env: { DATABASE_READ_URL: proxy.url, DATABASE_READ_CHECK_MS: '100', DATABASE_READ_MAX_LAG_MS: '5000' }, logStream: log.stream })
  const { admin, key } = await seed(app, 5, { allowed_ips: ['10.0.0.0/8'] })
  // the lag is read when a read (or a scrape) finds the last check older than DATABASE_READ_CHECK_MS
  const usable = (want: boolean) => waitUntil(`read1 usable: ${want}`, async () => { app.statsPg.checkIfDue(); return app.statsPg.states()[0]!.usable }, (u) => u === want)

  await usable(true)
  t.equal(await totalRequests(app, admin), 2, 'the replica\'s usage answers')
  await app.pipeline.readAuditsWritten()
  const audited = async (db: KeymeterApp) => db.prisma.auditLog.count({ where: { path: '/api/admin/usage/stats' } })
  t.equal(await audited(app), 1, 'the read call\'s audit row is on the primary')
  t.equal(await audited(replica.app), 0, 'never on the replica')

  // the key exists on the primary only: its allow-list can only be read there
  const keyStats = await app.inject({ method: 'POST', url: '/api/key-stats/user-stats', payload: { api_key: key.key }, remoteAddress: '192.0.2.1' })
  t.equal(keyStats.statusCode, 403, 'a key holder\'s client restrictions come from the primary')
  t.equal(keyStats.json().error.type, 'ip_not_allowed')

  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /keymeter_db_reads_total\{database="read1"\} [1-9]/, 'reads counted by the database that served them')
  t.match(metrics, /keymeter_db_reads_total\{database="primary"\} \d/)
  t.match(metrics, /keymeter_db_replica_usable\{database="read1"\} 1/)
  t.match(metrics, /keymeter_db_replica_lag_seconds\{database="read1"\} \d/)
  t.match(metrics, /keymeter_db_pool_max\{pool="read1"\} 4/, 'the replica\'s pool beside the others')

  await standby.lag(60_000)
  await usable(false)
  t.equal(await totalRequests(app, admin), 5, 'too far behind: the primary answers')
  t.match((await app.inject({ method: 'GET', url: '/metrics' })).body, /keymeter_db_replica_usable\{database="read1"\} 0/)
  await standby.lag(0)
  await usable(true)
  t.equal(await totalRequests(app, admin), 2)

  await proxy.down()
  t.equal(await totalRequests(app, admin), 5, 'unreachable: the primary answers, no error')
  t.equal(app.statsPg.states()[0]!.usable, false)
  await proxy.up()
  await usable(true)
  t.equal(await totalRequests(app, admin), 2, 'back once it answers again')

  const lines = log.lines.map((line) => JSON.parse(line) as { msg: string, replica?: string, reason?: string })
  t.ok(lines.some((l) => l.msg === 'read replica in use' && l.replica === 'read1'), 'logged when in use')
  t.ok(lines.some((l) => l.msg === 'read replica skipped: the primary serves its reads' && /^lag \d+ ms over 5000 ms$/.test(l.reason ?? '')), 'and when skipped, with why')
  t.notOk(log.text().includes(proxy.url), 'the URL never logged')
})

t.test('without DATABASE_READ_URL the primary serves everything, and no replica metric is empty of sense', async (t) => {
  const { app } = await buildTestApp(t)
  t.same(app.statsPg.states(), [])
  const { admin } = await seed(app, 3)
  t.equal(await totalRequests(app, admin), 3)
  t.same(new Map(app.statsPg.servedCounts()).get('read1'), undefined)
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.notMatch(metrics, /keymeter_db_replica_usable\{/)
  t.match(metrics, /keymeter_db_reads_total\{database="primary"\} [1-9]/)
})
