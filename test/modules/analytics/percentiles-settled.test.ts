// The percentiles keep their settled buckets per app (analytics/percentiles.ts
// SettledPercentiles) and stay exact: a late write from any instance, a count moved by a
// bulk change, a deleted provider and the live buckets are all in the next answer; a
// settled rollup changed behind the count's back is not (proof the buckets are kept).
// Expected sample counts are counted by hand from the created_at instants sent.
import t from 'tap'
import { buildTestApp } from '../../helper.js'
import { gateway, GATEWAY, noonDaysAgo, type Json } from '../gateway/fixtures.js'
import { LATENCY_BUCKETS, latencyBucket } from '../../../src/modules/accounting/model.js'
import { percentiles, SettledPercentiles } from '../../../src/modules/analytics/percentiles.js'
import { resolveRange, Zone } from '../../../src/modules/analytics/range.js'

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

t.test('kept buckets follow late writes, count moves, deleted providers and live rows', async (t) => {
  const g = await gateway(t)
  const kept = await g.provider('kept')
  const doomed = await g.provider('doomed')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const now = Date.now()
  // noon UTC of 5, 10 and 20 days ago, and a minute ago: their UTC dates by hand
  const noon = (days: number) => noonDaysAgo(days, now)
  const fiveAgo = noon(5)
  const tenAgo = noon(10)
  const twentyAgo = noon(20)
  const recent = new Date(now - 60_000)
  const date = (at: Date) => at.toISOString().slice(0, 10)
  let n = 0
  const done = (at: Date, providerId: string, ms: number) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: providerId, model: 'm', created_at: at.toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, response_time_ms: ms, first_byte_time_ms: ms
  })
  const times = (count: number, event: () => object) => Array.from({ length: count }, event)
  const samples = async (query = ''): Promise<Record<string, number>> => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/performance/percentiles?preset=last30days&timezone=UTC&granularity=day${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200, res.body.slice(0, 200))
    const counts: Record<string, number> = {}
    for (const p of res.json() as Json[]) {
      if (p.response_time_samples === 0) continue
      const group = p.group_key === null ? 'none' : (p.group_name as string | null) ?? `unnamed ${p.group_key as string}`
      const at = `${p.date as string}${p.group_by === 'none' ? '' : `/${group}`}`
      counts[at] = (counts[at] ?? 0) + (p.response_time_samples as number)
    }
    return counts
  }

  await g.send([...times(12, () => done(fiveAgo, kept.id, 100)), ...times(11, () => done(tenAgo, doomed.id, 2000)), ...times(10, () => done(recent, kept.id, 50))])
  const expected: Record<string, number> = { [date(fiveAgo)]: 12, [date(tenAgo)]: 11 }
  expected[date(recent)] = (expected[date(recent)] ?? 0) + 10
  t.same(await samples(), expected, 'by hand: twelve five days ago, eleven ten days ago, ten now')

  // another instance writes a settled hour: a late write, so this one's next answer has it
  const other = await buildTestApp(t, { url: g.url })
  const res = await other.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events: [done(fiveAgo, kept.id, 100)] } })
  t.equal(res.statusCode, 200)
  expected[date(fiveAgo)] = 13
  t.same(await samples(), expected, 'the late write through the other instance is counted')

  // recent rows are read live, with no late write
  await g.send([done(recent, kept.id, 50)])
  expected[date(recent)] = expected[date(recent)]! + 1
  t.same(await samples(), expected, 'a recent request shows at once')

  // a settled day changed behind the count's back is not read again: proof the buckets are kept…
  const hist = Array.from({ length: LATENCY_BUCKETS }, (_, i) => i === latencyBucket(700) ? 14 : 0)
  await g.app.pg.query(`INSERT INTO usage_daily_provider (day, provider_id, response_time_hist, first_byte_time_hist) VALUES ($1::date, $2::uuid, $3::bigint[], $3::bigint[])`,
    [date(twentyAgo), kept.id, hist])
  t.same(await samples(), expected, 'the kept buckets stand while the count does')
  // …and read again once it moves (as a bulk load or a key's deletion moves it)
  await g.app.pg.query('UPDATE rollup_late_writes SET writes = writes + 1')
  expected[date(twentyAgo)] = 14
  t.same(await samples(), expected, 'the count moved: the settled buckets are read again')

  // by provider: a provider deleted after its buckets were kept reads as no provider's, as a fresh read gives it
  const byProvider = { [`${date(fiveAgo)}/kept`]: 13, [`${date(tenAgo)}/doomed`]: 11, [`${date(twentyAgo)}/kept`]: 14 }
  byProvider[`${date(recent)}/kept`] = 11
  t.same(await samples('&group_by=provider'), byProvider, 'by provider, by hand')
  await g.adminCall('DELETE', `/api/admin/providers/${doomed.id}`)
  delete byProvider[`${date(tenAgo)}/doomed`]
  byProvider[`${date(tenAgo)}/none`] = 11
  t.same(await samples('&group_by=provider'), byProvider, 'the deleted provider\'s kept histograms under no provider')
})

t.test('kept and fresh answers are the same, in a zone off the hour, grouped and not', async (t) => {
  const g = await gateway(t)
  const providers = [await g.provider('a'), await g.provider('b')]
  const key = await g.standaloneKey()
  const now = new Date()
  let n = 0
  const events = []
  // every 5 h 10 min over 20 days, latencies spread over three decades: every Kolkata midnight (18:30 UTC) gets rows on both sides
  for (let at = now.getTime() - 20 * DAY_MS; at < now.getTime(); at += 5 * HOUR_MS + 600_000) {
    for (let i = 0; i < 12; i++) {
      const ms = 10 * 2 ** ((n * 7) % 11)
      events.push({
        type: 'complete', request_id: `k${++n}`, api_key_id: key.id, provider_id: providers[n % 2]!.id, model: n % 3 === 0 ? 'x' : 'y',
        created_at: new Date(at + i * 47_000).toISOString(), status: 'completed', input_tokens: 1, output_tokens: 1, response_time_ms: ms, first_byte_time_ms: Math.floor(ms / 3)
      })
    }
  }
  for (let from = 0; from < events.length; from += 1000) await g.send(events.slice(from, from + 1000))
  const range = resolveRange({ preset: 'last30days' }, Zone.iana('Asia/Kolkata'), now)
  for (const group of ['none', 'provider', 'model'] as const) {
    const settled = new SettledPercentiles()
    const fresh = await percentiles(g.app.pg, range, 'day', { providerId: null, model: null }, group, undefined, now)
    const filling = await percentiles(g.app.pg, range, 'day', { providerId: null, model: null }, group, settled, now)
    let statements = 0
    const counting = { query: async (...args: Parameters<typeof g.app.pg.query>) => { statements++; return await g.app.pg.query(...args) } } as unknown as typeof g.app.pg
    const fromKept = await percentiles(counting, range, 'day', { providerId: null, model: null }, group, settled, now)
    t.ok(fresh.some((p) => p.response_time_samples > 0), `${group}: there are samples`)
    t.same(filling, fresh, `${group}: the answer that fills the cache is the fresh one`)
    t.same(fromKept, fresh, `${group}: the answer from kept buckets is the fresh one`)
    // the live days (the last ~7 hours are not settled) in one statement, and the providers' names
    t.equal(statements, group === 'provider' ? 2 : 1, `${group}: the kept buckets were not read again`)
  }
})
