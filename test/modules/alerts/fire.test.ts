// Alerts fired by the charge that reaches a threshold, in its transaction: once per window
// of the limit, never doubled by a replayed event or by two instances ingesting at once.
// Each request below costs a whole number of 0.001 USD (1 USD per million input tokens).
import t, { type Test } from 'tap'
import { buildApp } from '../../../src/app.js'
import { testConfig } from '../../helper.js'
import { GATEWAY, gateway, type Gateway, type Json } from '../gateway/fixtures.js'

const TIERS = [{ up_to: null, input: 1, output: 0 }]
let sequence = 0
/** a finished request of `units` × 0.001 USD, created now (budgets' windows are read at the batch's clock) */
const done = (key: Json, units: number, extra: Json = {}) => ({
  type: 'complete', request_id: `f-${++sequence}`, api_key_id: key.id, model: 'm', status: 'completed', status_code: 200,
  input_tokens: units * 1000, output_tokens: 0, ...extra
})

async function alerts (g: Gateway) {
  return g.app.prisma.$queryRawUnsafe<Array<{ subject_kind: string, subject_id: string, limit_kind: string, limit_id: string, window_key: string, threshold: number, used: bigint, limit_amount: bigint }>>(
    'SELECT subject_kind::text, subject_id, limit_kind::text, limit_id, window_key, threshold, used, limit_amount FROM alerts ORDER BY created_at, threshold')
}

async function setup (t: Test) {
  // no worker here: these tests read the outbox the worker would send
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  await g.price({ model: 'm', tiers: TIERS })
  return g
}

t.test('a key\'s balance: each threshold fires when reached, once; a replayed event fires nothing; each alert queues one delivery per active endpoint', async (t) => {
  const g = await setup(t)
  const key = await g.standaloneKey({ initial_balance_usd: 0.01 })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', subject_id: key.id, limit_kind: 'balance', thresholds: [100, 50, 80] })
  const active = await g.adminCall('POST', '/api/admin/webhooks', { name: 'ops', url: 'http://127.0.0.1:9/hook', secret: 'whsec-0123456789abcdef' })
  await g.adminCall('POST', '/api/admin/webhooks', { name: 'off', url: 'http://127.0.0.1:9/off', secret: 'whsec-0123456789abcdef', is_active: false })

  await g.send([{ type: 'start', request_id: 'f-started', api_key_id: key.id, model: 'm', api_format: 'openai:chat' }])
  t.same(await alerts(g), [], 'a start charges nothing')
  await g.send([done(key, 4)])
  t.same(await alerts(g), [], '40 %: below every threshold')
  const half = done(key, 1)
  await g.send([half])
  t.same((await alerts(g)).map((a) => [a.limit_kind, a.threshold, a.used, a.limit_amount]), [['balance', 50, 5_000_000n, 10_000_000n]], '50 % reached exactly')
  t.same((await g.send([half])).map((r) => r.outcome), ['duplicate'])
  await g.send([done(key, 4)])
  t.same((await alerts(g)).map((a) => a.threshold), [50, 80], '90 %: the 80 % fires, the 50 % not again')
  await g.send([done(key, 1), done(key, 3)])
  t.same((await alerts(g)).map((a) => a.threshold), [50, 80, 100], '130 %: the 100 % once, though two requests of the batch passed it')

  const deliveries = await g.app.prisma.alertDelivery.findMany({ select: { endpointId: true, status: true, attempts: true } })
  t.same(deliveries, [0, 1, 2].map(() => ({ endpointId: active.id, status: 'pending', attempts: 0 })), 'one pending delivery per alert, to the active endpoint only')

  // a top-up re-arms the thresholds: the new balance (0.03 USD) is a new window of the limit
  await g.app.prisma.apiKey.update({ where: { id: key.id }, data: { currentBalance: 30_000_000n } })
  await g.send([done(key, 2)])
  t.same((await alerts(g)).slice(3).map((a) => [a.threshold, a.used]), [[50, 15_000_000n]], '15 of 30: the 50 % again, under the new balance')
})

t.test('every key\'s total cost limit (a rule without subject_id) and a user\'s quota re-armed by its reset', async (t) => {
  const g = await setup(t)
  const user = await g.user({ quota_usd: 0.01 })
  const key = await g.userKey(user.id, { total_cost_limit_usd: 0.004 })
  const other = await g.standaloneKey()
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', limit_kind: 'total_cost', thresholds: [75] })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'user', subject_id: user.id, limit_kind: 'quota', thresholds: [60] })

  await g.send([done(key, 3), done(other, 50)])
  t.same((await alerts(g)).map((a) => [a.subject_id, a.limit_kind, a.threshold]), [[key.id, 'total_cost', 75]], '3 of 4: the key\'s; the other key has no limit; the quota is at 30 %')
  await g.send([done(key, 3)])
  t.same((await alerts(g)).slice(1).map((a) => [a.subject_id, a.limit_kind, a.threshold, a.used]), [[user.id, 'quota', 60, 6_000_000n]], '6 of 10')

  // the quota's reset (used back to 0, total_used kept) opens a new window
  await g.adminCall('PATCH', `/api/admin/users/${user.id as string}/quota`)
  await g.send([done(key, 5)])
  t.same((await alerts(g)).slice(2), [], '5 of 10 since the reset')
  await g.send([done(key, 1)])
  t.same((await alerts(g)).slice(2).map((a) => [a.limit_kind, a.threshold, a.used]), [['quota', 60, 6_000_000n]], '6 of 10 since the reset: fires again')
})

t.test('budgets of a key and of its owner fire once per window, at the window\'s start', async (t) => {
  const g = await setup(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const keyBudget = await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'month', time_zone: 'UTC', limit_usd: 0.01 })
  const userBudget = await g.adminCall('POST', `/api/admin/users/${user.id as string}/budgets`, { period: 'rolling', duration_seconds: 3600, limit_usd: 0.02 })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', limit_kind: 'budget', thresholds: [50] })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'user', subject_id: user.id, limit_kind: 'budget', thresholds: [50] })

  await g.send([done(key, 6)])
  const fired = await alerts(g)
  t.same(fired.map((a) => [a.limit_kind, a.limit_id, a.threshold, a.used]), [['budget', keyBudget.id, 50, 6_000_000n]], 'the key\'s month: 6 of 10; the owner\'s hour: 6 of 20')
  t.same(fired[0]!.window_key, `window:${Date.parse(keyBudget.window_start as string)}`, 'keyed by the month\'s start (epoch ms)')
  await g.send([done(key, 5)])
  const next = (await alerts(g)).slice(1)
  t.same(next.map((a) => [a.subject_kind, a.limit_id, a.threshold, a.used]), [['user', userBudget.id, 50, 11_000_000n]], 'the owner\'s budget: 11 of 20')
  t.match(next[0]!.window_key, /^rolling:\d+$/, 'a rolling window fires at most once per duration')
  const payloads = (await g.adminCall('GET', '/api/admin/alerts')).items
  // the epoch-aligned hour of the charge's clock (the alert's created_at)
  const start = Math.floor(Date.parse(payloads[0].created_at as string) / 3_600_000) * 3_600_000
  t.match(payloads[0], { subject: { kind: 'user', id: user.id }, limit: { kind: 'budget', id: userBudget.id, amount_usd: 0.02, window_start: new Date(start).toISOString(), window_end: new Date(start + 3_600_000).toISOString() }, threshold_percent: 50, used_usd: 0.011, used_percent: 55 },
    'the payload names the rolling hour it fired in')
  t.match(payloads[1], { limit: { window_start: keyBudget.window_start, window_end: keyBudget.resets_at } }, 'and the calendar month')
})

t.test('a provider\'s monthly quota reads monthly_used', async (t) => {
  const g = await setup(t)
  const provider = await g.provider('p', 'monthly_quota')
  const providerKey = await g.providerKey(provider.id)
  const key = await g.standaloneKey()
  const month = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1))
  // 0.085 USD spent this month before (ingestion adds each charge's actual cost to it)
  await g.app.prisma.provider.update({ where: { id: provider.id }, data: { monthlyQuota: 100_000_000n, monthlyUsed: 85_000_000n, monthlyUsedMonth: month } })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'provider', subject_id: provider.id, limit_kind: 'quota', thresholds: [80, 99] })
  await g.send([done(key, 1, { provider_api_key_id: providerKey.id })])
  const fired = await alerts(g)
  t.same(fired.map((a) => [a.subject_id, a.limit_kind, a.threshold, a.used]), [[provider.id, 'quota', 80, 86_000_000n]], '86 of 100: the 80 % only')
  t.equal(fired[0]!.window_key, `period:${month.toISOString().slice(0, 10)}:quota:100000000`, 'once in the quota period monthly_used counts')
  const [payload] = (await g.adminCall('GET', '/api/admin/alerts')).items
  t.match(payload.limit, { kind: 'quota', window_start: month.toISOString() })
  t.equal(Date.parse(payload.limit.window_end as string), Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1))
})

t.test('two instances ingesting at once over the threshold fire it once', async (t) => {
  const g = await setup(t)
  const second = await buildApp(testConfig(g.url, { ALERT_DELIVERY_INTERVAL_MS: '0' }))
  t.teardown(() => second.close())
  const key = await g.standaloneKey({ initial_balance_usd: 0.01 })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', subject_id: key.id, limit_kind: 'balance', thresholds: [50, 90] })
  await g.adminCall('POST', '/api/admin/webhooks', { name: 'ops', url: 'http://127.0.0.1:9/hook', secret: 'whsec-0123456789abcdef' })
  for (let round = 0; round < 5; round++) {
    const answers = await Promise.all([g.app, second, g.app, second].map((app) => app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events: [done(key, 3)] } })))
    t.same(answers.map((a) => a.statusCode), [200, 200, 200, 200])
  }
  // sorted: created_at is each batch's clock, taken before it waited for the others
  t.same((await alerts(g)).map((a) => a.threshold).sort((a, b) => a - b), [50, 90], 'each threshold once over 20 concurrent batches')
  t.equal(await g.app.prisma.alertDelivery.count(), 2, 'and one delivery each')
})
