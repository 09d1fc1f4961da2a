// Prompt-cache analytics through HTTP: worked examples with hand-computed answers
// (TTL rule, distribution, percentiles, cost model; net savings and wasted writes;
// timeline sampling), late arrivals, scoping, bad input, and a property test of the
// histogram answers against the same analysis computed from the raw rows.
import t, { type Test } from 'tap'
import { EDGES, binOf, FIRST_BIN, lastBinWithin } from '../../../src/modules/accounting/cache/bins.js'
import { windowStart } from '../../../src/modules/cache/service.js'
import { mulberry32, testSeed } from '../../prng.js'
import { gateway, UNKNOWN_UUID, type Gateway, type Json } from '../gateway/fixtures.js'

const MIN = 60_000
const HOUR = 60 * MIN

t.test('bins: anchors are edges, neighbours within 2%, a gap on an edge belongs to the bin below', async (t) => {
  for (const anchor of [1_000, 5 * MIN, 15 * MIN, 30 * MIN, 60 * MIN, 120 * MIN]) {
    t.ok(EDGES.includes(anchor), `${anchor} ms is an edge`)
    t.equal(binOf(anchor), lastBinWithin(anchor), `${anchor} ms falls in the bin that ends there`)
    t.equal(binOf(anchor + 1), lastBinWithin(anchor) + 1, `${anchor + 1} ms in the next`)
  }
  const widest = Math.max(...EDGES.slice(1).map((edge, i) => edge / EDGES[i]!))
  t.ok(widest <= 1.02, `widest bin ratio ${widest.toFixed(4)} ≤ 1.02`)
  t.equal(binOf(0), 0)
  t.equal(binOf(10 ** 12), EDGES.length, 'past the last edge: the open bin')
  t.equal(FIRST_BIN, -1)
})

/** A user with one key, and completed requests of that key made at the given times. */
async function rhythm (g: Gateway, model: string, times: number[], extra: (i: number) => object = () => ({})) {
  const user = await g.user()
  const key = await g.userKey(user.id)
  const events = times.map((at, i) => ({
    type: 'complete', request_id: `${key.id}-${i}`, api_key_id: key.id, model, created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, ...extra(i)
  }))
  return { user, key, events }
}

const every = (start: number, gapMinutes: number[]) => gapMinutes.reduce((times, gap) => [...times, times.at(-1)! + gap * MIN], [start])
const close = (t: Test, got: number, want: number, what: string) => t.ok(Math.abs(got - want) < 1e-4, `${what}: ${got} ≈ ${want}`)

t.test('ttl-analysis: worked examples (2, 20 and 150 minute rhythms, a mixed one), late arrivals, scoping', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm1', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const start = Math.floor(Date.now() / HOUR) * HOUR - 100 * HOUR
  const a = await rhythm(g, 'm1', every(start, Array(10).fill(2)))
  const b = await rhythm(g, 'm1', every(start, Array(8).fill(20)))
  const c = await rhythm(g, 'unpriced-model', every(start, Array(4).fill(150)))
  const d = await rhythm(g, 'm1', every(start, [1, 3, 4, 10, 20, 45, 90]))
  // a's events one by one, newest first: every one but the first arrives late and splits a gap
  for (const event of [...a.events].reverse()) await g.send([event])
  await g.send([...b.events, ...c.events])
  await g.send([d.events[6]!, d.events[0]!, d.events[3]!])
  await g.send([d.events[5]!, d.events[1]!, d.events[2]!, d.events[4]!, d.events[7]!])

  const res = await g.adminCall('GET', '/api/admin/usage/cache-affinity/ttl-analysis')
  t.equal(res.analysis_period_hours, 168)
  t.equal(res.total_users_analyzed, 4)
  t.same(res.ttl_distribution, { '5min': 1, '15min': 0, '30min': 1, '60min': 2 })
  const group = (id: string) => res.users.find((u: Json) => u.group_id === id) as Json
  const ga = group(a.user.id)
  t.match(ga, {
    group_type: 'user', username: a.user.username, request_count: 11,
    interval_distribution: { within_5min: 10, within_15min: 0, within_30min: 0, within_60min: 0, over_60min: 0 },
    interval_percentages: { within_5min: 100, within_15min: 0, within_30min: 0, within_60min: 0, over_60min: 0 },
    percentiles: { p50: 2, p75: 2, p90: 2 }, avg_interval_minutes: 2, min_interval_minutes: 2, max_interval_minutes: 2,
    recommended_ttl_minutes: 5,
    cost_model: {
      model: 'm1', priced: true, ratios: { cache_write_5m: 1.25, cache_write_1h: 2, cache_read: 0.1 }, cheapest: '5m',
      // (1.25 + 10 × 0.1) / 11 and (2 + 10 × 0.1) / 11
      relative_cost: { none: 1, ttl_5m: 0.2045, ttl_1h: 0.2727 },
      saving_vs_none_pct: 79.55
    }
  })
  // × the input price, USD 3 per 1M
  t.same(ga.cost_model.usd_per_1m_prefix_tokens, { none: 3, ttl_5m: 0.613636, ttl_1h: 0.818182 })
  t.match(ga.recommendation_reason, /recommend 5 minutes.*a 5-minute cache, 79.55% below/)

  t.match(group(b.user.id), {
    request_count: 9,
    interval_distribution: { within_5min: 0, within_15min: 0, within_30min: 8, within_60min: 0, over_60min: 0 },
    percentiles: { p50: 20, p75: 20, p90: 20 }, recommended_ttl_minutes: 30,
    // (1.25 + 8 × 1.25) / 9 and (2 + 8 × 0.1) / 9
    cost_model: { cheapest: '1h', relative_cost: { ttl_5m: 1.25, ttl_1h: 0.3111 }, saving_vs_none_pct: 68.89 }
  })
  t.match(group(c.user.id), {
    request_count: 5,
    interval_distribution: { over_60min: 4 },
    percentiles: { p50: 150, p75: 150, p90: 150 }, recommended_ttl_minutes: 60,
    cost_model: { model: 'unpriced-model', priced: false, usd_per_1m_prefix_tokens: null, cheapest: 'none', saving_vs_none_pct: 0, relative_cost: { ttl_5m: 1.25, ttl_1h: 2 } }
  })
  const gd = group(d.user.id)
  t.match(gd, {
    request_count: 8,
    interval_distribution: { within_5min: 3, within_15min: 1, within_30min: 1, within_60min: 1, over_60min: 1 },
    interval_percentages: { within_5min: 42.86, within_15min: 14.29, within_30min: 14.29, within_60min: 14.29, over_60min: 14.29 },
    // nearest rank over 1 3 4 10 20 45 90: ranks 4, 6, 7
    percentiles: { p50: 10, p75: 45, p90: 90 },
    avg_interval_minutes: 24.71, min_interval_minutes: 1, max_interval_minutes: 90,
    recommended_ttl_minutes: 60,
    cost_model: { cheapest: '1h', relative_cost: { ttl_1h: 0.575 }, saving_vs_none_pct: 42.5 }
  })
  // (1.25 + 3 × 0.1 + 4 × 1.25) / 8
  close(t, gd.cost_model.relative_cost.ttl_5m, 0.8188, 'd: 5-minute cost')

  // one user; one key; by key; unknown ids; a short window
  const onlyA = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?user_id=${a.user.id}`)
  t.same(onlyA.users.map((u: Json) => u.group_id), [a.user.id])
  const byKey = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?group_by=api_key&user_id=${b.user.id}`)
  t.match(byKey.users, [{ group_id: b.key.id, group_type: 'api_key', api_key_name: b.key.name, username: b.user.username, request_count: 9 }])
  const oneKey = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?api_key_id=${d.key.id}`)
  t.match(oneKey.users, [{ group_id: d.key.id, percentiles: { p50: 10, p75: 45, p90: 90 } }])
  for (const query of [`user_id=${UNKNOWN_UUID}`, `api_key_id=${UNKNOWN_UUID}`, 'hours=1']) {
    const empty = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?${query}`)
    t.same({ n: empty.total_users_analyzed, users: empty.users }, { n: 0, users: [] }, `${query}: an empty analysis`)
  }

  // a user's own view: their groups only, whatever they ask for
  const own = await g.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: a.user.username, password: 'correct-horse-battery' } })
  const headers = { authorization: `Bearer ${own.json().access_token as string}` }
  const mine = (await g.app.inject({ method: 'GET', url: '/api/users/me/usage/cache-affinity/ttl-analysis', headers })).json()
  t.same(mine.users.map((u: Json) => u.group_id), [a.user.id], 'own analysis: only the caller')
  const theirs = (await g.app.inject({ method: 'GET', url: `/api/users/me/usage/cache-affinity/ttl-analysis?api_key_id=${b.key.id}`, headers })).json()
  t.same(theirs.users, [], 'another user\'s key: nothing')
  const notAllowed = await g.app.inject({ method: 'GET', url: `/api/users/me/usage/cache-affinity/ttl-analysis?user_id=${b.user.id}`, headers })
  t.equal(notAllowed.statusCode, 400, 'user_id is not a parameter of the own view')
  const ownTimeline = (await g.app.inject({ method: 'GET', url: '/api/users/me/usage/cache-affinity/interval-timeline?hours=168', headers })).json()
  t.same(new Set(ownTimeline.points.map((p: Json) => p.user_id)), new Set([a.user.id]), 'own timeline: only the caller\'s points')
  t.equal(ownTimeline.total_points, 10)
  const ownHits = (await g.app.inject({ method: 'GET', url: '/api/users/me/usage/cache-affinity/hit-analysis', headers })).json()
  t.equal(ownHits.total_requests, 11, 'own hit analysis: the caller\'s requests')
})

t.test('hit-analysis: net savings and wasted writes, worked example, the same whatever the arrival order', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm1', tiers: [{ up_to: null, input: 3, output: 15 }] }) // cache 3.75 / 6 / 0.30 per 1M
  const T = Date.now() - 3 * HOUR
  const plan = [
    { at: 0, input: 100, w5: 1000, w1: 0, read: 0 },
    { at: 2, input: 100, w5: 0, w1: 0, read: 1000 }, // reads r0's write
    { at: 10, input: 100, w5: 0, w1: 2000, read: 0 }, // next request 70 min later: 1h write wasted
    { at: 80, input: 100, w5: 0, w1: 0, read: 0 },
    { at: 85, input: 100, w5: 400, w1: 0, read: 0 }, // next 10 min later: 5m write wasted
    { at: 95, input: 50, w5: 200, w1: 0, read: 0 } // the key's last request, 85 minutes ago: its 5m write expired unread
  ]
  const { key, user, events } = await rhythm(g, 'm1', plan.map((p) => T + p.at * MIN), (i) => ({
    input_tokens: plan[i]!.input, cache_creation_5m_input_tokens: plan[i]!.w5, cache_creation_1h_input_tokens: plan[i]!.w1, cache_read_input_tokens: plan[i]!.read
  }))
  // r3 arrives last: until then r2's next request is r4, 75 minutes later
  await g.send([events[0]!, events[1]!, events[2]!, events[4]!, events[5]!])
  await g.send([events[3]!])
  const expected = {
    analysis_period_hours: 168,
    total_requests: 6,
    requests_with_cache_hit: 1,
    request_cache_hit_rate: 16.67,
    total_input_tokens: 550,
    total_cache_read_tokens: 1000,
    total_cache_creation_tokens: 3600,
    cache_creation_5m_tokens: 1600,
    cache_creation_1h_tokens: 2000,
    token_cache_hit_rate: 19.42, // 1000 / (550 + 3600 + 1000)
    total_cache_read_cost_usd: 0.0003, // 1000 × 0.30 / 1M
    total_cache_creation_cost_usd: 0.018, // 1600 × 3.75 / 1M + 2000 × 6 / 1M
    // 1000 × (3 − 0.30) − 1600 × (3.75 − 3) − 2000 × (6 − 3), per 1M: 0.0027 − 0.0012 − 0.006
    estimated_savings_usd: -0.0045,
    savings_breakdown: { read_savings_usd: 0.0027, write_5m_premium_usd: 0.0012, write_1h_premium_usd: 0.006 },
    wasted_write_tokens: 2600,
    wasted_write_5m_tokens: 600,
    wasted_write_1h_tokens: 2000,
    wasted_write_cost_usd: 0.01425 // 2000 × 6 + 600 × 3.75, per 1M
  }
  t.same(await g.adminCall('GET', '/api/admin/usage/cache-affinity/hit-analysis'), expected)
  t.same(await g.adminCall('GET', `/api/admin/usage/cache-affinity/hit-analysis?api_key_id=${key.id}`), expected, 'by key')
  t.same(await g.adminCall('GET', `/api/admin/usage/cache-affinity/hit-analysis?user_id=${user.id}`), expected, 'by user')
  const none = await g.adminCall('GET', `/api/admin/usage/cache-affinity/hit-analysis?user_id=${UNKNOWN_UUID}`)
  t.match(none, { total_requests: 0, request_cache_hit_rate: 0, estimated_savings_usd: 0, wasted_write_tokens: 0 }, 'unknown user: zeros')

  // a request right now that writes: its TTL has not passed, so nothing more is wasted yet
  await g.send([{ ...events[5]!, request_id: `${key.id}-now`, created_at: new Date().toISOString(), cache_creation_5m_input_tokens: 300 }])
  const later = await g.adminCall('GET', '/api/admin/usage/cache-affinity/hit-analysis')
  // the old last request is now followed 85 minutes later (its write still wasted); the new one is within its TTL
  t.equal(later.wasted_write_tokens, 2600, 'the fresh write is not wasted before its TTL')
  t.equal(later.cache_creation_5m_tokens, 1900)
})

t.test('interval-timeline: all points when few, an even and stable sample when many, long gaps left out', async (t) => {
  const g = await gateway(t)
  const start = Math.floor(Date.now() / HOUR) * HOUR - 20 * HOUR
  // 600 requests a minute apart over 10 hours, a gap of 3 hours, then 5 more a minute apart
  const times = [...every(start, Array(599).fill(1)), ...every(start + 599 * MIN + 180 * MIN, Array(4).fill(1))]
  const { user, events } = await rhythm(g, 'm1', times)
  await g.send(events.slice(0, 500))
  await g.send(events.slice(500))

  const all = await g.adminCall('GET', '/api/admin/usage/cache-affinity/interval-timeline?limit=1000&include_user_info=true')
  t.equal(all.total_points, 603, '604 requests: the first and the one after 3 hours have no point')
  t.equal(all.points.length, 603, 'fewer than limit: every point')
  t.ok(all.points.every((p: Json) => p.y === 1 && p.user_id === user.id && p.model === 'm1'), 'each point is a 1-minute gap')
  t.same(all.users, { [user.id]: user.username })
  t.same(all.models, ['m1'])

  const sample = await g.adminCall('GET', '/api/admin/usage/cache-affinity/interval-timeline?limit=100')
  t.equal(sample.total_points, 603)
  t.ok(sample.points.length >= 90 && sample.points.length <= 100, `${sample.points.length} points, at most the limit`)
  t.equal(sample.users, undefined, 'no user info unless asked')
  const xs = sample.points.map((p: Json) => Date.parse(p.x))
  t.same(xs, [...xs].sort((p: number, q: number) => p - q), 'oldest first')
  t.ok(xs[0]! < start + HOUR, 'the sample starts in the first hour of traffic')
  t.ok(xs.at(-1)! >= start + 9 * HOUR, 'and reaches its last hours')
  // across the 10 busy hours (the 3-hour pause has no points to sample)
  const busy = xs.filter((x: number) => x < start + 10 * HOUR)
  const steps = busy.slice(1).map((x: number, i: number) => x - busy[i]!)
  t.ok(busy.length >= 90 && Math.max(...steps) <= 15 * MIN, `no hole in the sample (largest step ${Math.max(...steps) / MIN} min)`)
  t.same(await g.adminCall('GET', '/api/admin/usage/cache-affinity/interval-timeline?limit=100'), sample, 'the same sample on a second call')
  const other = await g.adminCall('GET', `/api/admin/usage/cache-affinity/interval-timeline?limit=100&user_id=${UNKNOWN_UUID}`)
  t.same({ total: other.total_points, points: other.points }, { total: 0, points: [] })
})

t.test('bad input is a 400; unknown ids are an empty analysis', async (t) => {
  const g = await gateway(t)
  const bad = [
    'ttl-analysis?hours=0', 'ttl-analysis?hours=721', 'ttl-analysis?group_by=model', 'ttl-analysis?user_id=nope', 'ttl-analysis?api_key_id=123',
    'hit-analysis?hours=0', 'hit-analysis?hours=721', 'hit-analysis?user_id=x',
    'interval-timeline?limit=99', 'interval-timeline?limit=50001', 'interval-timeline?hours=721', 'interval-timeline?user_id=1', 'interval-timeline?include_user_info=maybe',
    'ttl-analysis?unknown=1'
  ]
  for (const query of bad) {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/cache-affinity/${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, `${query} → 400`)
    t.type(res.json().error?.message ?? res.json().message, 'string')
  }
  for (const path of ['ttl-analysis', 'hit-analysis', 'interval-timeline']) {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/cache-affinity/${path}` })
    t.equal(res.statusCode, 401, `${path} without credentials → 401`)
  }
})

t.test('property: histogram answers equal the analysis of the raw rows, late arrivals included', async (t) => {
  const rng = mulberry32(testSeed(t))
  const g = await gateway(t)
  await g.price({ model: 'm1', tiers: [{ up_to: null, input: 2, output: 10 }] })
  const start = Math.floor(Date.now() / HOUR) * HOUR - 60 * HOUR
  const groups = []
  for (let u = 0; u < 4; u++) {
    const scale = [0.5, 4, 25, 90][u]! // typical gap in minutes
    const times: number[] = [start - Math.floor(rng() * 30) * HOUR] // some history before the 24-hour window
    while (times.length < 120) times.push(times.at(-1)! + Math.floor(rng() * rng() * 2 * scale * MIN) + Math.floor(rng() * 1000))
    groups.push(await rhythm(g, 'm1', times.filter((x) => x < Date.now() - MIN)))
  }
  // every request in a random batch, in random order
  const all = groups.flatMap((x) => x.events).sort(() => rng() - 0.5)
  for (let i = 0; i < all.length;) {
    const size = 1 + Math.floor(rng() * 60)
    await g.send(all.slice(i, i + size))
    i += size
  }
  const hours = 24
  const from = windowStart(hours).getTime()
  const res = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?hours=${hours}`)
  const rows = await g.app.pg.query<{ user_id: string, created_at: Date, request_id: string }>(
    `SELECT user_id, created_at, request_id FROM usage WHERE status = 'completed' ORDER BY user_id, created_at, request_id`)
  for (const group of groups) {
    const mine = rows.rows.filter((r) => r.user_id === group.user.id)
    const inWindow = mine.map((r, i) => ({ at: r.created_at.getTime(), gap: i === 0 ? null : r.created_at.getTime() - mine[i - 1]!.created_at.getTime() }))
      .filter((r) => r.at >= from)
    const gaps = inWindow.flatMap((r) => r.gap === null ? [] : [r.gap]).sort((p, q) => p - q)
    const got = res.users.find((u: Json) => u.group_id === group.user.id) as Json | undefined
    if (gaps.length === 0) { t.equal(got, undefined, 'no gaps in the window: no group'); continue }
    const n = gaps.length
    const within = (m: number) => gaps.filter((x) => x <= m * MIN).length
    const dist = { within_5min: within(5), within_15min: within(15) - within(5), within_30min: within(30) - within(15), within_60min: within(60) - within(30), over_60min: n - within(60) }
    const rank = (q: number) => gaps[Math.max(1, Math.ceil(q * n)) - 1]! / MIN
    const rule = within(5) >= Math.ceil(0.9 * n) ? 5 : within(15) >= Math.ceil(0.75 * n) ? 15 : within(30) >= Math.ceil(0.75 * n) ? 30 : 60
    t.same({ requests: got!.request_count, dist: got!.interval_distribution, ttl: got!.recommended_ttl_minutes },
      { requests: inWindow.length, dist, ttl: rule }, `user ${group.user.username}: ${n} gaps, counts and TTL exact`)
    t.ok(Math.abs(got!.avg_interval_minutes - gaps.reduce((s, x) => s + x, 0) / n / MIN) <= 0.005, 'average exact (to 2 decimals)')
    for (const [name, want] of [['p50', rank(0.5)], ['p75', rank(0.75)], ['p90', rank(0.9)], ['min', gaps[0]! / MIN], ['max', gaps.at(-1)! / MIN]] as const) {
      const value = name === 'min' ? got!.min_interval_minutes : name === 'max' ? got!.max_interval_minutes : got!.percentiles[name]
      t.ok(Math.abs(value - want) <= Math.max(0.02 * want, 0.01 + 1000 / MIN), `${name} ${value} within 2% of ${want.toFixed(4)}`)
    }
    const r = 0.1
    const costs = { ttl_5m: (1.25 + within(5) * r + (n - within(5)) * 1.25) / (n + 1), ttl_1h: (2 + within(60) * r + (n - within(60)) * 2) / (n + 1) }
    close(t, got!.cost_model.relative_cost.ttl_5m, Math.round(costs.ttl_5m * 1e4) / 1e4, '5-minute cost')
    close(t, got!.cost_model.relative_cost.ttl_1h, Math.round(costs.ttl_1h * 1e4) / 1e4, '1-hour cost')
  }
})
