// A key's daily_cost_limit is a limit alert rules watch: its finished spend in the
// APP_TIMEZONE day (the zone ingestion is given), each threshold once per local day,
// never doubled by a replay or a second rule, in the charge's transaction (the outbox).
// Each request costs a whole number of 0.001 USD (1 USD per million input tokens).
import t from 'tap'
import { ingestEvents } from '../../../src/modules/usage/ingest.js'
import { gateway, type Json } from '../gateway/fixtures.js'

/** UTC+14 all year (no DST), so its day is not UTC's for 14 hours of every UTC day */
const ZONE = 'Pacific/Kiritimati'
let sequence = 0
const done = (key: Json, units: number, extra: Json = {}) => ({
  type: 'complete' as const, request_id: `d-${++sequence}`, api_key_id: key.id, model: 'm', status: 'completed' as const, status_code: 200,
  input_tokens: units * 1000, output_tokens: 0, ...extra
})

t.test('crossing 50, 80 and 100 % of a key\'s daily limit writes each alert once, in the zone\'s day', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0', APP_TIMEZONE: ZONE })
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey({ daily_cost_limit_usd: 0.01 })
  const other = await g.standaloneKey()
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', subject_id: key.id, limit_kind: 'daily_cost', thresholds: [100, 50, 80] })
  // a second rule over the same thresholds (every key's) fires nothing twice
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', limit_kind: 'daily_cost', thresholds: [50] })
  await g.adminCall('POST', '/api/admin/webhooks', { name: 'ops', url: 'http://127.0.0.1:9/hook', secret: 'whsec-0123456789abcdef' })
  const ingest = async (events: object[]) => ingestEvents(g.app.ingestPg, events as Parameters<typeof ingestEvents>[1], { timeZone: ZONE })
  const alerts = async () => g.app.prisma.$queryRawUnsafe<Array<{ subject_id: string, limit_kind: string, window_key: string, window_start: Date, window_end: Date, threshold: number, used: bigint }>>(
    'SELECT subject_id, limit_kind::text, window_key, window_start, window_end, threshold, used FROM alerts ORDER BY threshold')

  // yesterday in the zone (25 hours ago is always before its midnight): not today's spend
  await ingest([done(key, 9, { created_at: new Date(Date.now() - 25 * 3_600_000).toISOString() })])
  t.same(await alerts(), [], 'yesterday\'s 9 of 10 is not today\'s spend: nothing fires at today\'s clock')
  await ingest([done(key, 4), done(other, 50)])
  t.same(await alerts(), [], '4 of 10 today: below every threshold; the key without a limit has none')
  const half = done(key, 1)
  await ingest([half])
  t.same((await alerts()).map((a) => [a.threshold, a.used]), [[50, 5_000_000n]], '5 of 10: the 50 % exactly')
  await ingest([half])
  t.equal((await alerts()).length, 1, 'a replayed event fires nothing')
  await ingest([done(key, 3)])
  await ingest([done(key, 1)])
  t.same((await alerts()).map((a) => [a.threshold, a.used]), [[50, 5_000_000n], [80, 8_000_000n]], '8 of 10: the 80 %; 9 of 10: nothing new')
  await ingest([done(key, 1), done(key, 1)])
  await ingest([done(key, 5)])
  const fired = await alerts()
  t.same(fired.map((a) => [a.threshold, a.used]), [[50, 5_000_000n], [80, 8_000_000n], [100, 11_000_000n]], '11 of 10: the 100 % once, though two requests of the batch passed it')

  // the window is the zone's day: its local date, from its midnight (UTC+14) to the next
  const localDate = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date())
  const midnight = Date.parse(`${localDate}T00:00:00+14:00`)
  for (const alert of fired) {
    t.equal(alert.window_key, `day:${localDate}:limit:10000000`)
    t.equal(alert.window_start.getTime(), midnight)
    t.equal(alert.window_end.getTime(), midnight + 86_400_000)
  }
  t.equal(await g.app.prisma.alertDelivery.count(), 3, 'one delivery per alert to the one endpoint')
  const [payload] = (await g.adminCall('GET', '/api/admin/alerts')).items
  t.match(payload, { subject: { kind: 'api_key', id: key.id }, limit: { kind: 'daily_cost', id: key.id, amount_usd: 0.01 } })
})

t.test('without the zone (an ingestion not given APP_TIMEZONE) daily limits are not evaluated', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey({ daily_cost_limit_usd: 0.01 })
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'api_key', subject_id: key.id, limit_kind: 'daily_cost', thresholds: [50] })
  await ingestEvents(g.app.ingestPg, [done(key, 6)] as Parameters<typeof ingestEvents>[1])
  t.equal(await g.app.prisma.alert.count(), 0)
  // the gateway's door passes APP_TIMEZONE: the same spend through it crosses 50 % (6 + 6 of 10 today)
  await g.send([done(key, 6)])
  t.equal(await g.app.prisma.alert.count(), 1, 'POST /api/gateway/usage evaluates daily limits')
})
