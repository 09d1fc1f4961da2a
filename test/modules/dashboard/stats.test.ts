// GET /api/dashboard/stats and /daily-stats: every field against figures worked out by
// hand from a few requests ingested through the gateway, placed on the local midnights
// of a non-UTC APP_TIMEZONE (Asia/Shanghai, UTC+8 all year) and a millisecond before.
import t from 'tap'
import { gateway, type Gateway } from '../gateway/fixtures.js'
import { signIn, type Signed } from '../../helper.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const ZONE = 'Asia/Shanghai'
/** Shanghai's date of an instant, by its fixed offset (no DST since 1991) */
const shanghaiDate = (ms: number) => new Date(ms + 8 * HOUR).toISOString().slice(0, 10)
const minusDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) - days * DAY).toISOString().slice(0, 10)

// m-a on alpha (rate 0.5): 1M in × $2 + 0.5M out × $10 + 2M 5m-writes × $2.5 + 4M reads × $0.2 = $12.80, actual $6.40; 7.5M tokens
const A = { model: 'm-a', input_tokens: 1_000_000, output_tokens: 500_000, cache_creation_input_tokens: 2_000_000, cache_creation_5m_input_tokens: 2_000_000, cache_read_input_tokens: 4_000_000 }
// m-b on beta (rate 1): 3M in × $1 + 0.25M out × $4 = $4.00, actual $4.00; 3.25M tokens
const B = { model: 'm-b', input_tokens: 3_000_000, output_tokens: 250_000 }

interface World { g: Gateway, ann: Signed, bob: Signed, today: string, t0: number }

async function world (t: Parameters<typeof gateway>[0]): Promise<World> {
  const g = await gateway(t, { APP_TIMEZONE: ZONE })
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const alphaKey = await g.providerKey(alpha.id, { rate_multiplier: 0.5 })
  const betaKey = await g.providerKey(beta.id, { rate_multiplier: 1 })
  await g.price({ model: 'm-a', tiers: [{ up_to: null, input: 2, output: 10, cache_write_5m: 2.5, cache_read: 0.2 }] })
  await g.price({ model: 'm-b', tiers: [{ up_to: null, input: 1, output: 4 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id)
  const annOff = await g.userKey(ann.id)
  await g.app.prisma.apiKey.update({ where: { id: annOff.id }, data: { isActive: false } })
  await g.standaloneKey()
  const bobKey = await g.userKey(bob.id)
  await g.app.prisma.user.update({ where: { id: ann.id }, data: { quota: 100_000_000_000n } })

  const now = Date.now()
  const today = shanghaiDate(now)
  const t0 = Date.parse(`${today}T00:00:00+08:00`)
  const onA = { ...A, provider_id: alpha.id, provider_api_key_id: alphaKey.id }
  const onB = { ...B, provider_id: beta.id, provider_api_key_id: betaKey.id }
  const done = (id: string, key: string, at: number, status: string, usage: object, extra: object = {}) => ({
    type: 'complete', request_id: id, api_key_id: key, created_at: new Date(at).toISOString(), status,
    status_code: status === 'completed' ? 200 : status === 'failed' ? 500 : 499, ...usage, ...extra
  })
  const fallback = (first: string, last: string) => ({
    candidates: [
      { candidate_index: 0, provider_id: first, status: 'failed', status_code: 500, latency_ms: 100 },
      { candidate_index: 1, provider_id: last, status: 'success', latency_ms: 900 }
    ]
  })
  await g.send([
    // today: at local midnight exactly
    done('t1', annKey.id, t0, 'completed', onA, { response_time_ms: 1000, ...fallback(beta.id, alpha.id) }),
    done('t2', bobKey.id, t0, 'failed', onB, { response_time_ms: 3000, error_message: 'upstream' }),
    { type: 'start', request_id: 'p1', api_key_id: annKey.id, model: 'm-a', created_at: new Date(t0).toISOString() },
    // yesterday: its last millisecond; one candidate skipped, one sent (no fallback)
    done('y1', annKey.id, t0 - 1, 'completed', onA, {
      response_time_ms: 2000,
      candidates: [{ candidate_index: 0, provider_id: beta.id, status: 'skipped', skip_reason: 'rate limited' }, { candidate_index: 1, provider_id: alpha.id, status: 'success' }]
    }),
    // the 30-day window's first instant, and the millisecond before it
    done('m1', bobKey.id, t0 - 30 * DAY, 'cancelled', onB),
    done('o1', annKey.id, t0 - 30 * DAY - 1, 'completed', onB, { response_time_ms: 500, ...fallback(alpha.id, beta.id) }),
    done('old', bobKey.id, t0 - 100 * DAY, 'completed', onA, { response_time_ms: 800 })
  ])
  return { g, ann, bob, today, t0 }
}

t.test('admin: all usage, with system health and cost', async (t) => {
  const { g, today } = await world(t)
  const res = await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: g.admin.headers })
  t.equal(res.statusCode, 200)
  const body = res.json()
  // all time: t1 t2 y1 m1 o1 old = 3 × A + 3 × B
  t.same(body.stats, [
    { name: '总请求', value: '6', subValue: '有效 5 / 异常 1', change: '+2', changeType: 'increase', icon: 'Activity' },
    { name: '总费用', value: '$50.40', subValue: '倍率后 $31.20', change: '+$16.80', changeType: 'increase', icon: 'DollarSign' },
    { name: '总Token', value: '32.3M', subValue: '输入 12.0M / 输出 2.25M', change: '+10.8M', changeType: 'increase', icon: 'Hash' },
    // today's cache tokens (t1: 6M) equal yesterday's (y1: 6M); hit rate 12M / (12M + 12M)
    { name: '总缓存', value: '18.0M', subValue: '创建 6.00M / 读取 12.0M', change: '6.00M', changeType: 'neutral', extraBadge: '命中率 50.0%', icon: 'Database' }
  ])
  t.same(body.today, { requests: 2, cost: 16.8, actual_cost: 10.4, tokens: 10_750_000, cache_creation_tokens: 2_000_000, cache_read_tokens: 4_000_000 })
  t.same(body.token_breakdown, { input: 12_000_000, output: 2_250_000, cache_creation: 6_000_000, cache_read: 12_000_000 })
  // 30 days: t1 t2 y1 m1 (o1 is a millisecond early); response times 1000, 3000, 2000 (m1 has none)
  t.same(body.system_health, { avg_response_time: 2, error_rate: 25, error_requests: 1, fallback_count: 1, total_requests: 4 })
  t.same(body.cost_stats, { total_cost: 33.6, total_actual_cost: 20.8, cost_savings: 12.8 })
  t.same(body.cache_stats, { cache_creation_tokens: 4_000_000, cache_read_tokens: 8_000_000, total_cache_tokens: 12_000_000, cache_hit_rate: 50 })
  t.notOk('monthly_cost' in body)

  const daily = await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=7', headers: g.admin.headers })
  t.equal(daily.statusCode, 200)
  const d = daily.json()
  const dates = Array.from({ length: 7 }, (_v, i) => minusDays(today, 6 - i))
  t.same(d.period, { start_date: dates[0], end_date: today, days: 7 })
  const zero = { requests: 0, tokens: 0, cost: 0, avg_response_time: 0, unique_models: 0, unique_providers: 0, model_breakdown: [] }
  t.same(d.daily_stats, dates.map((date) => date === today
    ? {
        date, requests: 2, tokens: 10_750_000, cost: 16.8, avg_response_time: 2, unique_models: 2, unique_providers: 2,
        model_breakdown: [{ model: 'm-a', requests: 1, tokens: 7_500_000, cost: 12.8 }, { model: 'm-b', requests: 1, tokens: 3_250_000, cost: 4 }]
      }
    : date === minusDays(today, 1)
      ? { date, requests: 1, tokens: 7_500_000, cost: 12.8, avg_response_time: 2, unique_models: 1, unique_providers: 1, model_breakdown: [{ model: 'm-a', requests: 1, tokens: 7_500_000, cost: 12.8 }] }
      : { date, ...zero }), 'ascending, zero-filled, the last entry today')
  t.same(d.model_summary, [{ model: 'm-a', requests: 2, tokens: 15_000_000, cost: 25.6 }, { model: 'm-b', requests: 1, tokens: 3_250_000, cost: 4 }])

  // 30 days end at today - 29: m1 (today - 30) is not in them
  const month = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=30', headers: g.admin.headers })).json()
  t.equal(month.daily_stats.length, 30)
  t.equal(month.daily_stats[0].date, minusDays(today, 29))
  t.equal(month.daily_stats.reduce((sum: number, day: { requests: number }) => sum + day.requests, 0), 3)
  const one = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=1', headers: g.admin.headers })).json()
  t.same(one.daily_stats.map((day: { date: string }) => day.date), [today])
})

t.test('a user: their own usage only, with their keys and quota', async (t) => {
  const { g, ann, bob, today } = await world(t)
  const annStats = (await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: ann.headers })).json()
  // ann: t1 (today), y1 (yesterday), o1 (31 days ago); charged 12.80 + 12.80 + 4.00
  t.same(annStats.stats, [
    { name: 'API 密钥', value: '1/2', icon: 'Key' },
    { name: '本月请求', value: '2', change: '今日 1', changeType: 'neutral', icon: 'Activity' },
    { name: '配额使用', value: '29.6%', change: '已用 $29.60', changeType: 'neutral', icon: 'TrendingUp' },
    { name: '本月费用', value: '$25.60', icon: 'DollarSign' }
  ])
  t.same(annStats.today, { requests: 1, cost: 12.8, tokens: 7_500_000, cache_creation_tokens: 2_000_000, cache_read_tokens: 4_000_000 }, 'no actual_cost: the operator\'s')
  t.same(annStats.token_breakdown, { input: 5_000_000, output: 1_250_000, cache_creation: 4_000_000, cache_read: 8_000_000 })
  // hit rate all time: 8M / (5M + 8M) = 61.54 %
  t.same(annStats.cache_stats, { cache_creation_tokens: 4_000_000, cache_read_tokens: 8_000_000, total_cache_tokens: 12_000_000, cache_hit_rate: 61.5 })
  t.equal(annStats.monthly_cost, 25.6)
  t.notOk('system_health' in annStats)
  t.notOk('cost_stats' in annStats)

  const bobStats = (await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: bob.headers })).json()
  // bob: t2 (today, failed), m1 (30 days ago, cancelled), old; no quota; charged 4 + 4 + 12.80
  t.same(bobStats.stats, [
    { name: 'API 密钥', value: '1/1', icon: 'Key' },
    { name: '本月请求', value: '2', change: '今日 1', changeType: 'increase', icon: 'Activity' },
    { name: '配额使用', value: '无限制', change: '已用 $20.80', changeType: 'neutral', icon: 'TrendingUp' },
    { name: '本月费用', value: '$8.00', icon: 'DollarSign' }
  ])
  t.same(bobStats.token_breakdown, { input: 7_000_000, output: 1_000_000, cache_creation: 2_000_000, cache_read: 4_000_000 })
  t.same(bobStats.cache_stats, { cache_creation_tokens: 0, cache_read_tokens: 0, total_cache_tokens: 0, cache_hit_rate: 36.4 })

  const annDaily = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=2', headers: ann.headers })).json()
  t.same(annDaily.daily_stats, [
    { date: minusDays(today, 1), requests: 1, tokens: 7_500_000, cost: 12.8, avg_response_time: 2, unique_models: 1, unique_providers: 1, model_breakdown: [{ model: 'm-a', requests: 1, tokens: 7_500_000, cost: 12.8 }] },
    { date: today, requests: 1, tokens: 7_500_000, cost: 12.8, avg_response_time: 1, unique_models: 1, unique_providers: 1, model_breakdown: [{ model: 'm-a', requests: 1, tokens: 7_500_000, cost: 12.8 }] }
  ])
  const bobDaily = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=2', headers: bob.headers })).json()
  t.same(bobDaily.daily_stats.map((day: { requests: number, cost: number }) => [day.requests, day.cost]), [[0, 0], [1, 4]], 'bob sees his failed t2 only')
  t.same(bobDaily.model_summary, [{ model: 'm-b', requests: 1, tokens: 3_250_000, cost: 4 }])
})

t.test('refusals, unknown parameters and the audit', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  for (const url of ['/api/dashboard/stats', '/api/dashboard/daily-stats']) {
    const res = await g.app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 401, `${url} signed out → 401`)
    t.match(res.json(), { error: { type: 'unauthorized' } })
  }
  for (const days of ['0', '31', '-1', '2.5', 'week', '']) {
    const res = await g.app.inject({ method: 'GET', url: `/api/dashboard/daily-stats?days=${days}`, headers: user.headers })
    t.equal(res.statusCode, 400, `days=${days} → 400`)
  }
  const stripped = await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=3&timezone=Mars/Olympus&preset=today', headers: user.headers })
  t.equal(stripped.statusCode, 200, 'unknown parameters are ignored')
  t.equal(stripped.json().daily_stats.length, 3)
  t.equal((await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats', headers: user.headers })).json().daily_stats.length, 7, 'days defaults to 7')
  t.equal((await g.app.inject({ method: 'GET', url: '/api/dashboard/stats?x=1', headers: user.headers })).statusCode, 200)
  const empty = (await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: g.admin.headers })).json()
  t.same(empty.stats.map((card: { value: string }) => card.value), ['0', '$0.00', '0', '0'], 'no usage: zero cards')
  t.same(empty.system_health, { avg_response_time: 0, error_rate: 0, error_requests: 0, fallback_count: 0, total_requests: 0 })
  await g.app.pipeline.readAuditsWritten()
  t.equal(await g.app.prisma.auditLog.count({ where: { action: 'dashboard.daily_stats', userId: user.id } }), 8, 'every call audited, refusals included')
  t.equal(await g.app.prisma.auditLog.count({ where: { action: 'dashboard.stats', userId: { not: null } } }), 2)
})

t.test('a zone whose midnight falls inside a UTC hour (Asia/Kolkata, UTC+05:30)', async (t) => {
  const g = await gateway(t, { APP_TIMEZONE: 'Asia/Kolkata' })
  const beta = await g.provider('beta')
  await g.price({ model: 'm-b', tiers: [{ up_to: null, input: 1, output: 4 }] })
  const cat = await signIn(g.app, 'user', 'cat')
  const key = await g.userKey(cat.id)
  const other = await g.userKey((await signIn(g.app, 'user', 'dan')).id)
  const today = new Date(Date.now() + 5.5 * HOUR).toISOString().slice(0, 10)
  const t0 = Date.parse(`${today}T00:00:00+05:30`)
  const row = (id: string, at: number, keyId = key.id) => ({
    type: 'complete', request_id: id, api_key_id: keyId, created_at: new Date(at).toISOString(), status: 'completed', status_code: 200,
    provider_id: beta.id, response_time_ms: 100, ...B
  })
  // k1 today; k2, k3, k4 yesterday (its last millisecond, a whole hour, its first instant); k5 the day before; d1 another user's, today
  await g.send([row('k1', t0), row('k2', t0 - 1), row('k3', t0 - 20 * HOUR), row('k4', t0 - DAY), row('k5', t0 - DAY - 1), row('d1', t0 + 0, other.id)])
  const dates = [minusDays(today, 2), minusDays(today, 1), today]
  const admin = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=3', headers: g.admin.headers })).json()
  t.same(admin.daily_stats.map((d: { date: string, requests: number, cost: number }) => [d.date, d.requests, d.cost]), [[dates[0], 1, 4], [dates[1], 3, 12], [dates[2], 2, 8]])
  const own = (await g.app.inject({ method: 'GET', url: '/api/dashboard/daily-stats?days=3', headers: cat.headers })).json()
  t.same(own.daily_stats.map((d: { date: string, requests: number }) => [d.date, d.requests]), [[dates[0], 1], [dates[1], 3], [dates[2], 1]])
  const stats = (await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: g.admin.headers })).json()
  t.match(stats.stats[0], { value: '6', change: '2', changeType: 'decrease' })
  t.match(stats.today, { requests: 2, cost: 8 })
  const mine = (await g.app.inject({ method: 'GET', url: '/api/dashboard/stats', headers: cat.headers })).json()
  t.match(mine.stats[1], { value: '5', change: '今日 1', changeType: 'decrease' })
})
