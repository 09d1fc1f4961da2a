// DATABASE_READ_URL against a real hot standby streaming from the primary (test/streaming-replica.ts):
// the statistics follow the primary's writes once replayed, a standby whose replay is paused
// falls behind past DATABASE_READ_MAX_LAG_MS and its reads go to the primary, and it is used
// again once it has caught up. replicas-app.test.ts covers the same routing with stand-ins.
import t from 'tap'
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

t.test('a streaming standby serves the statistics while it keeps up, the primary while it lags', async (t) => {
  const pair = await streamingPair(t)
  const { app } = await buildTestApp(t, { url: pair.primaryUrl, env: { DATABASE_READ_URL: pair.replicaUrl, DATABASE_READ_CHECK_MS: '100', DATABASE_READ_MAX_LAG_MS: String(MAX_LAG_MS) } })
  const served = () => new Map(app.statsPg.servedCounts())
  const state = async () => { app.statsPg.checkIfDue(); await app.statsPg.check(); return app.statsPg.states()[0]! }

  const admin = await signIn(app, 'admin')
  const created = await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'streamed' } })
  const keyId = created.json().id as string
  await report(app, keyId, 0, 4)
  await pair.caughtUp()
  await waitUntil('the standby usable', state, (s) => s.usable)
  const before = served()
  t.equal(await totalRequests(app, admin), 4, 'the standby has replayed the primary\'s usage')
  t.ok(served().get('read1')! > before.get('read1')!, 'and served the read')
  t.equal(served().get('primary'), before.get('primary'), 'the primary did not')

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
