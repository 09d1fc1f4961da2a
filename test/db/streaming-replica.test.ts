// DATABASE_READ_URL against a real hot standby streaming from the primary (test/streaming-replica.ts):
// the statistics follow the primary's writes once replayed, a standby whose replay is paused
// falls behind past DATABASE_READ_MAX_LAG_MS and its reads go to the primary, and it is used
// again once it has caught up; a read the standby cancels over a recovery conflict is answered
// by the primary (a whole transaction run again there); a standby killed in the middle of a run of statistics calls costs
// none of them (each answered from the primary), and is used again once it is back.
// replicas-app.test.ts covers the same routing with stand-ins.
import pg from 'pg'
import t, { type Test } from 'tap'
import type { KeymeterApp } from '../../src/app.js'
import { buildTestApp, GATEWAY_TOKEN, signIn, waitUntil } from '../helper.js'
import { streamingPair } from '../streaming-replica.js'
import { totalRequests } from './replicas.js'

const MAX_LAG_MS = 1500

async function report (app: KeymeterApp, keyId: string, from: number, count: number) {
  const events = Array.from({ length: count }, (_, i) => ({
    type: 'complete', request_id: `s-${from + i}`, api_key_id: keyId, model: 'm', input_tokens: 10, output_tokens: 5,
    status: 'completed', status_code: 200, created_at: new Date(Date.now() - 60_000).toISOString()
  }))
  const res = await app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { events } })
  if (res.statusCode !== 200) throw new Error(res.body)
}

/** A pair, an app reading from its standby, an admin and a key with `count` requests, once the standby serves them. */
async function servedByStandby (t: Test, maxLagMs: number, count: number) {
  const pair = await streamingPair(t)
  const { app } = await buildTestApp(t, { url: pair.primaryUrl, env: { DATABASE_READ_URL: pair.replicaUrl, DATABASE_READ_CHECK_MS: '100', DATABASE_READ_MAX_LAG_MS: String(maxLagMs) } })
  const served = () => new Map(app.statsPg.servedCounts())
  const state = async () => { app.statsPg.checkIfDue(); await app.statsPg.check(); return app.statsPg.states()[0]! }
  const admin = await signIn(app, 'admin')
  const created = await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'streamed' } })
  const keyId = created.json().id as string
  await report(app, keyId, 0, count)
  await pair.caughtUp()
  await waitUntil('the standby usable', state, (s) => s.usable)
  const before = served()
  t.equal(await totalRequests(app, admin), count, 'the standby has replayed the primary\'s usage')
  t.ok(served().get('read1')! > before.get('read1')!, 'and served the read')
  t.equal(served().get('primary'), before.get('primary'), 'the primary did not')
  return { pair, app, admin, keyId, served, state }
}

t.test('a streaming standby serves the statistics while it keeps up, the primary while it lags', async (t) => {
  const { pair, app, admin, keyId, served, state } = await servedByStandby(t, MAX_LAG_MS, 4)

  await pair.pauseReplay()
  await report(app, keyId, 4, 3)
  // every read call writes its audit row on the primary, which the paused standby does not replay
  const lagging = await waitUntil('the paused standby past the lag bound', state, (s) => !s.usable, { timeoutMs: 20_000 })
  t.match(lagging.reason, /^lag \d+ ms over 1500 ms$/, 'skipped for its lag')
  const whileLagging = served()
  t.equal(await totalRequests(app, admin), 7, 'the primary answers, with the usage the standby has not replayed')
  t.ok(served().get('primary')! > whileLagging.get('primary')!, 'the primary served it')
  t.equal(served().get('read1'), whileLagging.get('read1'), 'nothing read from the lagging standby')

  await pair.resumeReplay()
  await pair.caughtUp()
  await report(app, keyId, 7, 1)
  await pair.caughtUp()
  await waitUntil('the standby usable again', state, (s) => s.usable, { timeoutMs: 20_000 })
  const after = served()
  t.equal(await totalRequests(app, admin), 8, 'caught up: it answers again, with everything')
  t.ok(served().get('read1')! > after.get('read1')!, 'the standby served it')
})

t.test('a standby killed during a run of statistics calls: every call answered, by the primary, and the standby used again once back', async (t) => {
  const { pair, app, admin, keyId, served, state } = await servedByStandby(t, 5000, 5)

  // statistics calls one after another while the standby dies under them
  const statuses: number[] = []
  let running = true
  const calls = (async () => {
    while (running) {
      const res = await app.inject({ method: 'GET', url: '/api/admin/usage/stats', headers: admin.headers })
      statuses.push(res.statusCode)
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 200))
  await pair.crash()
  const down = await waitUntil('the dead standby skipped', state, (s) => !s.usable, { timeoutMs: 20_000 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  running = false
  await calls
  t.ok(statuses.length > 3, `calls made across the crash (${statuses.length})`)
  t.same([...new Set(statuses)], [200], 'every call answered 200')
  t.match(down.reason, /./, 'the standby is reported unusable, with a reason')
  const whileDown = served()
  t.equal(await totalRequests(app, admin), 5, 'the primary answers meanwhile')
  t.ok(served().get('primary')! > whileDown.get('primary')!, 'from the primary')

  await pair.restart()
  await report(app, keyId, 5, 2)
  await pair.caughtUp()
  await waitUntil('the standby usable again', state, (s) => s.usable, { timeoutMs: 30_000 })
  const back = served()
  t.equal(await totalRequests(app, admin), 7, 'back and caught up: it answers, with the writes made while it was down')
  t.ok(served().get('read1')! > back.get('read1')!, 'the standby served it')
})

t.test('a recovery conflict on a real standby: the read it cancels is answered by the primary, and the standby stays in use', async (t) => {
  const pair = await streamingPair(t, ['-c', 'max_standby_streaming_delay=0'])
  const { app } = await buildTestApp(t, { url: pair.primaryUrl, env: { DATABASE_READ_URL: pair.replicaUrl, DATABASE_READ_CHECK_MS: '100', DATABASE_READ_MAX_LAG_MS: '5000' } })
  const state = async () => { app.statsPg.checkIfDue(); await app.statsPg.check(); return app.statsPg.states()[0]! }
  const admin = await signIn(app, 'admin')
  const created = await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'conflicted' } })
  const keyId = created.json().id as string
  await report(app, keyId, 0, 3)
  await pair.caughtUp()
  await waitUntil('the standby usable', state, (s) => s.usable)

  // A deadlock with replay, made on purpose. The primary holds api_keys exclusively in an open
  // transaction; once replayed, the standby's startup process holds it too. The whole-scope
  // ttl-analysis by key locks cache_interval_hourly, then waits for api_keys (its subquery).
  const holder = new pg.Client({ connectionString: pair.primaryUrl })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE')
  const other = new pg.Client({ connectionString: pair.primaryUrl })
  await other.connect()
  t.teardown(() => other.end())
  await other.query('CREATE TABLE flush_marker (id int)') // a commit: the lock's WAL record is flushed and streamed with it
  await pair.caughtUp()
  const servedBefore = new Map(app.statsPg.servedCounts())
  const answer = app.inject({ method: 'GET', url: '/api/admin/usage/cache-affinity/ttl-analysis?group_by=api_key&user_id=00000000-0000-4000-8000-000000000000', headers: admin.headers })
  await waitUntil('the read waiting on the standby', () => pair.onStandby<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND backend_type = 'client backend'"), (rows) => rows[0]!.n > 0, { timeoutMs: 10_000 })
  // the primary locks the table the standby's reader holds: replaying it, the startup process cancels the reader
  await other.query('BEGIN')
  await other.query('LOCK TABLE cache_interval_hourly IN ACCESS EXCLUSIVE MODE')
  await other.query('COMMIT')
  // the read, re-asked of the primary, waits there for api_keys until the holder lets go
  await waitUntil('the read re-asked of the primary, waiting there', async () => (await other.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%cache_interval_hourly%' AND pid <> pg_backend_pid()")).rows[0]!.n,
  (n) => n > 0, { timeoutMs: 4000 })
  await holder.query('COMMIT')
  const res = await answer
  t.equal(res.statusCode, 200, 'the read cancelled on the standby is answered')
  const servedAfter = new Map(app.statsPg.servedCounts())
  t.ok(servedAfter.get('primary')! > servedBefore.get('primary')!, 'by the primary')
  // the cancelled session reports it in the cumulative statistics once idle (within ~10 s)
  const conflicts = await waitUntil('the conflict in the standby\'s statistics', () => pair.onStandby<{ n: number }>(
    'SELECT (confl_lock + confl_deadlock + confl_snapshot + confl_bufferpin)::int AS n FROM pg_stat_database_conflicts WHERE datname = current_database()'),
  (rows) => rows[0]!.n > 0, { timeoutMs: 20_000, intervalMs: 500 }).catch(() => [{ n: 0 }])
  t.ok(conflicts[0]!.n > 0, 'the standby did cancel a query over a recovery conflict')
  // a write, so the lag (the age of the last replayed commit) is read on a primary in use
  await report(app, keyId, 3, 1)
  await pair.caughtUp()
  t.match(await state(), { usable: true }, 'a conflict does not take the standby out of use')
})
