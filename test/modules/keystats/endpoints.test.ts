// /api/key-stats: each answer's numbers for the calling key only, the three ways to
// send the key, every refusal (a key id alone, unknown, malformed, disabled, expired,
// disabled owner) and the per-address rate limit.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../../src/app.js'
import keyStatsRoutes from '../../../src/modules/keystats/routes.js'
import { createDatabase, testConfig } from '../../helper.js'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'

const DAY = 86_400_000
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string, label: string) {
  t.equal(res.statusCode, status, `${label}: ${status}`)
  t.match(res.json(), { error: { type, message: String }, request_id: String }, `${label}: error.type ${type}`)
}

/**
 * Two keys with hand-priced traffic (APP_TIMEZONE is UTC). Prices in nano-USD per
 * token: alpha 3000 in / 15000 out / 3750 cache write (5m) / 300 cache read; beta
 * 1000 in / 2000 out. `recent` rows sit in the last 60 s (clamped to today's midnight).
 */
async function traffic (g: Gateway) {
  await g.price({ model: 'alpha', tiers: [{ up_to: null, input: 3, output: 15 }] })
  await g.price({ model: 'beta', tiers: [{ up_to: null, input: 1, output: 2 }] })
  const owner = await g.user()
  const a = await g.userKey(owner.id, {
    rate_limit: 100, concurrent_limit: 5, daily_cost_limit_usd: 10, total_cost_limit_usd: 50,
    allowed_models: ['alpha', 'beta'], expire_days: 30
  })
  const b = await g.standaloneKey({ initial_balance_usd: 5 })
  const now = Date.now()
  const midnight = Math.floor(now / DAY) * DAY
  const recent = (seconds: number) => new Date(Math.max(now - seconds * 1000, midnight)).toISOString()
  const ago = (hours: number) => new Date(now - hours * 3_600_000).toISOString()
  const done = (requestId: string, key: Json, model: string, at: string, tokens: { in: number, out: number, write?: number, read?: number }, status = 'completed') => ({
    type: 'complete', request_id: requestId, api_key_id: key.id, model, created_at: at, status,
    input_tokens: tokens.in, output_tokens: tokens.out,
    cache_creation_input_tokens: tokens.write ?? 0, cache_creation_5m_input_tokens: tokens.write ?? 0, cache_read_input_tokens: tokens.read ?? 0
  })
  const rows = {
    // 1000×3000 + 100×15000 + 400×3750 + 2000×300 = 6 600 000; tokens 3500
    a1: { at: recent(10), event: done('a1', a, 'alpha', recent(10), { in: 1000, out: 100, write: 400, read: 2000 }) },
    // a failed request is a finished one: 200×1000 = 200 000; tokens 200
    a2: { at: recent(20), event: done('a2', a, 'beta', recent(20), { in: 200, out: 0 }, 'failed') },
    // 10000×3000 + 1000×15000 = 45 000 000; tokens 11 000
    a4: { at: ago(23), event: done('a4', a, 'alpha', ago(23), { in: 10_000, out: 1000 }) },
    // 5000×1000 + 5000×2000 = 15 000 000; tokens 10 000
    a5: { at: ago(72), event: done('a5', a, 'beta', ago(72), { in: 5000, out: 5000 }) },
    // the other key: 50000×3000 = 150 000 000; and an unpriced model
    b1: { at: recent(15), event: done('b1', b, 'alpha', recent(15), { in: 50_000, out: 0 }) },
    b2: { at: ago(2), event: done('b2', b, 'gamma', ago(2), { in: 100, out: 100 }) }
  }
  const results = await g.send([
    ...Object.values(rows).map((row) => row.event),
    // in flight: in the rate window, in no total
    { type: 'start', request_id: 'a3', api_key_id: a.id, model: 'alpha', api_format: 'openai:chat', created_at: recent(5) }
  ])
  for (const result of results) if (result.outcome !== 'recorded') throw new Error(JSON.stringify(result))
  return { a, b, owner, rows, midnight, now }
}

const post = (g: Gateway, url: string, payload: object, headers: Record<string, string> = {}) =>
  g.app.inject({ method: 'POST', url: `/api/key-stats/${url}`, payload, headers })

t.test('user-stats: the calling key\'s totals, limits and restrictions, whichever way the key is sent', async (t) => {
  const g = await gateway(t)
  const { a, b, midnight } = await traffic(g)
  const aToday = Date.now() - 23 * 3_600_000 >= midnight // a4 (23 h ago) is today only late in the UTC day
  const viaBody = await post(g, 'user-stats', { api_key: a.key })
  const viaCamel = await post(g, 'user-stats', { apiKey: a.key })
  const viaBearer = await post(g, 'user-stats', {}, bearer(a.key))
  const noBody = await g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: bearer(a.key) })
  for (const res of [viaBody, viaCamel, viaBearer, noBody]) t.equal(res.statusCode, 200, res.body)
  const stats = viaBody.json()
  t.match(stats, {
    id: a.id,
    name: a.name,
    is_active: true,
    created_at: a.created_at,
    expires_at: a.expires_at,
    usage: { requests: 4, input_tokens: 16_200, output_tokens: 6100, cache_creation_tokens: 400, cache_read_tokens: 2000, total_tokens: 24_700, cost_usd: 0.0668 },
    limits: {
      rate_limit: 100,
      current_window_requests: 3, // a1, a2 and the in-flight a3
      concurrent_limit: 5,
      daily_cost_limit_usd: 10,
      today_cost_usd: aToday ? 0.0518 : 0.0068,
      total_cost_limit_usd: 50,
      remaining_balance_usd: null
    },
    restrictions: { allowed_models: ['alpha', 'beta'], allowed_providers: null, allowed_api_formats: null }
  })
  const resets = stats.limits.window_resets_in_seconds as number
  t.ok(resets >= 39 && resets <= 41, `the window resets when a2 (20 s old) leaves it: ${resets} s`)
  t.same(viaCamel.json().usage, stats.usage, 'apiKey answers the same')
  t.same(viaBearer.json().usage, stats.usage, 'the bearer answers the same')

  const other = (await post(g, 'user-stats', {}, bearer(b.key))).json()
  t.match(other, {
    id: b.id,
    usage: { requests: 2, input_tokens: 50_100, output_tokens: 100, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: 50_200, cost_usd: 0.15 },
    limits: { rate_limit: null, current_window_requests: 1, today_cost_usd: 0.15, remaining_balance_usd: 4.85 },
    restrictions: { allowed_models: null }
  })

  // a key with no traffic: zeros, and an empty window resets in 0 s
  const idle = await g.standaloneKey()
  t.match((await post(g, 'user-stats', { api_key: idle.key })).json(), {
    usage: { requests: 0, total_tokens: 0, cost_usd: 0 },
    limits: { current_window_requests: 0, window_resets_in_seconds: 0, today_cost_usd: 0, remaining_balance_usd: null }
  })
})

t.test('user-model-stats: per model, sorted by tokens, for the calling key only', async (t) => {
  const g = await gateway(t)
  const { a, b, rows, midnight, now } = await traffic(g)
  const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)
  const since = (start: number) => (at: string) => new Date(at).getTime() >= start
  const today = since(midnight)
  const thisMonth = since(monthStart)

  const daily = await post(g, 'user-model-stats', { api_key: a.key, period: 'daily' })
  t.equal(daily.statusCode, 200, daily.body)
  // a1 and a2 are always today; a4 (23 h ago) only when it falls after midnight
  const alphaToday = today(rows.a4.at)
    ? { requests: 2, input_tokens: 11_000, output_tokens: 1100, cache_creation_tokens: 400, cache_read_tokens: 2000, total_tokens: 14_500, cost_usd: 0.0516 }
    : { requests: 1, input_tokens: 1000, output_tokens: 100, cache_creation_tokens: 400, cache_read_tokens: 2000, total_tokens: 3500, cost_usd: 0.0066 }
  t.same(daily.json(), {
    period: 'daily',
    models: [
      { model: 'alpha', ...alphaToday },
      { model: 'beta', requests: 1, input_tokens: 200, output_tokens: 0, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: 200, cost_usd: 0.0002 }
    ]
  })

  const monthly = await post(g, 'user-model-stats', { period: 'monthly' }, bearer(a.key))
  t.equal(monthly.statusCode, 200, monthly.body)
  const alphaMonth = thisMonth(rows.a4.at) ? { requests: 2, total_tokens: 14_500, cost_usd: 0.0516 } : { requests: 1, total_tokens: 3500, cost_usd: 0.0066 }
  const betaMonth = thisMonth(rows.a5.at) ? { requests: 2, total_tokens: 10_200, cost_usd: 0.0152 } : { requests: 1, total_tokens: 200, cost_usd: 0.0002 }
  const expected = [{ model: 'alpha', ...alphaMonth }, { model: 'beta', ...betaMonth }].sort((x, y) => y.total_tokens - x.total_tokens)
  t.match(monthly.json(), { period: 'monthly', models: expected })
  t.equal(monthly.json().models.length, 2)

  const camel = await post(g, 'user-model-stats', { apiKey: b.key, period: 'daily' })
  const models = camel.json().models as Json[]
  t.notOk(models.some((m) => m.model === 'beta'), 'the other key never sees this key\'s models')
  t.match(models[0], { model: 'alpha', requests: 1, input_tokens: 50_000, cost_usd: 0.15 })

  refused(t, await post(g, 'user-model-stats', { api_key: a.key, period: 'weekly' }), 400, 'validation_error', 'an unknown period')
  refused(t, await post(g, 'user-model-stats', { api_key: a.key }), 400, 'validation_error', 'no period')
})

t.test('daily-usage: one point per local day over the last 30 days, zeros included, and the same days per model', async (t) => {
  const g = await gateway(t)
  const { a, b, rows, now } = await traffic(g)
  const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)
  const today = Math.floor(now / DAY) * DAY
  // hand-priced rows of key a (see traffic): nano-USD and tokens per row
  const expectedDays = new Map<string, { requests: number, total_tokens: number, cost: number }>()
  for (const [row, cost, tokens] of [[rows.a1, 6_600_000, 3500], [rows.a2, 200_000, 200], [rows.a4, 45_000_000, 11_000], [rows.a5, 15_000_000, 10_000]] as const) {
    const date = row.at.slice(0, 10)
    const day = expectedDays.get(date) ?? { requests: 0, total_tokens: 0, cost: 0 }
    expectedDays.set(date, { requests: day.requests + 1, total_tokens: day.total_tokens + tokens, cost: day.cost + cost })
  }
  const res = await post(g, 'daily-usage', { api_key: a.key })
  t.equal(res.statusCode, 200, res.body)
  const answer = res.json()
  t.equal(answer.time_zone, 'UTC')
  t.equal(answer.start, `${utcDay(today - 29 * DAY)}T00:00:00.000Z`, 'from the local midnight 29 days before today')
  t.ok(Math.abs(Date.parse(answer.end) - Date.now()) < 60_000, 'to now')
  t.equal(answer.days.length, 30, 'thirty days, today included')
  t.same(answer.days, Array.from({ length: 30 }, (_, i) => {
    const date = utcDay(today - (29 - i) * DAY)
    const day = expectedDays.get(date)
    return { date, requests: day?.requests ?? 0, total_tokens: day?.total_tokens ?? 0, cost_usd: (day?.cost ?? 0) / 1e9 }
  }))
  t.equal(answer.days.filter((day: Json) => day.requests > 0).length, expectedDays.size, 'only the days with requests are non-zero')
  t.same(answer.models, [
    { model: 'alpha', requests: 2, input_tokens: 11_000, output_tokens: 1100, cache_creation_tokens: 400, cache_read_tokens: 2000, total_tokens: 14_500, cost_usd: 0.0516 },
    { model: 'beta', requests: 2, input_tokens: 5200, output_tokens: 5000, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: 10_200, cost_usd: 0.0152 }
  ], 'per model over the 30 days, most cost first')

  // three days end before a5 (72 h ago, on the fourth day back)
  const three = (await post(g, 'daily-usage', { days: 3 }, bearer(a.key))).json()
  t.same(three.days.map((day: Json) => day.date), [utcDay(today - 2 * DAY), utcDay(today - DAY), utcDay(today)])
  t.match(three.models.find((m: Json) => m.model === 'beta'), { requests: 1, total_tokens: 200, cost_usd: 0.0002 })

  // the other key: its own rows only, the unpriced gamma at zero cost after alpha
  const other = (await post(g, 'daily-usage', { apiKey: b.key })).json()
  t.same(other.models.map((m: Json) => [m.model, m.requests, m.cost_usd]), [['alpha', 1, 0.15], ['gamma', 1, 0]])

  for (const days of [0, 91, 1.5, '30']) refused(t, await post(g, 'daily-usage', { api_key: a.key, days }), 400, 'validation_error', `days ${JSON.stringify(days)}`)
  refused(t, await post(g, 'daily-usage', { api_key: `sk-${'A'.repeat(48)}` }), 401, 'unauthorized', 'an unknown key')
  refused(t, await post(g, 'daily-usage', { key_id: a.id }), 401, 'unauthorized', 'a key id')
})

t.test('usage-details: requests per model over the last 24 hours, bearer only', async (t) => {
  const g = await gateway(t)
  const { a, b } = await traffic(g)
  const get = (headers: Record<string, string>, query = '') => g.app.inject({ method: 'GET', url: `/api/key-stats/usage-details${query}`, headers })
  const res = await get(bearer(a.key))
  t.equal(res.statusCode, 200, res.body)
  // a1, a4 (alpha) and a2 (beta, failed); not a5 (3 days ago) nor the in-flight a3
  t.same(res.json(), { period_hours: 24, models: { alpha: 2, beta: 1 } })
  t.same((await get(bearer(b.key))).json(), { period_hours: 24, models: { alpha: 1, gamma: 1 } })
  refused(t, await get({}, `?api_key=${a.key as string}`), 401, 'unauthorized', 'a key in the query string')
  refused(t, await get({}), 401, 'unauthorized', 'no key')
})

t.test('never by a key id, never another key\'s data', async (t) => {
  const g = await gateway(t)
  const { a, b } = await traffic(g)
  for (const body of [{ key_id: a.id }, { apiId: a.id }, { api_key: a.id }, { id: a.id, period: 'daily' }]) {
    refused(t, await post(g, 'user-stats', body), 401, 'unauthorized', `user-stats ${JSON.stringify(body)}`)
    refused(t, await post(g, 'user-model-stats', { period: 'daily', ...body }), 401, 'unauthorized', `user-model-stats ${JSON.stringify(body)}`)
  }
  // signed in as b, asking for a by id: refused as input, never answered with either key's data
  const crossed = await post(g, 'user-stats', { apiId: a.id }, bearer(b.key))
  refused(t, crossed, 400, 'validation_error', 'a key id next to another key')
  t.equal(crossed.json().usage, undefined)
  // a body key wins over the bearer: the answer is the body key's, never a mix
  const both = (await post(g, 'user-stats', { api_key: a.key }, bearer(b.key))).json()
  t.equal(both.id, a.id)
  // a session token is not a key
  const admin = await post(g, 'user-stats', {}, g.admin.headers)
  refused(t, admin, 401, 'unauthorized', 'an admin session')
})

t.test('unknown, malformed, disabled, expired keys and disabled owners: 401', async (t) => {
  const g = await gateway(t)
  const { a, b, owner } = await traffic(g)
  const unknown = `sk-${'A'.repeat(48)}`
  const malformed: unknown[] = ['', 'sk-short', 'not-a-key', `sk-${'a'.repeat(47)}!`, 'x'.repeat(300), 12345, null, ['sk-x']]
  for (const key of [unknown, ...malformed]) {
    refused(t, await post(g, 'user-stats', { api_key: key }), 401, 'unauthorized', `api_key ${JSON.stringify(key).slice(0, 40)}`)
  }
  for (const header of [`Bearer ${unknown}`, 'Bearer sk-short', 'Basic abc', `Bearer ${a.key as string} extra`]) {
    refused(t, await post(g, 'user-stats', {}, { authorization: header }), 401, 'unauthorized', `authorization ${header.slice(0, 20)}`)
  }
  refused(t, await post(g, 'user-stats', {}), 401, 'unauthorized', 'no key at all')

  await g.adminCall('PATCH', `/api/admin/api-keys/${b.id as string}`)
  refused(t, await post(g, 'user-stats', { api_key: b.key }), 401, 'unauthorized', 'a disabled key')
  await g.adminCall('PATCH', `/api/admin/api-keys/${b.id as string}`)
  t.equal((await post(g, 'user-stats', { api_key: b.key })).statusCode, 200, 'enabled again')

  await g.adminCall('PUT', `/api/admin/api-keys/${b.id as string}`, { expires_at: '2020-01-01T00:00:00Z' })
  refused(t, await post(g, 'user-stats', { api_key: b.key }), 401, 'unauthorized', 'an expired key')
  const expiredDetails = await g.app.inject({ method: 'GET', url: '/api/key-stats/usage-details', headers: bearer(b.key) })
  refused(t, expiredDetails, 401, 'unauthorized', 'usage-details, expired')

  await g.adminCall('PUT', `/api/admin/users/${owner.id as string}`, { is_active: false })
  refused(t, await post(g, 'user-stats', { api_key: a.key }), 401, 'unauthorized', 'a disabled owner')
  refused(t, await post(g, 'user-model-stats', { api_key: a.key, period: 'daily' }), 401, 'unauthorized', 'a disabled owner, model stats')

  // every refusal says the same thing, so none tells a real key from a guess
  const messages = new Set<string>()
  for (const key of [unknown, 'sk-short', a.key, b.key]) messages.add((await post(g, 'user-stats', { api_key: key })).json().error.message)
  t.equal(messages.size, 1, `one message for every refusal: ${[...messages].join(' | ')}`)
  // refusals of key holders are not audited row by row
  t.equal(await g.app.prisma.auditLog.count({ where: { path: { startsWith: '/api/key-stats' } } }), 0)
})

t.test('rate limit per client address: 60 a minute by default, then 429 with Retry-After', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const from = (remoteAddress: string, apiKey = 'sk-guess') =>
    g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', payload: { api_key: apiKey }, remoteAddress })
  for (let i = 0; i < 60; i++) t.equal((await from('198.51.100.7')).statusCode, 401)
  const limited = await from('198.51.100.7', key.key)
  refused(t, limited, 429, 'too_many_requests', 'the 61st request, even with a valid key')
  const retry = Number(limited.headers['retry-after'])
  t.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `retry-after ${retry} s`)
  t.equal((await from('198.51.100.8', key.key)).statusCode, 200, 'another address is not limited')
  const details = await g.app.inject({ method: 'GET', url: '/api/key-stats/usage-details', headers: bearer(key.key), remoteAddress: '198.51.100.7' })
  refused(t, details, 429, 'too_many_requests', 'every key-stats endpoint shares the limit')
})

t.test('the limit is an option: a window of 2 requests per second', async (t) => {
  const url = await createDatabase(t)
  let now = Date.now()
  const app = await buildApp(testConfig(url), { clock: () => now })
  app.pg.on('error', () => {}) // the database is dropped WITH (FORCE) at teardown
  // a second instance under the same prefix tree, so it is a pipeline route like the real one
  await app.register(keyStatsRoutes, { prefix: '/api/key-stats/strict', limit: 2, windowMs: 1000 })
  await app.ready()
  t.teardown(() => app.close())
  const call = () => app.inject({ method: 'GET', url: '/api/key-stats/strict/usage-details', remoteAddress: '203.0.113.9' })
  t.equal((await call()).statusCode, 401)
  t.equal((await call()).statusCode, 401)
  const limited = await call()
  refused(t, limited, 429, 'too_many_requests', 'the third in the window')
  t.equal(limited.headers['retry-after'], '1')
  now += 999
  refused(t, await call(), 429, 'too_many_requests', 'still the same window 999 ms later')
  now += 1
  t.equal((await call()).statusCode, 401, 'a new window')
})
