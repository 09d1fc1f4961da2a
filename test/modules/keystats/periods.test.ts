// Periods and exactness: how a range is cut between raw rows, usage_hourly and
// usage_daily_key; that the cut answers exactly what a GROUP BY over the raw rows
// answers, on random data and ragged ranges; and the daily / monthly boundaries of
// POST /user-model-stats and /daily-usage in a zone whose midnight is off the hour (+05:45).
import t from 'tap'
import type { KeymeterApp } from '../../../src/app.js'
import { keyModelUsage } from '../../../src/modules/accounting/read/keys.js'
import { gateway, type Json } from '../gateway/fixtures.js'
import { testSeed } from '../../prng.js'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
const iso = (ms: number) => new Date(ms).toISOString()

/** The same answer as keyModelUsage, by a GROUP BY over the raw finished rows. */
async function rawModelUsage (app: KeymeterApp, keyId: string, start: Date, end: Date) {
  const { rows } = await app.pg.query(`
    SELECT model, count(*) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cache_creation_input_tokens) AS cache_creation_tokens, sum(cache_read_input_tokens) AS cache_read_tokens,
           sum(total_tokens) AS total_tokens, sum(total_cost) AS cost
      FROM usage WHERE api_key_id = $1 AND status IN ('completed', 'failed', 'cancelled') AND created_at >= $2 AND created_at < $3
     GROUP BY model`, [keyId, start, end])
  return rows.map((r: Json) => ({
    model: r.model, requests: Number(r.requests), input_tokens: Number(r.input_tokens), output_tokens: Number(r.output_tokens),
    cache_creation_tokens: Number(r.cache_creation_tokens), cache_read_tokens: Number(r.cache_read_tokens), total_tokens: Number(r.total_tokens), cost: BigInt(r.cost)
  }))
}

const byModel = <T extends { model: string }>(rows: T[]) => [...rows].sort((a, b) => a.model < b.model ? -1 : 1)

t.test('rollups + raw edges = a GROUP BY over the raw rows, for random data and ranges', async (t) => {
  const g = await gateway(t)
  for (const model of ['m1', 'm2']) await g.price({ model, tiers: [{ up_to: null, input: 3, output: 15 }] })
  const [a, b] = [await g.standaloneKey(), await g.standaloneKey()]
  let seed = testSeed(t, 42)
  const random = () => { seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31; return seed / 2 ** 31 }
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!
  const origin = Date.UTC(2026, 0, 10)
  const span = 40 * DAY
  const events: object[] = []
  for (let i = 0; i < 600; i++) {
    // a quarter of the rows on exact hour or day boundaries, where off-by-one errors live
    const at = i % 4 === 0 ? origin + Math.floor(random() * span / HOUR) * (i % 8 === 0 ? DAY : HOUR) % span : origin + Math.floor(random() * span)
    const key = random() < 0.7 ? a : b
    const base = { request_id: `r${i}`, api_key_id: key.id, model: pick(['m1', 'm2', 'unpriced']), created_at: iso(at) }
    if (random() < 0.1) { events.push({ type: 'start', ...base }); continue } // stays pending: in no answer
    const write = pick([0, 0, 300])
    events.push({
      type: 'complete', ...base, status: pick(['completed', 'completed', 'completed', 'failed', 'cancelled']),
      input_tokens: Math.floor(random() * 5000), output_tokens: Math.floor(random() * 800),
      cache_creation_input_tokens: write, cache_creation_5m_input_tokens: write, cache_read_input_tokens: pick([0, 1200])
    })
  }
  for (const result of await g.send(events)) if (result.outcome !== 'recorded') throw new Error(JSON.stringify(result))

  const ranges: Array<[number, number]> = [
    [origin - DAY, origin + span + DAY], // everything
    [origin + 3 * DAY, origin + 10 * DAY], // whole UTC days
    [origin + 5 * HOUR, origin + 29 * HOUR], // whole hours across a UTC midnight
    [origin + 2 * DAY - 5 * HOUR - 45 * MIN, origin + 3 * DAY - 5 * HOUR - 45 * MIN], // a Kathmandu day
    [origin + 6 * DAY + 30 * MIN, origin + 38 * DAY + 30 * MIN], // an Asia/Kolkata-style month
    [origin + 7 * HOUR + 10 * MIN, origin + 7 * HOUR + 50 * MIN] // inside one hour
  ]
  for (let i = 0; i < 24; i++) {
    const s = origin + Math.floor(random() * span)
    ranges.push([s, s + Math.floor(random() * (i < 12 ? 3 * DAY : 20 * DAY))])
  }
  for (const [start, end] of ranges) {
    for (const key of [a, b]) {
      const fast = await keyModelUsage(g.app.pg, key.id, new Date(start), new Date(end))
      const raw = await rawModelUsage(g.app, key.id, new Date(start), new Date(end))
      t.same(byModel(fast), byModel(raw), `[${iso(start)}, ${iso(end)}) ${key === a ? 'a' : 'b'}`)
    }
  }
})

t.test('daily and monthly boundaries in Asia/Kathmandu (+05:45, midnight off the hour)', async (t) => {
  const g = await gateway(t, { APP_TIMEZONE: 'Asia/Kathmandu' })
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 1 }] }) // 1 token = 1000 nano-USD
  await g.price({ model: 'big', tiers: [{ up_to: null, input: 1, output: 1 }] })
  const [a, b] = [await g.standaloneKey(), await g.standaloneKey()]
  // Kathmandu has kept +05:45 since 1986: its midnights and month starts, computed independently of PostgreSQL
  const OFFSET = (5 * 60 + 45) * MIN
  const local = new Date(Date.now() + OFFSET)
  const [y, mo, d] = [local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate()]
  const dayStart = Date.UTC(y, mo, d) - OFFSET
  const dayEnd = dayStart + DAY
  const monthStart = Date.UTC(y, mo, 1) - OFFSET
  const monthEnd = Date.UTC(y, mo + 1, 1) - OFFSET
  // each row of `m` has its own bit of input tokens, so a sum names exactly the rows it counted
  const at: Record<string, number> = {
    'day - 1 ms': dayStart - 1,
    'day start': dayStart,
    'day + 10 min (raw edge)': dayStart + 10 * MIN,
    'day + 2 h (hourly)': dayStart + 2 * HOUR,
    'day end - 1 ms (raw edge)': dayEnd - 1,
    'day end': dayEnd,
    'month - 1 ms': monthStart - 1,
    'month start': monthStart,
    'month + 30 min (raw edge)': monthStart + 30 * MIN,
    'month + 3 days (daily)': monthStart + 3 * DAY,
    'month end - 1 ms': monthEnd - 1,
    'month end': monthEnd,
    'failed, day + 1 h': dayStart + HOUR
  }
  const labels = Object.keys(at)
  const bit = (label: string) => 1 << labels.indexOf(label)
  const events: object[] = labels.flatMap((label) => [a, b].map((key) => ({
    type: 'complete', request_id: `${key === a ? 'a' : 'b'}:${label}`, api_key_id: key.id, model: 'm', created_at: iso(at[label]!),
    status: label.startsWith('failed') ? 'failed' : 'completed', input_tokens: key === a ? bit(label) : bit(label) << 16, output_tokens: 0
  })))
  events.push(
    { type: 'start', request_id: 'a:pending', api_key_id: a.id, model: 'm', created_at: iso(dayStart + 5 * MIN) },
    { type: 'complete', request_id: 'a:big', api_key_id: a.id, model: 'big', created_at: iso(dayStart + 3 * HOUR), status: 'completed', input_tokens: 1 << 20, output_tokens: 5 }
  )
  for (const result of await g.send(events)) if (result.outcome !== 'recorded') throw new Error(JSON.stringify(result))

  const stats = async (period: string) => {
    const res = await g.app.inject({ method: 'POST', url: '/api/key-stats/user-model-stats', payload: { api_key: a.key, period } })
    t.equal(res.statusCode, 200, res.body)
    return res.json()
  }
  for (const [period, start, end] of [['daily', dayStart, dayEnd], ['monthly', monthStart, monthEnd]] as const) {
    const answer = await stats(period)
    const counted = labels.filter((label) => at[label]! >= start && at[label]! < end)
    const tokens = counted.reduce((sum, label) => sum + bit(label), 0)
    t.same(answer, {
      period,
      models: [
        { model: 'big', requests: 1, input_tokens: 1 << 20, output_tokens: 5, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: (1 << 20) + 5, cost_usd: ((1 << 20) + 5) / 1e6 },
        { model: 'm', requests: counted.length, input_tokens: tokens, output_tokens: 0, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: tokens, cost_usd: tokens / 1e6 }
      ]
    }, `${period}: ${counted.join(', ')}`)
  }
  // the boundaries themselves, whatever day of the month this runs on
  const daily = (await stats('daily')).models[1].input_tokens as number
  const monthly = (await stats('monthly')).models[1].input_tokens as number
  const has = (sum: number, label: string) => (sum & bit(label)) !== 0
  for (const label of ['day start', 'day + 10 min (raw edge)', 'day + 2 h (hourly)', 'day end - 1 ms (raw edge)', 'failed, day + 1 h']) {
    t.ok(has(daily, label), `daily counts ${label}`)
  }
  for (const label of ['day - 1 ms', 'day end']) t.notOk(has(daily, label), `daily leaves out ${label}`)
  for (const label of ['month start', 'month + 30 min (raw edge)', 'month + 3 days (daily)', 'month end - 1 ms']) t.ok(has(monthly, label), `monthly counts ${label}`)
  for (const label of ['month - 1 ms', 'month end']) t.notOk(has(monthly, label), `monthly leaves out ${label}`)

  // daily-usage cuts the same local days up to now: each row since the local midnight 29 days back, on its Kathmandu date
  const now = Date.now()
  const first = dayStart - 29 * DAY
  const perDate: Record<string, number> = {}
  const count = (ms: number) => { if (ms >= first && ms < now) perDate[iso(ms + OFFSET).slice(0, 10)] = (perDate[iso(ms + OFFSET).slice(0, 10)] ?? 0) + 1 }
  for (const label of labels) count(at[label]!)
  count(dayStart + 3 * HOUR) // a:big
  const recent = await g.app.inject({ method: 'POST', url: '/api/key-stats/daily-usage', payload: { api_key: a.key } })
  t.equal(recent.statusCode, 200, recent.body)
  const answer = recent.json()
  t.equal(answer.time_zone, 'Asia/Kathmandu')
  t.equal(answer.start, iso(first), 'from the Kathmandu midnight 29 days back')
  t.equal(answer.days.length, 30)
  t.equal(answer.days.at(-1).date, iso(dayStart + OFFSET).slice(0, 10), 'to today, Kathmandu\'s date')
  t.same(Object.fromEntries(answer.days.filter((day: Json) => day.requests > 0).map((day: Json) => [day.date, day.requests])), perDate, 'every row on its local day')

  // user-stats' today_cost_usd uses the same local day: the daily rows of both models
  const user = (await g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', payload: { apiKey: a.key } })).json()
  t.equal(user.limits.today_cost_usd, (daily + (1 << 20) + 5) / 1e6)
})
