// The global heatmap keeps its settled days per zone (accounting/read/totals.ts
// SettledHeatmaps) and stays exact: a batch that writes an hour settled for more than 6
// hours counts a late write, and every instance's next answer sums its settled days again;
// recent batches count none and are read live. Expected days are counted by hand from the
// created_at instants sent.
import t from 'tap'
import { buildTestApp } from '../../helper.js'
import { gateway, GATEWAY, noonDaysAgo, type Json } from '../gateway/fixtures.js'
import { isLateWrite, settledBefore } from '../../../src/modules/accounting/rules.js'
import { heatmapDays, SettledHeatmaps, type HeatmapDay } from '../../../src/modules/accounting/read/totals.js'

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

t.test('the settled rule: hours before now − 7 h (floored), late writes older than 6 h', async (t) => {
  t.equal(settledBefore(new Date('2026-12-02T18:30:00.000Z')).toISOString(), '2026-12-02T11:00:00.000Z')
  t.equal(settledBefore(new Date('2026-12-02T18:00:00.000Z')).toISOString(), '2026-12-02T11:00:00.000Z')
  t.equal(settledBefore(new Date('2026-12-02T03:59:59.999Z')).toISOString(), '2026-12-01T20:00:00.000Z', 'across midnight')
  const now = new Date('2026-12-02T18:00:00.000Z')
  t.equal(isLateWrite(Date.parse('2026-12-02T12:00:00.000Z') - 1, now), true, 'one millisecond past 6 hours: late')
  t.equal(isLateWrite(Date.parse('2026-12-02T12:00:00.000Z'), now), false, '6 hours exactly: not yet')
  t.equal(isLateWrite(Number.POSITIVE_INFINITY, now), false, 'a batch without rows is not late')
})

t.test('settled days follow late writes from any instance, and raw rollup changes only once counted', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const now = Date.now()
  // noon UTC of 5 and 10 days ago, and a minute ago: their UTC dates by hand
  const noon = (days: number) => noonDaysAgo(days, now)
  const fiveAgo = noon(5)
  const tenAgo = noon(10)
  const recent = new Date(now - 60_000)
  const date = (at: Date) => at.toISOString().slice(0, 10)
  let n = 0
  const done = (at: Date) => ({ type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: at.toISOString(), status: 'completed', input_tokens: 100, output_tokens: 10 })
  const writes = async () => Number((await g.app.prisma.$queryRawUnsafe<Json[]>('SELECT writes FROM rollup_late_writes'))[0]!.writes)
  const heatmap = async (zone = 'UTC'): Promise<Record<string, number>> => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/heatmap?timezone=${zone}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200)
    return Object.fromEntries((res.json().days as Json[]).filter((d) => d.requests > 0).map((d) => [d.date, d.requests]))
  }

  const before = await writes()
  await g.send([done(fiveAgo), done(fiveAgo)])
  t.equal(await writes(), before + 1, 'a batch of settled hours counts one late write')
  await g.send([done(recent)])
  t.equal(await writes(), before + 1, 'a batch of recent rows counts none')
  const expected: Record<string, number> = { [date(fiveAgo)]: 2 }
  expected[date(recent)] = (expected[date(recent)] ?? 0) + 1
  t.same(await heatmap(), expected, 'by hand: two five days ago, one now')

  // another instance on the same database writes a settled hour: this one's next answer has it
  const other = await buildTestApp(t, { url: g.url })
  const res = await other.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events: [done(fiveAgo)] } })
  t.equal(res.statusCode, 200)
  expected[date(fiveAgo)] = 3
  t.same(await heatmap(), expected, 'the late write through the other instance is counted')

  // recent rows are read live, with no late write
  await g.send([done(recent)])
  expected[date(recent)] = expected[date(recent)]! + 1
  t.same(await heatmap(), expected, 'a recent request shows at once')

  // a settled hour changed behind the count's back is not read again: proof the settled days are kept…
  await g.app.prisma.$executeRawUnsafe(`INSERT INTO usage_hourly_global (bucket, requests, total_tokens, total_cost, actual_total_cost) VALUES ('${tenAgo.toISOString()}', 7, 0, 0, 0)`)
  t.same(await heatmap(), expected, 'the settled days are kept while the count stands')
  // …and summed again once it moves (as the seed's bulk load moves it)
  await g.app.prisma.$executeRawUnsafe('UPDATE rollup_late_writes SET writes = writes + 1')
  expected[date(tenAgo)] = 7
  t.same(await heatmap(), expected, 'the count moved: the settled days are summed again')

  // a zone whose midnight cuts an hour, kept apart from UTC's: 12:00 UTC is 17:30 in Kolkata, the same date; a minute ago may be tomorrow there
  const kolkata = await heatmap('Asia/Kolkata')
  t.equal(kolkata[date(fiveAgo)], 3, 'Asia/Kolkata: the three of five days ago')
  t.equal(kolkata[date(tenAgo)], 7, 'Asia/Kolkata: the hour ten days ago (12:00 UTC) on its date')
  t.equal(Object.values(kolkata).reduce((a, b) => a + b, 0), 12, 'Asia/Kolkata: every request once')
})

t.test('settled days: zones past the bound are let go, a day-old sum is made again, each answer as the uncached one', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const now = new Date()
  let n = 0
  const at = (hoursAgo: number) => new Date(now.getTime() - hoursAgo * HOUR_MS).toISOString()
  await g.send([3, 30, 50, 80, 200].map((hoursAgo) => ({ type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: at(hoursAgo), status: 'completed', input_tokens: 100, output_tokens: 10 })))
  const db = g.app.statsPg
  const settled = new SettledHeatmaps(1)
  const first = new Date(now.getTime() - 30 * DAY_MS).toISOString().slice(0, 10)
  const last = new Date(now.getTime() + 3 * DAY_MS).toISOString().slice(0, 10)
  const plain = async (zone: string) => sorted(await heatmapDays(db, zone, first, last))
  for (const zone of ['UTC', 'Asia/Kolkata', 'UTC', 'America/New_York']) {
    t.same(sorted(await settled.days(db, zone, first, last, now)), await plain(zone), `${zone}: as the uncached answer`)
  }
  // two days on, the settled sums are made again from a later instant
  const later = new Date(now.getTime() + 2 * DAY_MS)
  t.same(sorted(await settled.days(db, 'America/New_York', first, last, later)), await plain('America/New_York'), 'two days on: the same days')
  t.equal((await plain('UTC')).reduce((sum, day) => sum + day.requests, 0), 5, 'by hand: five requests')
})

const sorted = (days: HeatmapDay[]) => [...days].sort((a, b) => a.day < b.day ? -1 : 1)
