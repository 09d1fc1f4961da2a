// A key's local days (GET /api/admin/api-keys/:id/stats) from usage_hourly and raw edges:
// the same answer as a GROUP BY over the key's raw finished rows, on random data, in zones
// whose midnight is on the hour, off it (+05:30, +05:45), and that change offset (DST, by
// an hour and by half an hour), for ragged ranges; and which part is read from where.
import t from 'tap'
import { keyDailyUsage } from '../../../src/modules/accounting/read/keys.js'
import { gateway, type Json } from '../gateway/fixtures.js'

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
const iso = (ms: number) => new Date(ms).toISOString()
const ZONES = ['UTC', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Shanghai']

t.test('usage_hourly + raw edges = a GROUP BY over the raw rows, per local day', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const [a, b] = [await g.standaloneKey(), await g.standaloneKey()]
  let seed = 7
  const random = () => { seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31; return seed / 2 ** 31 }
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!
  // 2026-03-01 … 2026-04-10: New York springs forward on 03-08, Lord Howe falls back half an hour on 04-05
  const origin = Date.UTC(2026, 2, 1)
  const span = 40 * DAY
  const instants: number[] = []
  for (let day = 0; day <= 40; day++) {
    const midnight = origin + day * DAY
    // local midnights off the hour (Kolkata, Kathmandu, Lord Howe at +10:30) and beside them
    for (const offset of [-330, -345, -630]) for (const d of [-1, 0, 1]) instants.push(midnight + offset * MIN + d)
  }
  for (let i = 0; i < 500; i++) instants.push(origin + Math.floor(random() * span))
  const events: object[] = instants.map((at, i) => {
    const base = { request_id: `r${i}`, api_key_id: random() < 0.8 ? a.id : b.id, model: 'm', created_at: iso(at) }
    if (random() < 0.1) return { type: 'start', ...base } // stays pending: in no answer
    return {
      type: 'complete', ...base, status: pick(['completed', 'completed', 'failed', 'cancelled']),
      input_tokens: Math.floor(random() * 5000), output_tokens: Math.floor(random() * 800), response_time_ms: random() < 0.2 ? null : Math.floor(random() * 3000)
    }
  })
  for (let i = 0; i < events.length; i += 200) {
    for (const result of await g.send(events.slice(i, i + 200))) if (result.outcome !== 'recorded') throw new Error(JSON.stringify(result))
  }

  const raw = async (keyId: string, start: number, end: number, timeZone: string) => (await g.app.pg.query(`
    SELECT to_char(created_at AT TIME ZONE $4, 'YYYY-MM-DD') AS date, count(*) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost,
           COALESCE(sum(response_time_ms), 0) AS rt_sum, count(response_time_ms) AS rt_count
      FROM usage WHERE api_key_id = $1 AND status IN ('completed', 'failed', 'cancelled') AND created_at >= $2 AND created_at < $3
     GROUP BY 1 ORDER BY 1`, [keyId, new Date(start), new Date(end), timeZone])).rows.map((r: Json) => ({
    date: r.date, requests: Number(r.requests), totalTokens: BigInt(r.tokens), totalCost: BigInt(r.cost), responseTimeSumMs: BigInt(r.rt_sum), responseTimeCount: Number(r.rt_count)
  }))

  const ranges: Array<[number, number]> = [
    [origin - DAY, origin + span + DAY], // everything
    [origin + 3 * DAY, origin + 10 * DAY], // whole UTC days
    [origin + 5 * DAY - 330 * MIN, origin + 9 * DAY - 330 * MIN], // Kolkata days
    [origin + 7 * HOUR + 10 * MIN, origin + 7 * HOUR + 50 * MIN], // inside one hour
    [origin + 2 * DAY - 345 * MIN - 1, origin + 2 * DAY - 345 * MIN + 1] // around a Kathmandu midnight
  ]
  for (let i = 0; i < 8; i++) {
    const s = origin + Math.floor(random() * span)
    ranges.push([s, s + Math.floor(random() * 12 * DAY)])
  }
  let days = 0
  for (const [start, end] of ranges) {
    for (const timeZone of ZONES) {
      for (const key of [a, b]) {
        const expected = await raw(key.id, start, end, timeZone)
        days += expected.length
        t.same(await keyDailyUsage(g.app.prisma, key.id, { start: new Date(start), end: new Date(end) }, timeZone), expected,
          `[${iso(start)}, ${iso(end)}) ${timeZone} ${key === a ? 'a' : 'b'}`)
      }
    }
  }
  t.ok(days > 1000, `the comparisons covered ${days} local days`)
})

t.test('whole hours are read from usage_hourly, the edges and an hour holding a local midnight from raw rows', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey()
  const at = (s: string) => ({ type: 'complete', request_id: s, api_key_id: key.id, model: 'm', created_at: s, status: 'completed', input_tokens: 10, output_tokens: 0 })
  // 10:20 (a whole hour of the range), 18:40 (the hour holding Kolkata's midnight, 18:30 UTC), 23:50 (the range's ragged end)
  await g.send([at('2026-03-01T10:20:00.000Z'), at('2026-03-01T18:40:00.000Z'), at('2026-03-01T23:50:00.000Z')])
  const range = { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-03-01T23:55:00Z') }
  const requests = async (timeZone: string) =>
    Object.fromEntries((await keyDailyUsage(g.app.prisma, key.id, range, timeZone)).map((d) => [d.date, d.requests]))
  t.same(await requests('UTC'), { '2026-03-01': 3 })
  t.same(await requests('Asia/Kolkata'), { '2026-03-01': 1, '2026-03-02': 2 })

  // a rollup row's count moved by hand shows which hours the answer takes from usage_hourly
  const bump = (hour: string) => g.app.pg.query('UPDATE usage_hourly SET requests = requests + 100 WHERE api_key_id = $1 AND bucket = $2', [key.id, hour])
  await bump('2026-03-01T10:00:00Z')
  await bump('2026-03-01T18:00:00Z')
  await bump('2026-03-01T23:00:00Z')
  t.same(await requests('UTC'), { '2026-03-01': 203 }, 'UTC: 10:00 and 18:00 from the rollup, 23:50 raw (after the last whole hour)')
  t.same(await requests('Asia/Kolkata'), { '2026-03-01': 101, '2026-03-02': 2 }, 'Kolkata: 18:00–19:00 holds midnight, read raw')
})
