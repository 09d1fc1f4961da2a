// Delivering alerts to a real listening HTTP server: the signed payload, retries with
// backoff up to the attempt limit, the admin's log and replay, two runs at once sending
// each delivery once, and the in-process worker with its metrics.
import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { backoffMs, deliverDue, signPayload, startDeliveryWorker, type DeliverySettings } from '../../../src/modules/alerts/delivery.js'
import { webhookSecretKey } from '../../../src/modules/alerts/routes.js'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'

const SECRET = 'whsec-test-0123456789abcdef'

interface Received { headers: IncomingMessage['headers'], body: string }

/** A webhook receiver: answers each POST with the next status of `statuses` (then 200), records what it got. */
async function receiver (t: Test, statuses: number[] = []) {
  const received: Received[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString() })
    req.on('end', () => {
      received.push({ headers: req.headers, body })
      res.statusCode = statuses.shift() ?? 200
      res.end(res.statusCode === 200 ? 'ok' : 'receiver down')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => { resolve() })))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received }
}

/** A key whose next request (6 of its 10 thousandths of a USD) fires the 50 % alert. */
async function oneAlert (g: Gateway, url: string) {
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey({ initial_balance_usd: 0.01 })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', subject_id: key.id, limit_kind: 'balance', thresholds: [50] })
  const endpoint = await g.adminCall('POST', '/api/admin/webhooks', { name: 'ops', url, secret: SECRET })
  await g.send([{ type: 'complete', request_id: `d-${key.id as string}`, api_key_id: key.id, model: 'm', status: 'completed', status_code: 200, input_tokens: 6000, output_tokens: 0 }])
  return { key, endpoint }
}

const settingsOf = (g: Gateway, more: Partial<DeliverySettings> = {}): DeliverySettings =>
  ({ secretKey: webhookSecretKey(g.app.config.ENCRYPTION_KEY), maxAttempts: 3, timeoutMs: 2000, backoffMs: 30_000, batchSize: 10, ...more })

t.test('a delivery is the JSON payload signed t=<unix>,v1=HMAC-SHA256(secret, "t.body"), marked delivered', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  const hook = await receiver(t)
  const { key, endpoint } = await oneAlert(g, hook.url)
  const now = new Date('2030-01-01T10:00:00.000Z')
  await g.adminCall('PUT', `/api/admin/webhooks/${endpoint.id as string}`, { is_active: false })
  t.same(await deliverDue(g.app.pools.admin, settingsOf(g), now), [], 'an inactive endpoint\'s deliveries wait')
  await g.adminCall('PUT', `/api/admin/webhooks/${endpoint.id as string}`, { is_active: true })
  t.same(await deliverDue(g.app.pools.admin, settingsOf(g), now), ['delivered'])

  t.equal(hook.received.length, 1)
  const { headers, body } = hook.received[0]!
  t.equal(headers['content-type'], 'application/json')
  const signature = headers['x-keymeter-signature'] as string
  t.match(signature, /^t=1893492000,v1=[0-9a-f]{64}$/, 'the send\'s Unix time: 2030-01-01T10:00:00Z (runs are given their clock; the alert was queued earlier, at the wall clock)')
  const expected = createHmac('sha256', SECRET).update(`1893492000.${body}`).digest('hex')
  t.equal(signature, `t=1893492000,v1=${expected}`, 'a receiver recomputes it from the secret and the raw body')
  const payload = JSON.parse(body) as Json
  t.match(payload, {
    type: 'alert.threshold_reached',
    subject: { kind: 'api_key', id: key.id },
    limit: { kind: 'balance', id: key.id, amount_usd: 0.01, window_start: null, window_end: null },
    threshold_percent: 50,
    used_usd: 0.006,
    used_percent: 60
  })
  t.notOk(body.includes(SECRET), 'the secret never travels')

  const log = await g.adminCall('GET', '/api/admin/alerts/deliveries')
  t.match(log, { total: 1, items: [{ status: 'delivered', attempts: 1, response_code: 200, last_error: null, delivered_at: '2030-01-01T10:00:00.000Z' }] })
  t.same(await deliverDue(g.app.pools.admin, settingsOf(g), new Date('2030-01-01T11:00:00Z')), [], 'nothing left to send')
  const alerts = await g.adminCall('GET', '/api/admin/alerts')
  t.same(alerts.items, [payload], 'the admin reads the same payload')
})

t.test('a failing endpoint is retried after 30 s, then 60 s, and given up after the last attempt; a replay sends it again', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  const hook = await receiver(t, [500, 503, 502])
  await oneAlert(g, hook.url)
  const pool = g.app.pools.admin
  const at = (iso: string) => new Date(iso)

  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-01T10:00:00Z')), ['retry'])
  let [row] = (await g.adminCall('GET', '/api/admin/alerts/deliveries?status=pending')).items
  t.match(row, { attempts: 1, response_code: 500, last_error: 'HTTP 500: receiver down', next_attempt_at: '2030-01-01T10:00:30.000Z' })
  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-01T10:00:29Z')), [], 'not due before its backoff')
  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-01T10:00:30Z')), ['retry'])
  ;[row] = (await g.adminCall('GET', '/api/admin/alerts/deliveries')).items
  t.match(row, { attempts: 2, response_code: 503, next_attempt_at: '2030-01-01T10:01:30.000Z' }, 'the delay doubled')
  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-01T10:01:30Z')), ['failed'], 'the third of three attempts')
  ;[row] = (await g.adminCall('GET', '/api/admin/alerts/deliveries?status=failed')).items
  t.match(row, { status: 'failed', attempts: 3, response_code: 502 })
  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-02T00:00:00Z')), [], 'a failed delivery waits for an admin')

  const replay = await g.app.inject({ method: 'POST', url: `/api/admin/alerts/deliveries/${row.id as string}/replay`, headers: g.admin.headers })
  t.equal(replay.statusCode, 200)
  t.match(replay.json(), { status: 'pending', attempts: 0 })
  const again = await g.app.inject({ method: 'POST', url: `/api/admin/alerts/deliveries/${row.id as string}/replay`, headers: g.admin.headers })
  t.equal(again.statusCode, 409, 'a pending delivery is not replayed')
  t.match(again.json(), { error: { message: /already pending/ } })
  t.same(await deliverDue(pool, settingsOf(g), at('2030-01-02T00:00:01Z')), ['delivered'], 'the replay is due at once (the database\'s now)')
  t.equal(hook.received.length, 4)
  t.equal(new Set(hook.received.map((r) => r.body)).size, 1, 'every attempt and the replay carry the same payload')
  const audit = await g.app.prisma.auditLog.findMany({ where: { action: 'alert_deliveries.replay' }, select: { statusCode: true } })
  t.same(audit.map((a) => a.statusCode).sort(), [200, 409], 'the replay and its refusal audited')
})

t.test('an unreachable endpoint is an error kept in the log; two runs at once send each delivery once', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  await oneAlert(g, 'http://127.0.0.1:9/closed')
  t.same(await deliverDue(g.app.pools.admin, settingsOf(g), new Date('2030-01-01T10:00:00Z')), ['retry'])
  const [row] = (await g.adminCall('GET', '/api/admin/alerts/deliveries')).items
  t.match(row, { response_code: null, last_error: /fetch failed/ })

  const hook = await receiver(t)
  const endpoint = (await g.adminCall('GET', '/api/admin/webhooks')).endpoints[0]
  await g.adminCall('PUT', `/api/admin/webhooks/${endpoint.id as string}`, { url: hook.url })
  const runs = await Promise.all([1, 2, 3].map(() => deliverDue(g.app.pools.admin, settingsOf(g), new Date('2030-01-01T10:05:00Z'))))
  t.same(runs.flat(), ['delivered'], 'one run claimed it; the others found it locked or leased')
  t.equal(hook.received.length, 1)
})

t.test('the in-process worker sends due deliveries, counts them, and stops on close', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '100' })
  const hook = await receiver(t)
  await oneAlert(g, hook.url)
  for (let i = 0; i < 100 && hook.received.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(hook.received.length, 1, 'sent by the worker')
  for (let i = 0; i < 100 && (await g.app.prisma.alertDelivery.count({ where: { status: 'delivered' } })) === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const metrics = (await g.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /keymeter_alert_deliveries_total\{outcome="delivered"\} 1/)
  t.match(metrics, /keymeter_alert_deliveries_pending 0/)
})

t.test('docs/alerts.md\'s worked example', async (t) => {
  const body = '{"id":"0b9f2a4e-7d51-4c1b-9a55-3f0e6d2c8a11","type":"alert.threshold_reached","created_at":"2026-12-02T14:03:11.482Z","subject":{"kind":"api_key","id":"5c6e1d2a-8f3b-4a7e-b9c0-1d2e3f4a5b6c"},"limit":{"kind":"budget","id":"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d","amount_usd":50,"window_start":"2026-12-01T00:00:00.000Z","window_end":"2027-01-01T00:00:00.000Z"},"threshold_percent":80,"used_usd":40.125,"used_percent":80.25}'
  t.equal(signPayload('whsec-example-0123456789', body, 1796220191), 't=1796220191,v1=0b189b5b9e34b81b199de743c44a196dff63255c9ce23de2e99972bef491b74d')
  const docs = await readFile(new URL('../../../docs/alerts.md', import.meta.url), 'utf8')
  t.ok(docs.includes(body) && docs.includes('t=1796220191,v1=0b189b5b9e34b81b199de743c44a196dff63255c9ce23de2e99972bef491b74d'), 'the page shows this body and this header')
  t.equal(backoffMs(30_000, 1), 30_000)
  t.equal(backoffMs(30_000, 3), 120_000)
  t.equal(backoffMs(30_000, 30), 6 * 3_600_000, 'at most 6 hours')
})

t.test('a failed run (the database down) is logged, the next tick tries again, and stop() waits for the run in progress', async (t) => {
  let calls = 0
  const errors: string[] = []
  const db = { query: async () => { calls++; await new Promise((resolve) => setTimeout(resolve, 30)); throw new Error('connection refused') } }
  const log = { error: (_obj: unknown, message: string) => { errors.push(message) } } as unknown as Parameters<typeof startDeliveryWorker>[3]
  const worker = startDeliveryWorker(db as never, { secretKey: Buffer.alloc(32), maxAttempts: 1, timeoutMs: 100, backoffMs: 100, batchSize: 1 }, 10, log, () => { t.fail('no outcome') })
  while (errors.length < 2) await new Promise((resolve) => setTimeout(resolve, 5))
  await worker.stop()
  const after = calls
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(calls, after, 'no run after stop')
  t.ok(calls >= 2 && calls <= errors.length + 1, 'one run at a time: each tick during a run is skipped')
  t.same([...new Set(errors)], ['alert delivery run failed'])
})

t.test('a secret that no longer decrypts (ENCRYPTION_KEY changed) is an attempt failed with its reason, nothing sent', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  const hook = await receiver(t)
  const { endpoint } = await oneAlert(g, hook.url)
  await g.app.prisma.webhookEndpoint.update({ where: { id: endpoint.id }, data: { secretEncrypted: 'v0.garbage' } })
  t.same(await deliverDue(g.app.pools.admin, settingsOf(g), new Date('2030-01-01T10:00:00Z')), ['retry'])
  t.match((await g.adminCall('GET', '/api/admin/alerts/deliveries')).items, [{ response_code: null, last_error: 'unknown ciphertext format' }])
  t.equal(hook.received.length, 0)
})
