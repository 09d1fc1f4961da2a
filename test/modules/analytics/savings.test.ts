// GET /api/admin/stats/cost/savings and /api/users/me/stats/cost/savings: gross, net and
// wasted writes equal a reference computed here from the raw rows the test ingested
// (each term priced by hand from the row's own unit prices, half away from zero; the
// wasted writes from each key's timeline), over ragged ranges in several zones.
import t from 'tap'
import { signIn } from '../../helper.js'
import { testSeed } from '../../prng.js'
import { SNAPSHOT_PRICES } from '../gateway/fixtures.js'
import { dataSet, HOUR, isoWithOffset } from '../stats/fixtures.js'

type Row = Record<string, any>
const big = (v: unknown) => v === null ? null : BigInt(v as string)
/** tokens × price per 1M, rounded half away from zero */
const perMillion = (tokens: number, price: bigint) => {
  const n = BigInt(tokens) * price
  const d = 1_000_000n
  return n >= 0n ? (2n * n + d) / (2n * d) : -((-2n * n + d) / (2n * d))
}
const usd = (nano: bigint) => Number(nano) / 1e9

interface Sums { read: number, creation: number, readCost: bigint, creationCost: bigint, saving: bigint, premium: bigint, w5: bigint, w1: bigint, wastedCost: bigint }
const zero = (): Sums => ({ read: 0, creation: 0, readCost: 0n, creationCost: 0n, saving: 0n, premium: 0n, w5: 0n, w1: 0n, wastedCost: 0n })
const figures = (s: Sums) => ({
  cache_read_tokens: s.read,
  cache_read_cost: usd(s.readCost),
  cache_creation_cost: usd(s.creationCost),
  estimated_full_cost: usd(s.readCost + s.saving),
  cache_savings: usd(s.saving),
  cache_creation_tokens: s.creation,
  cache_write_premium: usd(s.premium),
  net_savings: usd(s.saving - s.premium),
  wasted_write_tokens: Number(s.w5 + s.w1),
  wasted_write_5m_tokens: Number(s.w5),
  wasted_write_1h_tokens: Number(s.w1),
  wasted_write_cost: usd(s.wastedCost)
})

t.test('cost/savings equals the raw rows\' reference', async (t) => {
  const { g, base, hours, providers: live } = await dataSet(t, { seed: testSeed(t, 20261219), count: 700, hours: 80 })
  const own = await signIn(g.app, 'user')
  const ownKey = await g.userKey(own.id)
  const iso = (ms: number) => new Date(ms).toISOString()
  // the caller's own traffic: cache reads and writes on a model with cache prices, 10 minutes apart (the 5m writes expire unread)
  await g.send([0, 1, 2].map((i) => ({
    type: 'complete', request_id: `own-${i}`, api_key_id: ownKey.id, model: 'gpt-y', created_at: iso(base + 20 * HOUR + i * 600_000), status: 'completed',
    input_tokens: 1000, output_tokens: 10, cache_read_input_tokens: 4000 + i, cache_creation_input_tokens: 3001, cache_creation_5m_input_tokens: 3001
  })))
  // across New York's spring-forward (2026-03-08 07:00Z: 02:00 EST → 03:00 EDT, a 23-hour local day): reads and writes 50 minutes apart
  const dstUser = await signIn(g.app, 'user')
  const dstKey = await g.userKey(dstUser.id)
  await g.send(Array.from({ length: 8 }, (_, i) => ({
    type: 'complete', request_id: `dst-${i}`, api_key_id: dstKey.id, model: i % 2 === 0 ? 'gpt-y' : 'claude-x', provider_id: live[i % 2]!.id,
    created_at: iso(Date.parse('2026-03-08T04:10:00Z') + i * 50 * 60_000), status: 'completed', input_tokens: 500, output_tokens: 5,
    cache_read_input_tokens: 2000 + i, cache_creation_input_tokens: 1500, cache_creation_5m_input_tokens: 1000, cache_creation_1h_input_tokens: 500
  })))
  const sql = async (text: string, params: unknown[] = []) => (await g.app.pg.query(text, params)).rows as Row[]
  const providers = new Map((await sql('SELECT id, name FROM providers')).map((p) => [p.id as string, p.name as string]))
  const all = await sql(`SELECT u.request_id, u.status::text AS status, u.created_at, u.user_id, u.api_key_id, u.provider_id, u.model, u.cache_read_input_tokens AS r,
      u.cache_creation_input_tokens AS c, u.cache_creation_5m_input_tokens AS w5, u.cache_creation_1h_input_tokens AS w1, u.cache_read_cost, u.cache_creation_cost,
      tp.pi::text AS pi, tp.pr::text AS pr, tp.p5::text AS p5, tp.p1::text AS p1
    FROM usage u ${SNAPSHOT_PRICES} ORDER BY u.created_at, u.request_id`)

  // each completed row's gap to its key's next completed row (null: none yet)
  const nextGap = new Map<string, number | null>()
  const lastOfKey = new Map<string, Row>()
  for (const row of all.filter((r) => r.status === 'completed' && r.api_key_id !== null)) {
    const before = lastOfKey.get(row.api_key_id)
    if (before !== undefined) nextGap.set(before.request_id, row.created_at.getTime() - before.created_at.getTime())
    nextGap.set(row.request_id, null)
    lastOfKey.set(row.api_key_id, row)
  }
  const now = Date.now()

  const reference = (from: number, to: number, userId: string | null) => {
    const mine = all.filter((r) => userId === null || r.user_id === userId)
    const total = zero()
    const models = new Map<string, Sums>()
    const byProvider = new Map<string | null, Sums>()
    for (const r of mine.filter((r) => ['completed', 'failed', 'cancelled'].includes(r.status) && r.created_at.getTime() >= from && r.created_at.getTime() < to)) {
      const pi = big(r.pi)
      const s: Sums = {
        read: r.r,
        creation: r.c,
        readCost: BigInt(r.cache_read_cost),
        creationCost: BigInt(r.cache_creation_cost),
        saving: pi === null ? 0n : perMillion(r.r, pi - big(r.pr)!),
        premium: pi === null ? 0n : perMillion(r.w5, big(r.p5)! - pi) + perMillion(r.w1, big(r.p1)! - pi),
        w5: 0n,
        w1: 0n,
        wastedCost: 0n
      }
      const providerId = r.provider_id !== null && providers.has(r.provider_id) ? r.provider_id as string : null
      for (const [map, key] of [[models, r.model], [byProvider, providerId]] as Array<[Map<string | null, Sums>, string | null]>) {
        const into = map.get(key) ?? zero()
        into.read += s.read; into.creation += s.creation; into.readCost += s.readCost; into.creationCost += s.creationCost; into.saving += s.saving; into.premium += s.premium
        map.set(key, into)
      }
      total.read += s.read; total.creation += s.creation; total.readCost += s.readCost; total.creationCost += s.creationCost; total.saving += s.saving; total.premium += s.premium
    }
    // wasted writes: completed rows written in the hours the range touches, whose key's next request came after the TTL
    // (rows that write and have a next request count only with a user, as the cache economics do); a key's last write, once its TTL has passed;
    // each in its writer's model and provider
    const lo = Math.floor(from / HOUR) * HOUR
    const hi = Math.ceil(to / HOUR) * HOUR
    for (const r of mine.filter((r) => r.status === 'completed' && r.api_key_id !== null && r.created_at.getTime() >= lo && r.created_at.getTime() < hi)) {
      const gap = nextGap.get(r.request_id)!
      if (gap !== null && r.user_id === null) continue
      const age = gap ?? now - r.created_at.getTime()
      const x5 = age > 300_000 ? r.w5 as number : 0
      const x1 = age > 3_600_000 ? r.w1 as number : 0
      const cost = (r.p5 === null ? 0n : perMillion(x5, BigInt(r.p5))) + (r.p1 === null ? 0n : perMillion(x1, BigInt(r.p1)))
      const providerId = r.provider_id !== null && providers.has(r.provider_id) ? r.provider_id as string : null
      for (const [map, key] of [[models, r.model], [byProvider, providerId]] as Array<[Map<string | null, Sums>, string | null]>) {
        const into = map.get(key) ?? zero()
        into.w5 += BigInt(x5); into.w1 += BigInt(x1); into.wastedCost += cost
        map.set(key, into)
      }
      total.w5 += BigInt(x5); total.w1 += BigInt(x1); total.wastedCost += cost
    }
    const order = (a: [string | null, Sums], b: [string | null, Sums]) => a[1].saving === b[1].saving ? ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1) : a[1].saving > b[1].saving ? -1 : 1
    const active = ([, s]: [string | null, Sums]) => s.read !== 0 || s.creation !== 0 || s.w5 !== 0n || s.w1 !== 0n || s.wastedCost !== 0n
    return {
      ...figures(total),
      by_model: [...models].filter(active).sort(order).map(([model, s]) => ({ model, ...figures(s) })),
      by_provider: [...byProvider].filter(active).map(([id, s]) => [id === null ? null : providers.get(id)!, s, id] as const)
        .sort((a, b) => order([a[0], a[1]], [b[0], b[1]])).map(([name, s, id]) => ({ provider_id: id, provider_name: name, ...figures(s) })),
      start_date: iso(from),
      end_date: iso(to)
    }
  }

  // every range ends two hours before now, so a key's last write in it has outlived both TTLs whenever it is judged
  const end = base + (hours - 2) * HOUR
  const cases: Array<[string, number, number]> = [
    // ragged UTC instants: whole days, hours beside them, raw edges
    [`start_date=${iso(base + 3 * HOUR + 11 * 60_000 + 7)}&end_date=${iso(end - 37 * 60_000)}`, base + 3 * HOUR + 11 * 60_000 + 7, end - 37 * 60_000],
    // the same instants written in +05:30
    [`start_date=${encodeURIComponent(isoWithOffset(base + 5 * HOUR + 1, '+05:30'))}&end_date=${encodeURIComponent(isoWithOffset(end - HOUR / 2, '+05:30'))}`, base + 5 * HOUR + 1, end - HOUR / 2]
  ]
  // local dates in zones off UTC midnight: +05:30 and -05:00 (a local day starts mid-hour or mid-UTC-day)
  for (const [zone, offsetMin] of [['Asia/Kolkata', 330], ['America/New_York', -300], ['Asia/Kathmandu', 345]] as const) {
    const day = (ms: number) => new Date(ms + offsetMin * 60_000).toISOString().slice(0, 10)
    const firstDay = day(base) // its midnight is before base: the first day is partial data, a whole local day of range
    const lastDay = day(end - 26 * HOUR)
    const midnight = (d: string, plus = 0) => Date.parse(`${d}T00:00:00Z`) + plus * 86_400_000 - offsetMin * 60_000
    cases.push([`start_date=${firstDay}&end_date=${lastDay}&timezone=${zone}`, midnight(firstDay), midnight(lastDay, 1)])
  }
  // a daylight-saving change: the local day 2026-03-08 in New York is [05:00Z, 04:00Z next day), 23 hours
  cases.push(['start_date=2026-03-08&end_date=2026-03-08&timezone=America/New_York', Date.parse('2026-03-08T05:00:00Z'), Date.parse('2026-03-09T04:00:00Z')])
  for (const [query, from, to] of cases) {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/cost/savings?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200, query)
    const expected = reference(from, to, null)
    t.ok(expected.cache_savings > 0 && expected.cache_write_premium > 0 && expected.wasted_write_tokens > 0 && expected.by_model.length > 1 && expected.by_provider.length > 1, `${query}: a range with savings, premiums and waste`)
    t.same(res.json(), expected, query)
  }

  // a user's own: their keys only, whatever else the range holds
  const query = `start_date=${iso(base)}&end_date=${iso(end)}`
  const res = await g.app.inject({ method: 'GET', url: `/api/users/me/stats/cost/savings?${query}`, headers: own.headers })
  t.equal(res.statusCode, 200)
  const expected = reference(base, end, own.id)
  t.same(res.json(), expected, 'own savings')
  t.equal(expected.by_model.length, 1, 'only the caller\'s model')
  t.equal(expected.wasted_write_5m_tokens, 3 * 3001, 'the three 5-minute writes expired unread')
  t.ok(expected.net_savings < expected.cache_savings, 'net below gross')

  const empty = await g.app.inject({ method: 'GET', url: `/api/admin/stats/cost/savings?start_date=2020-01-01&end_date=2020-01-02`, headers: g.admin.headers })
  t.same({ ...empty.json(), start_date: undefined, end_date: undefined }, { ...reference(0, 1, null), start_date: undefined, end_date: undefined, wasted_write_tokens: 0, wasted_write_5m_tokens: 0, wasted_write_1h_tokens: 0, wasted_write_cost: 0 }, 'a range without traffic: zeros and no groups')

  for (const bad of ['preset=yesterday&start_date=2026-01-01', 'start_date=2026-13-01', 'start_date=2020-01-01&end_date=2021-06-01', 'timezone=Mars/Olympus', 'tz_offset_minutes=5000']) {
    const refused = await g.app.inject({ method: 'GET', url: `/api/admin/stats/cost/savings?${bad}`, headers: g.admin.headers })
    t.equal(refused.statusCode, 400, bad)
  }
  const forbidden = await g.app.inject({ method: 'GET', url: `/api/admin/stats/cost/savings`, headers: own.headers })
  t.equal(forbidden.statusCode, 403, 'admins only')
})
