// The admin's alert routes: rules and webhook endpoints (the secret write-only and stored
// encrypted), their refusals, and the paging of the alert and delivery logs.
import t from 'tap'
import { decrypt } from '../../../src/lib/crypto.js'
import { webhookSecretKey } from '../../../src/modules/alerts/routes.js'
import { buildTestApp, signIn } from '../../helper.js'

const UNKNOWN = '00000000-0000-4000-8000-000000000000'

t.test('alert rules: create, list, change, delete, and each refusal', async (t) => {
  const { app } = await buildTestApp(t, { env: { ALERT_DELIVERY_INTERVAL_MS: '0' } })
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, headers = admin.headers) =>
    app.inject({ method, url, headers, ...(payload !== undefined && { payload }) })

  const created = await call('POST', '/api/admin/alerts/rules', { subject_kind: 'user', subject_id: user.id, limit_kind: 'quota', thresholds: [100, 50, 80] })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { subject_kind: 'user', subject_id: user.id, limit_kind: 'quota', thresholds: [50, 80, 100], is_active: true }, 'thresholds kept ascending')
  const every = await call('POST', '/api/admin/alerts/rules', { subject_kind: 'provider', limit_kind: 'quota', thresholds: [90] })
  t.match(every.json(), { subject_id: null }, 'no subject_id: every provider')

  const refusals: Array<[object, number, RegExp]> = [
    [{ subject_kind: 'provider', limit_kind: 'balance', thresholds: [50] }, 400, /limit_kind must be one of quota for a provider/],
    [{ subject_kind: 'api_key', subject_id: UNKNOWN, limit_kind: 'balance', thresholds: [50] }, 400, /subject_id names no api_key/],
    [{ subject_kind: 'user', limit_kind: 'quota', thresholds: [0] }, 400, /thresholds/],
    [{ subject_kind: 'user', limit_kind: 'quota', thresholds: [50, 50] }, 400, /thresholds/],
    [{ subject_kind: 'user', limit_kind: 'quota', thresholds: [] }, 400, /thresholds/]
  ]
  for (const [body, status, message] of refusals) {
    const res = await call('POST', '/api/admin/alerts/rules', body)
    t.equal(res.statusCode, status, JSON.stringify(body))
    t.match(res.json().error.message, message)
  }
  t.equal((await call('POST', '/api/admin/alerts/rules', { subject_kind: 'user', limit_kind: 'quota', thresholds: [50] }, user.headers)).statusCode, 403, 'admins only')

  const id = created.json().id as string
  const changed = await call('PUT', `/api/admin/alerts/rules/${id}`, { thresholds: [90, 75], is_active: false })
  t.match(changed.json(), { thresholds: [75, 90], is_active: false })
  t.equal((await call('PUT', `/api/admin/alerts/rules/${UNKNOWN}`, { is_active: true })).statusCode, 404)
  t.equal((await call('PUT', `/api/admin/alerts/rules/${id}`, {})).statusCode, 400, 'an empty change')
  t.same((await call('GET', '/api/admin/alerts/rules')).json().rules.map((r: { id: string }) => r.id), [id, every.json().id])
  t.equal((await call('DELETE', `/api/admin/alerts/rules/${id}`)).statusCode, 200)
  t.equal((await call('DELETE', `/api/admin/alerts/rules/${id}`)).statusCode, 404)

  await app.prisma.alertRule.createMany({ data: Array.from({ length: 999 }, () => ({ subjectKind: 'user' as const, limitKind: 'quota' as const, thresholds: [50] })) })
  const full = await call('POST', '/api/admin/alerts/rules', { subject_kind: 'user', limit_kind: 'quota', thresholds: [50] })
  t.equal(full.statusCode, 409, 'at most 1000 rules')
  t.match(full.json().error, { type: 'limit_reached', message: 'at most 1000 alert rules' })

  const audited = await app.prisma.auditLog.findMany({ where: { action: { startsWith: 'alert_rules.' } }, select: { action: true, statusCode: true } })
  t.ok(audited.some((a) => a.action === 'alert_rules.create' && a.statusCode === 400), 'refusals audited')
  t.ok(audited.some((a) => a.action === 'alert_rules.delete' && a.statusCode === 404))
})

t.test('webhook endpoints: the secret is write-only, stored encrypted, replaceable; bad URLs refused', async (t) => {
  const { app, config } = await buildTestApp(t, { env: { ALERT_DELIVERY_INTERVAL_MS: '0' } })
  const admin = await signIn(app, 'admin')
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url, headers: admin.headers, ...(payload !== undefined && { payload }) })
  const secret = 'whsec-0123456789abcdefXYZ'

  const created = await call('POST', '/api/admin/webhooks', { name: 'ops', url: 'https://hooks.example.com/keymeter', secret })
  t.equal(created.statusCode, 201)
  t.same(Object.keys(created.json()).sort(), ['created_at', 'id', 'is_active', 'name', 'secret_display', 'updated_at', 'url'])
  t.equal(created.json().secret_display, 'whse…fXYZ')
  t.notOk(created.body.includes(secret))
  const id = created.json().id as string
  const row = await app.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } })
  t.not(row.secretEncrypted, secret)
  t.equal(decrypt(webhookSecretKey(config.ENCRYPTION_KEY), row.secretEncrypted), secret, 'AES-256-GCM under its own derived key')
  t.notOk((await call('GET', `/api/admin/webhooks/${id}`)).body.includes(secret))
  t.notOk((await call('GET', '/api/admin/webhooks')).body.includes(secret))
  const audits = await app.prisma.auditLog.findMany({ where: { action: { startsWith: 'webhooks.' } } })
  t.notOk(JSON.stringify(audits).includes(secret), 'nor in the audit rows')

  const replaced = await call('PUT', `/api/admin/webhooks/${id}`, { name: 'ops-2', url: 'http://127.0.0.1:8080/x', secret: 'another-secret-0123456789', is_active: false })
  t.match(replaced.json(), { name: 'ops-2', url: 'http://127.0.0.1:8080/x', secret_display: 'anot…6789', is_active: false })
  const after = await app.prisma.webhookEndpoint.findUniqueOrThrow({ where: { id } })
  t.equal(decrypt(webhookSecretKey(config.ENCRYPTION_KEY), after.secretEncrypted), 'another-secret-0123456789')

  for (const [body, message] of [
    [{ name: 'x', url: 'ftp://example.com/x', secret }, /url/],
    [{ name: 'x', url: 'https://user:pw@example.com/x', secret }, /must not carry credentials/],
    [{ name: 'x', url: 'http://exa mple.com', secret }, /is not a URL/],
    [{ name: 'x', url: 'https://example.com/x', secret: 'short' }, /secret/]
  ] as Array<[object, RegExp]>) {
    const res = await call('POST', '/api/admin/webhooks', body)
    t.equal(res.statusCode, 400, JSON.stringify(body))
    t.match(res.json().error.message, message)
  }
  t.equal((await call('PUT', `/api/admin/webhooks/${id}`, { url: 'https://a:b@example.com' })).statusCode, 400)
  t.equal((await call('GET', `/api/admin/webhooks/${UNKNOWN}`)).statusCode, 404)
  t.equal((await call('PUT', `/api/admin/webhooks/${UNKNOWN}`, { name: 'y' })).statusCode, 404)
  t.equal((await call('DELETE', `/api/admin/webhooks/${id}`)).statusCode, 200)
  t.equal((await call('DELETE', `/api/admin/webhooks/${id}`)).statusCode, 404)
  t.equal((await call('POST', `/api/admin/alerts/deliveries/${UNKNOWN}/replay`)).statusCode, 404)

  await app.prisma.webhookEndpoint.createMany({ data: Array.from({ length: 20 }, (_v, i) => ({ name: `e${i}`, url: 'https://example.com', secretEncrypted: 'x', secretDisplay: 'x' })) })
  const full = await call('POST', '/api/admin/webhooks', { name: 'x', url: 'https://example.com/x', secret })
  t.equal(full.statusCode, 409, 'at most 20 endpoints')
  t.match(full.json().error.message, 'at most 20 webhook endpoints')
})

t.test('the alert and delivery logs page newest first and filter', async (t) => {
  const { app } = await buildTestApp(t, { env: { ALERT_DELIVERY_INTERVAL_MS: '0' } })
  const admin = await signIn(app, 'admin')
  const get = async (url: string) => (await app.inject({ method: 'GET', url, headers: admin.headers })).json()
  const [a, b] = await Promise.all(['a', 'b'].map((name) => app.prisma.webhookEndpoint.create({ data: { name, url: `http://127.0.0.1:9/${name}`, secretEncrypted: 'x', secretDisplay: 'x' } })))
  const user = await signIn(app, 'user')
  for (const [i, threshold] of [50, 80, 100].entries()) {
    const alert = await app.prisma.alert.create({
      data: { subjectKind: 'user', subjectId: user.id, limitKind: 'quota', limitId: user.id, windowKey: 'quota:1', threshold, used: BigInt(threshold) * 10_000_000n, limitAmount: 1_000_000_000n, createdAt: new Date(Date.UTC(2026, 11, 1, i)) }
    })
    for (const endpoint of [a!, b!]) {
      await app.prisma.alertDelivery.create({ data: { alertId: alert.id, endpointId: endpoint.id, status: threshold === 100 ? 'pending' : 'delivered', createdAt: new Date(Date.UTC(2026, 11, 1, i)) } })
    }
  }
  const alerts = await get('/api/admin/alerts?limit=2')
  t.match(alerts, { total: 3, skip: 0, limit: 2 })
  t.same(alerts.items.map((x: { threshold_percent: number, used_usd: number, used_percent: number }) => [x.threshold_percent, x.used_usd, x.used_percent]), [[100, 1, 100], [80, 0.8, 80]], 'newest first')
  t.same((await get('/api/admin/alerts?skip=2')).items.map((x: { threshold_percent: number }) => x.threshold_percent), [50])
  t.equal((await get('/api/admin/alerts/deliveries')).total, 6)
  t.equal((await get('/api/admin/alerts/deliveries?status=pending')).total, 2)
  t.equal((await get(`/api/admin/alerts/deliveries?endpoint_id=${a!.id}&status=delivered`)).total, 2)
  const one = await get(`/api/admin/alerts/deliveries?alert_id=${alerts.items[0].id as string}&limit=1`)
  t.match(one, { total: 2, limit: 1, items: [{ alert_id: alerts.items[0].id, status: 'pending', attempts: 0 }] })
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/alerts/deliveries?status=lost', headers: admin.headers })).statusCode, 400)
})
