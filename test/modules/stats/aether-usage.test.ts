// Aether's usage pages (AETHER.md §4.1, §6, §7.2): the stats carry the heatmap the page
// reads, the admin's global, a user's their own (no actual_total_cost), in APP_TIMEZONE
// days cut at a local midnight that is not on a UTC hour (Asia/Kolkata, 18:30 UTC); the
// user's page in one object, their in-flight poll and interval timeline; the
// aggregation's all-time default and its every-user ranking, read from rollups only.
import t from 'tap'
import type { Sql } from '../../../src/db/prisma.js'
import { aggregate, ALL_TIME } from '../../../src/modules/stats/service.js'
import { gateway, type Json } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'
import { type PlanNode, usageRowsRead } from '../../plans.js'

const DAY = 86_400_000
const ZONE = 'Asia/Kolkata'
const dateOf = (ms: number) => new Date(ms).toISOString().slice(0, 10)
const localToday = () => new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date())

/** 365 zero days ending today (local), with the given days' values laid over them. */
function expectedDays (given: Record<string, Json>, withActual: boolean) {
  const today = localToday()
  return Array.from({ length: 365 }, (_, i) => {
    const date = dateOf(Date.parse(`${today}T00:00:00Z`) - (364 - i) * DAY)
    return { date, requests: 0, total_tokens: 0, total_cost: 0, ...(withActual && { actual_total_cost: 0 }), ...given[date] }
  })
}

t.test('the usage stats carry the heatmap: global for admins, one\'s own for users', async (t) => {
  const g = await gateway(t, { APP_TIMEZONE: ZONE })
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 2 })
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id)
  const bobKey = await g.userKey(bob.id)
  // three UTC days ago: 18:30 UTC there is the local midnight that starts d1
  const t0 = Math.floor(Date.now() / DAY) * DAY - 3 * DAY
  const [d0, d1] = [dateOf(t0), dateOf(t0 + DAY)]
  const at = (ms: number) => new Date(t0 + ms).toISOString()
  const hm = (h: number, m: number, s = 0, msec = 0) => ((h * 60 + m) * 60 + s) * 1000 + msec
  let n = 0
  // 1000 in, 100 out at 3 and 15 USD per 1M: 0.003 + 0.0015 = 0.0045 USD, twice that actual (rate 2)
  const done = (keyId: string, ms: number, more: object = {}) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: keyId, model: 'claude-x', provider_id: provider.id, provider_api_key_id: providerKey.id,
    created_at: at(ms), status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 100, response_time_ms: 1000, ...more
  })
  await g.send([
    done(annKey.id, hm(18, 10)), // d0
    done(annKey.id, hm(18, 29, 59, 999)), // d0, the last millisecond before the local midnight
    done(annKey.id, hm(18, 30)), // d1
    done(annKey.id, hm(18, 45), { status: 'failed', status_code: 502, output_tokens: 0 }), // d1, failed still counts
    done(annKey.id, hm(18, 50), { provider_id: undefined, provider_api_key_id: undefined }), // d1, reached no provider: still a request
    { type: 'start', request_id: 'inflight', api_key_id: annKey.id, model: 'claude-x', created_at: at(hm(18, 20)) }, // counted nowhere
    done(bobKey.id, hm(18, 15)), // bob's: d0
    done(bobKey.id, hm(19, 0)) // bob's: d1
  ])

  const get = async (url: string, headers: { authorization: string }) => {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  // by hand: a completed request 1100 tokens, 0.0045 USD (0.009 actual); the failed one 1000 tokens, 0.003 USD (0.006); the one without provider unpriced at rate 1
  const unpricedNoProvider = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'r5' } })
  const noProviderCost = Number(unpricedNoProvider.totalCost) / 1e9
  t.equal(noProviderCost, 0.0045, 'priced by its model, no provider key')
  const annDays = {
    [d0]: { requests: 2, total_tokens: 2200, total_cost: 0.009 },
    [d1]: { requests: 3, total_tokens: 3200, total_cost: 0.012 }
  }
  const own = await get('/api/users/me/usage/stats', ann.headers)
  t.same(own.activity_heatmap, {
    start_date: expectedDays({}, false)[0]!.date, end_date: localToday(), total_days: 365, max_requests: 3, days: expectedDays(annDays, false)
  }, 'ann\'s own days in Asia/Kolkata, cut at 18:30 UTC, without actual_total_cost')
  t.equal(own.total_requests, 5, 'the totals are hers too')
  const bobs = await get('/api/users/me/usage/stats', bob.headers)
  t.same(bobs.activity_heatmap.days.filter((d: Json) => d.requests > 0), [
    { date: d0, requests: 1, total_tokens: 1100, total_cost: 0.0045 }, { date: d1, requests: 1, total_tokens: 1100, total_cost: 0.0045 }
  ], 'bob sees only his')

  const admin = await get('/api/admin/usage/stats', g.admin.headers)
  const heatmap = await get('/api/admin/usage/heatmap', g.admin.headers)
  t.same(admin.activity_heatmap, heatmap, 'the admin\'s is exactly the heatmap\'s body')
  t.same(admin.activity_heatmap.days.filter((d: Json) => d.requests > 0), [
    { date: d0, requests: 3, total_tokens: 3300, total_cost: 0.0135, actual_total_cost: 0.027 },
    { date: d1, requests: 4, total_tokens: 4300, total_cost: 0.0165, actual_total_cost: 0.0285 }
  ], 'everyone\'s, with actual_total_cost')
  const narrow = await get(`/api/admin/usage/stats?start_date=${encodeURIComponent(at(hm(18, 0)))}&end_date=${encodeURIComponent(at(hm(18, 12)))}`, g.admin.headers)
  t.equal(narrow.total_requests, 1, 'the range shapes the totals')
  t.same(narrow.activity_heatmap, heatmap, 'but not the heatmap: the 365 days ending today, whatever the range')
})

t.test('GET /api/users/me/usage: the caller\'s totals, summaries, heatmap and newest records in the range', async (t) => {
  const g = await gateway(t)
  const [alpha, beta, doomed] = [await g.provider('alpha'), await g.provider('beta'), await g.provider('doomed')]
  const keys = new Map<string, string>()
  for (const [p, rate] of [[alpha, 1.5], [beta, 2], [doomed, 1]] as const) keys.set(p.id, (await g.providerKey(p.id, { rate_multiplier: rate })).id)
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  await g.price({ model: 'gpt-y', tiers: [{ up_to: null, input: 2, output: 8 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  await g.app.prisma.user.update({ where: { id: ann.id }, data: { quota: 5_000_000_000n } })
  const annKey = await g.userKey(ann.id, { name: 'ann-main' })
  const bobKey = await g.userKey(bob.id)
  const adminKey = await g.userKey(g.admin.id)
  const HOUR = 3_600_000
  const base = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR
  const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString()
  const done = (id: string, keyId: string, minutes: number, provider: Json | null, more: object = {}) => ({
    type: 'complete', request_id: id, api_key_id: keyId, model: 'claude-x', created_at: at(minutes), status: 'completed', status_code: 200,
    input_tokens: 1000, output_tokens: 100, response_time_ms: 1000, ...(provider !== null && { provider_id: provider.id, provider_api_key_id: keys.get(provider.id) }), ...more
  })
  await g.send([
    done('a-before', annKey.id, 10, alpha), // before the range
    done('a2', annKey.id, 45, alpha, { response_time_ms: 2000 }), // the ragged start: raw rows
    done('a3', annKey.id, 90, beta, { status: 'failed', status_code: 502, output_tokens: 0, response_time_ms: 500 }),
    done('a4', annKey.id, 130, alpha, { model: 'gpt-y', output_tokens: 200, response_time_ms: undefined }),
    done('a8', annKey.id, 150, doomed),
    done('a5', annKey.id, 185, null), // reached no provider
    { type: 'start', request_id: 'a6', api_key_id: annKey.id, model: 'claude-x', created_at: at(255) }, // in flight: a record, not a total
    done('a-after', annKey.id, 265, alpha), // after the range
    done('b1', bobKey.id, 60, alpha),
    done('admin1', adminKey.id, 100, beta)
  ])
  await g.adminCall('DELETE', `/api/admin/providers/${doomed.id}`)

  const range = `start_date=${encodeURIComponent(at(30))}&end_date=${encodeURIComponent(at(260))}`
  const get = (url: string, headers: { authorization: string } = ann.headers) => g.app.inject({ method: 'GET', url, headers })
  const res = await get(`/api/users/me/usage?${range}&unknown=1&page_size=7`)
  t.equal(res.statusCode, 200, 'unknown parameters are ignored')
  const body = res.json()
  const { used } = await g.app.prisma.user.findUniqueOrThrow({ where: { id: ann.id } })
  // by hand: claude-x 1000/100 = 0.0045 USD, its failed 1000/0 = 0.003, gpt-y 1000/200 = 0.002 + 0.0016 = 0.0036
  t.match(body, {
    total_requests: 5,
    total_tokens: 1100 + 1000 + 1200 + 1100 + 1100,
    total_input_tokens: 5000,
    total_output_tokens: 500,
    total_cost: 0.0201,
    avg_response_time: 1.125, // (2000 + 500 + 1000 + 1000) / 4 ms; a4 reported none
    error_count: 1,
    quota_usd: 5,
    used_usd: Number(used) / 1e9
  }, 'her totals in the range')
  t.notOk('total_actual_cost' in body, 'no operator cost for a user')
  t.same(body.summary_by_model, [
    { model: 'claude-x', requests: 4, input_tokens: 4000, output_tokens: 300, total_tokens: 4300, total_cost_usd: 0.0165 },
    { model: 'gpt-y', requests: 1, input_tokens: 1000, output_tokens: 200, total_tokens: 1200, total_cost_usd: 0.0036 }
  ], 'by model, every finished request, most requests first')
  t.same(body.summary_by_provider, [
    { provider_id: alpha.id, provider: 'alpha', requests: 2, total_tokens: 2300, total_cost_usd: 0.0081, success_rate: 100, avg_response_time_ms: 2000 },
    { provider_id: beta.id, provider: 'beta', requests: 1, total_tokens: 1000, total_cost_usd: 0.003, success_rate: 0, avg_response_time_ms: 500 }
  ], 'by provider: none and the deleted one left out')
  t.same(body.records.map((r: Json) => r.request_id), ['a6', 'a5', 'a8', 'a4', 'a3', 'a2'], 'her records in the range, newest first, in flight too')
  t.same(Object.keys(body.records[0]).sort(), ['api_format', 'api_key', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost', 'created_at', 'error_message',
    'first_byte_time_ms', 'has_fallback', 'id', 'input_tokens', 'is_stream', 'model', 'output_tokens', 'provider', 'request_id', 'response_time_ms', 'status',
    'status_code', 'target_model', 'total_tokens'], 'the fields Aether reads, no operator cost')
  t.match(body.records.find((r: Json) => r.request_id === 'a3'), { provider: 'beta', status: 'failed', status_code: 502, input_tokens: 1000, output_tokens: 0, cost: 0.003, api_key: { name: 'ann-main' } })
  const annRows = await g.app.pg.query(`SELECT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day, count(*)::int AS n
    FROM usage WHERE user_id = $1 AND status IN ('completed', 'failed', 'cancelled') GROUP BY 1`, [ann.id])
  t.same(Object.fromEntries(body.activity_heatmap.days.filter((d: Json) => d.requests > 0).map((d: Json) => [d.date, d.requests])),
    Object.fromEntries(annRows.rows.map((r) => [r.day, r.n])), 'her heatmap: all her finished rows, by UTC day (APP_TIMEZONE)')
  t.equal(body.activity_heatmap.days.length, 365)

  const bobs = (await get(`/api/users/me/usage?${range}`, bob.headers)).json()
  t.match(bobs, { total_requests: 1, total_input_tokens: 1000, summary_by_model: [{ model: 'claude-x', requests: 1 }] }, 'bob sees his own')
  t.same(bobs.records.map((r: Json) => r.request_id), ['b1'])
  const admins = (await get(`/api/users/me/usage?${range}`, g.admin.headers)).json()
  // beta's rate 2: 0.0045 × 2
  t.match(admins, { total_requests: 1, total_actual_cost: 0.009, summary_by_model: [{ actual_total_cost_usd: 0.009 }], records: [{ request_id: 'admin1', actual_cost: 0.009 }] },
    'an admin sees the operator\'s cost of their own requests')
  const fallback = (await get('/api/users/me/usage')).json()
  t.equal(fallback.total_requests, 7, 'no range: the last 30 days')

  for (const query of ['start_date=yesterday', `start_date=${encodeURIComponent(at(260))}&end_date=${encodeURIComponent(at(30))}`,
    'start_date=2024-01-01T00:00:00Z&end_date=2025-06-01T00:00:00Z']) {
    t.equal((await get(`/api/users/me/usage?${query}`)).statusCode, 400, `${query} → 400`)
  }
  t.equal((await g.app.inject({ method: 'GET', url: '/api/users/me/usage' })).statusCode, 401, 'signed out → 401')
  await g.app.pipeline.readAuditsWritten()
  t.ok(await g.app.prisma.auditLog.count({ where: { action: 'own_usage.summary', userId: ann.id } }) >= 2, 'audited')
})

t.test('GET /api/users/me/usage/active: the caller\'s requests only', async (t) => {
  const g = await gateway(t)
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const [annKey, bobKey] = [await g.userKey(ann.id), await g.userKey(bob.id)]
  const now = Date.now()
  const start = (id: string, keyId: string, minutesAgo: number) => ({ type: 'start', request_id: id, api_key_id: keyId, model: 'claude-x', created_at: new Date(now - minutesAgo * 60_000).toISOString() })
  await g.send([
    start('a1', annKey.id, 2), start('a2', annKey.id, 1), start('b1', bobKey.id, 1),
    { ...start('a3', annKey.id, 3), type: 'complete', status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5 }
  ])
  const ids = Object.fromEntries((await g.app.prisma.usage.findMany({ select: { id: true, requestId: true } })).map((r) => [r.requestId, r.id]))
  const get = (query: string, headers: { authorization: string } = ann.headers) => g.app.inject({ method: 'GET', url: `/api/users/me/usage/active${query}`, headers })
  const requestIds = async (query: string, headers?: { authorization: string }) => {
    const res = await get(query, headers)
    t.equal(res.statusCode, 200, query)
    return res.json().requests.map((r: Json) => r.request_id)
  }
  t.same(await requestIds(''), ['a2', 'a1'], 'her requests in flight, newest first')
  t.same(await requestIds('', bob.headers), ['b1'], 'his')
  t.same(await requestIds(`?ids=${ids.a1},${ids.b1},${ids.a3}`), ['a1', 'a3'], 'the given ones of hers, finished too; bob\'s dropped')
  t.same(await requestIds(`?ids=${ids.b1}&_t=123`), [], 'only another\'s: nothing (and an unknown parameter is ignored)')
  const a3 = (await get(`?ids=${ids.a3}`)).json().requests[0]
  t.match(a3, { id: ids.a3, status: 'completed', input_tokens: 10, output_tokens: 5 }, 'the state Aether polls')
  t.same((await g.app.inject({ method: 'GET', url: `/api/admin/usage/active?ids=${ids.a1},${ids.b1}`, headers: g.admin.headers })).json().requests.map((r: Json) => r.request_id).sort(),
    ['a1', 'b1'], 'the admin\'s poll still sees everyone\'s')
  t.equal((await get('?ids=nope')).statusCode, 400, 'a malformed id → 400')
  t.equal((await g.app.inject({ method: 'GET', url: '/api/users/me/usage/active' })).statusCode, 401, 'signed out → 401')
})

t.test('GET /api/users/me/usage/interval-timeline: the caller\'s intervals with their models, Aether\'s ranges', async (t) => {
  const g = await gateway(t)
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const [annKey, bobKey] = [await g.userKey(ann.id), await g.userKey(bob.id)]
  const MIN = 60_000
  const t0 = Math.floor(Date.now() / MIN) * MIN - 120 * MIN
  const done = (id: string, keyId: string, minutes: number, model: string) => ({
    type: 'complete', request_id: id, api_key_id: keyId, model, created_at: new Date(t0 + minutes * MIN).toISOString(), status: 'completed', input_tokens: 100, output_tokens: 10
  })
  await g.send([done('a1', annKey.id, 0, 'm1'), done('a2', annKey.id, 5, 'm1'), done('a3', annKey.id, 15, 'm2'), done('b1', bobKey.id, 1, 'm3'), done('b2', bobKey.id, 3, 'm3')])
  const get = (query: string, headers: { authorization: string } = ann.headers) => g.app.inject({ method: 'GET', url: `/api/users/me/usage/interval-timeline${query}`, headers })

  const res = await get('?hours=24&limit=5000&_=1')
  t.equal(res.statusCode, 200, 'Aether\'s call, an unknown parameter ignored')
  const body = res.json()
  t.match(body, { analysis_period_hours: 24, total_points: 2, models: ['m1', 'm2'] }, 'her two gaps, both models')
  t.same(body.points.map((p: Json) => [p.x, p.y, p.model]), [
    [new Date(t0 + 5 * MIN).toISOString(), 5, 'm1'], [new Date(t0 + 15 * MIN).toISOString(), 10, 'm2']
  ], 'by hand: 5 and 10 minutes, each on its request\'s model')
  t.same(body.points.map((p: Json) => p.user_id), [ann.id, ann.id], 'hers only')
  t.match((await get('', bob.headers)).json(), { analysis_period_hours: 24, total_points: 1, models: ['m3'] }, 'bob\'s: the defaults, his gap')
  t.equal((await get('?limit=20000&hours=720')).statusCode, 200, 'the widest Aether sends')
  for (const query of ['?hours=0', '?hours=721', '?limit=99', '?limit=20001', '?hours=x']) t.equal((await get(query)).statusCode, 400, `${query} → 400`)
  t.equal((await g.app.inject({ method: 'GET', url: '/api/users/me/usage/interval-timeline' })).statusCode, 401, 'signed out → 401')
})

t.test('aggregation/stats without dates: all time; group_by=user without limit: every user with usage', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const now = Date.now()
  const events: object[] = []
  const users: Json[] = []
  // 25 users (more than the old default of 20): user i makes i % 3 + 1 requests an hour ago
  for (let i = 0; i < 25; i++) {
    const user = await g.user({ username: `u${String(i).padStart(2, '0')}` })
    const key = await g.userKey(user.id)
    users.push(user)
    for (let j = 0; j <= i % 3; j++) {
      events.push({
        type: 'complete', request_id: `r${i}-${j}`, api_key_id: key.id, model: 'claude-x', provider_id: alpha.id, api_format: 'claude:messages',
        created_at: new Date(now - 3_600_000 - j * 60_000).toISOString(), status: 'completed', input_tokens: 1000, output_tokens: 100
      })
    }
    // the first user also 40 and 400 days ago: outside the old 30-day window, and older than a year
    if (i === 0) {
      for (const days of [40, 400]) {
        events.push({
          type: 'complete', request_id: `old-${days}`, api_key_id: key.id, model: 'claude-x', provider_id: alpha.id, api_format: 'claude:messages',
          created_at: new Date(now - days * 86_400_000).toISOString(), status: 'completed', input_tokens: 1000, output_tokens: 100
        })
      }
    }
  }
  await g.send(events)
  const get = async (query: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/aggregation/stats?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200, query)
    return res.json()
  }
  // by hand: user i made i % 3 + 1 requests (9 users 1, 8 users 2, 8 users 3), u00 two more long ago
  const expected = users.map((u, i) => [u.username, i % 3 + 1 + (i === 0 ? 2 : 0), u.id] as [string, number, string])
    .sort((a, b) => b[1] - a[1] || (a[2] < b[2] ? -1 : 1)).map(([name, n]) => [name, n])
  const byUser = await get('group_by=user')
  t.equal(byUser.length, 25, 'every user with usage, not the top 20')
  t.same(byUser.map((r: Json) => [r.username, r.request_count]), expected, 'by requests, then by user id')
  t.match(byUser.find((r: Json) => r.username === 'u00'), { request_count: 3, total_tokens: 3300, total_cost: 0.0135 }, 'all time: u00\'s old requests count')
  t.equal((await get('group_by=user&limit=5')).length, 5, 'a limit still limits')
  const total = 9 * 1 + 8 * 2 + 8 * 3 + 2
  t.match(await get('group_by=model'), [{ model: 'claude-x', request_count: total }], 'by model: all time')
  t.match(await get('group_by=api_format'), [{ api_format: 'claude:messages', request_count: total }], 'by format: all time')
  t.match(await get('group_by=provider'), [{ provider: 'alpha', request_count: total }], 'by provider: all time')
  const since = encodeURIComponent(new Date(now - 30 * 86_400_000).toISOString())
  t.match(await get(`group_by=model&start_date=${since}`), [{ request_count: total - 2 }], 'a start date alone: from it to now, as before')
  t.match(await get('group_by=model&days=7&page=2'), [{ request_count: total }], 'Aether\'s extra parameters ignored')
  const stats = await g.app.inject({ method: 'GET', url: '/api/admin/usage/stats?_t=1', headers: g.admin.headers })
  t.equal(stats.statusCode, 200, 'the stats ignore unknown parameters too')
  t.equal(stats.json().total_requests, total - 2, 'the stats keep their 30-day default')
})

t.test('aggregation/stats all time reads no usage row (EXPLAIN ANALYZE of the statements sent)', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const user = await g.user()
  const key = await g.userKey(user.id)
  // 20,000 finished rows over a year, written straight into usage: only a raw read would see them
  await g.app.pg.query(`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_name, model, api_format, status, status_code, input_tokens, output_tokens, total_tokens,
                       response_time_ms, created_at, finished_at, updated_at)
    SELECT gen_random_uuid(), 'raw-' || i, $1, $2, $3, 'alpha', 'm', 'claude:messages', 'completed', 200, 10, 10, 20, 100,
           now() - make_interval(secs => i * 1500), now() - make_interval(secs => i * 1500), now()
      FROM generate_series(1, 20000) AS i`, [user.id, key.id, alpha.id])
  await g.app.pg.query('ANALYZE usage')
  const sent: Array<{ text: string, values: unknown[] }> = []
  const db = {
    query: async (statement: { text: string, values: unknown[] }) => {
      sent.push(statement)
      return g.app.statsPg.query(statement)
    }
  } as unknown as Sql
  /** the answer, and the usage rows its statements read */
  const measured = async (groupBy: 'model' | 'user' | 'provider' | 'api_format', range: typeof ALL_TIME) => {
    sent.length = 0
    const answer = await aggregate(db, groupBy, range)
    let read = 0
    for (const statement of sent) {
      const { rows } = await g.app.pg.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values)
      read += usageRowsRead(rows[0]['QUERY PLAN'][0].Plan as PlanNode)
    }
    return { answer, read, statements: sent.length }
  }
  for (const groupBy of ['model', 'user', 'provider', 'api_format'] as const) {
    const { answer, read, statements } = await measured(groupBy, ALL_TIME)
    t.same(answer, [], `${groupBy}: the rollups hold none of them`)
    t.equal(read, 0, `${groupBy}: ${statements} statement(s), no usage row read`)
  }
  // the check can fail: a range inside one hour (:10 to :50, three hours ago) is read from usage inside its cut quarter-hours, where a row sits at :12
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000
  await g.app.pg.query(`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_name, model, api_format, status, status_code, input_tokens, output_tokens, total_tokens,
                       response_time_ms, created_at, finished_at, updated_at)
    VALUES (gen_random_uuid(), 'raw-ragged', $1, $2, $3, 'alpha', 'm', 'claude:messages', 'completed', 200, 10, 10, 20, 100, $4, $4, now())`,
  [user.id, key.id, alpha.id, new Date(hour + 12 * 60_000)])
  const ragged = await measured('model', { start: new Date(hour + 10 * 60_000), end: new Date(hour + 50 * 60_000) })
  t.match(ragged.answer, [{ model: 'm' }])
  t.ok(ragged.read > 0, `a ragged range read ${ragged.read} usage rows`)
})
