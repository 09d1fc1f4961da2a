// GET /api/admin/stats/cost/forecast and /api/users/me/stats/cost/forecast, and the
// method itself (analytics/forecast.ts): on a synthetic history with a known trend and
// weekly pattern the forecast is within a tolerance worked out here; a flat history has
// slope 0; under 14 days there is no interval; every bad query is a 400.
import t from 'tap'
import { fitDaily, solve, tQuantile } from '../../../src/modules/analytics/forecast.js'
import { signIn } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'
import { gateway } from '../gateway/fixtures.js'

const DAY = 86_400_000
/** the known weekly pattern, Monday first, and its centred form (the effects the fit estimates) */
const WEEKLY = [2, 3, 3, 2.5, 1, -4, -5]
const MEAN_WEEKLY = WEEKLY.reduce((a, b) => a + b, 0) / 7
const truth = (t: number, firstWeekday: number) => 10 + 0.1 * t + WEEKLY[(firstWeekday + t) % 7]!

t.test('the method on synthetic histories', async (t) => {
  const random = mulberry32(testSeed(t, 20261902))
  // uniform noise on ±1 (sd 1/√3 ≈ 0.58): over 56 days the slope's standard error is about 0.58/√(Σ(t − t̄)²) ≈ 0.58/121 ≈ 0.005,
  // so 14 days past the end the trend is off by under 3 × 0.005 × 41 ≈ 0.6; the level and weekday effects add under 0.3: tolerance 1.0
  const firstWeekday = 3
  const y = Array.from({ length: 56 }, (_, i) => truth(i, firstWeekday) + (random() * 2 - 1))
  const fit = fitDaily(y, firstWeekday)
  t.equal(fit.method, 'linear_trend_weekday_ols')
  t.ok(Math.abs(fit.slope - 0.1) < 0.02, `slope ${fit.slope} near 0.1`)
  fit.weekday!.forEach((effect, k) => t.ok(Math.abs(effect - (WEEKLY[k]! - MEAN_WEEKLY)) < 0.5, `weekday ${k}: ${effect} near ${WEEKLY[k]! - MEAN_WEEKLY}`))
  t.ok(Math.abs(fit.residualSd! - 0.58) < 0.2, `residual sd ${fit.residualSd} near 0.58`)
  for (let h = 0; h < 14; h++) {
    const { mean, se } = fit.predict(56 + h)
    const expected = truth(56 + h, firstWeekday)
    t.ok(Math.abs(mean - expected) < 1, `day +${h}: ${mean.toFixed(3)} within 1 of ${expected}`)
    t.ok(se! > fit.residualSd! && se! < 1.2 * fit.residualSd!, 'the interval widens with the fit\'s own uncertainty, a little')
  }

  const flat = fitDaily(new Array(21).fill(5), 0)
  t.equal(Math.abs(Math.round(flat.slope * 1e9)), 0, 'flat history: slope 0')
  t.ok(flat.weekday!.every((e) => Math.abs(e) < 1e-9) && flat.residualSd! < 1e-9, 'no weekday effect, no spread')
  t.ok(Math.abs(flat.predict(30).mean - 5) < 1e-9)

  const line = fitDaily([1, 3, 5, 7, 9], 0)
  t.equal(line.method, 'linear_trend', 'under 14 days: a line')
  t.ok(Math.abs(line.slope - 2) < 1e-9 && Math.abs(line.intercept - 1) < 1e-9)
  t.ok(Math.abs(line.predict(7).mean - 15) < 1e-9, 'the line extended')
  t.equal(line.predict(7).se, null, 'no interval')
  t.same([fitDaily([4], 0).predict(3), fitDaily([], 0).predict(0)], [{ mean: 4, se: null }, { mean: 0, se: null }], 'under 2 days: flat')
  t.equal(fitDaily([4], 0).method, 'flat')

  // Student's t from tables: t(0.975, 10) = 2.228, t(0.975, 48) = 2.011, t(0.9, 48) = 1.299, t(0.975, 6) = 2.447
  for (const [z, dof, table] of [[1.959963984540054, 10, 2.228], [1.959963984540054, 48, 2.011], [1.2815515655446004, 48, 1.299], [1.959963984540054, 6, 2.447]]) {
    t.ok(Math.abs(tQuantile(z!, dof!) - table!) < 0.005, `t(${dof}) ${tQuantile(z!, dof!)} ≈ ${table}`)
  }
  t.equal(solve([[1, 2], [2, 4]], [1, 2]), null, 'a singular system has no solution')
})

t.test('the endpoints', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'fc-model', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const today = Math.floor(Date.now() / DAY) * DAY
  const admin = await signIn(g.app, 'user')
  const key = await g.userKey(admin.id)
  // 56 UTC days before today: cost_i = truth(i) USD, one request at 12:00 (input at $1 per 1M tokens), a second at 20:00 for a zone's later date
  const first = today - 56 * DAY
  const firstWeekday = (new Date(first).getUTCDay() + 6) % 7
  const events: object[] = []
  for (let i = 0; i < 56; i++) {
    const tokens = Math.round(truth(i, firstWeekday) * 1e6)
    events.push({ type: 'complete', request_id: `d${i}`, api_key_id: key.id, model: 'fc-model', created_at: new Date(first + i * DAY + 12 * 3_600_000).toISOString(), status: 'completed', input_tokens: tokens - 1000, output_tokens: 1 })
    events.push({ type: 'complete', request_id: `e${i}`, api_key_id: key.id, model: 'fc-model', created_at: new Date(first + i * DAY + 20 * 3_600_000).toISOString(), status: 'completed', input_tokens: 1000, output_tokens: 1 })
  }
  await g.send(events)

  const res = await g.app.inject({ method: 'GET', url: '/api/admin/stats/cost/forecast?timezone=UTC', headers: g.admin.headers })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.history.length, 56)
  t.same(body.history.map((d: any) => d.total_cost), Array.from({ length: 56 }, (_, i) => Math.round(truth(i, firstWeekday) * 1e6) / 1e6), 'each day\'s cost')
  t.equal(body.method, 'linear_trend_weekday_ols')
  t.equal(body.forecast.length, 14)
  t.equal(body.forecast[0].date, new Date(today).toISOString().slice(0, 10), 'from today')
  t.equal(body.start_date, new Date(first).toISOString().slice(0, 10))
  t.equal(body.end_date, new Date(today + 13 * DAY).toISOString().slice(0, 10))
  body.forecast.forEach((day: any, h: number) => {
    // an exact history: the fit is the truth, to rounding
    t.ok(Math.abs(day.total_cost - truth(56 + h, firstWeekday)) < 1e-3, `${day.date}: ${day.total_cost}`)
    t.ok(day.lower_95 <= day.lower_80 && day.lower_80 <= day.total_cost && day.total_cost <= day.upper_80 && day.upper_80 <= day.upper_95, 'nested intervals')
  })
  t.ok(Math.abs(body.slope - 0.1) < 1e-6 && body.residual_sd < 1e-3)
  t.ok(Math.abs(body.weekday_effects.sunday - (WEEKLY[6]! - MEAN_WEEKLY)) < 1e-6, 'Sunday\'s effect')

  // in +05:30 the 20:00 UTC request is the next local day: the history is the raw rows grouped by local date
  const kolkata = (await g.app.inject({ method: 'GET', url: '/api/admin/stats/cost/forecast?timezone=Asia/Kolkata&history_days=30&days=3', headers: g.admin.headers })).json()
  const raw = (await g.app.pg.query(`SELECT to_char((created_at AT TIME ZONE 'Asia/Kolkata')::date, 'YYYY-MM-DD') AS date, sum(total_cost)::bigint AS cost FROM usage
    WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1`)).rows
  const byDate = new Map(raw.map((r: any) => [r.date, Number(r.cost) / 1e9]))
  t.equal(kolkata.history.length, 30)
  t.same(kolkata.history.map((d: any) => d.total_cost), kolkata.history.map((d: any) => byDate.get(d.date) ?? 0), 'local days of +05:30')
  t.equal(kolkata.forecast.length, 3)

  // a user's own: a flat history of 20 days → slope 0; another's 5 days → a line and no interval
  const flatUser = await signIn(g.app, 'user')
  const flatKey = await g.userKey(flatUser.id)
  await g.send(Array.from({ length: 20 }, (_, i) => ({ type: 'complete', request_id: `f${i}`, api_key_id: flatKey.id, model: 'fc-model', created_at: new Date(today - (20 - i) * DAY + 3_600_000).toISOString(), status: 'completed', input_tokens: 2_000_000, output_tokens: 0 })))
  const flat = (await g.app.inject({ method: 'GET', url: '/api/users/me/stats/cost/forecast?timezone=UTC&days=7', headers: flatUser.headers })).json()
  t.equal(flat.slope, 0, 'flat history: slope 0')
  t.equal(flat.history_days_used, 20, 'the days before the first with traffic are left out')
  t.same(flat.forecast.map((d: any) => [d.total_cost, d.lower_95, d.upper_95]), new Array(7).fill([2, 2, 2]), 'flat forecast, no spread')
  t.same(Object.values(flat.weekday_effects), new Array(7).fill(0))

  const newUser = await signIn(g.app, 'user')
  const newKey = await g.userKey(newUser.id)
  await g.send(Array.from({ length: 5 }, (_, i) => ({ type: 'complete', request_id: `n${i}`, api_key_id: newKey.id, model: 'fc-model', created_at: new Date(today - (5 - i) * DAY + 3_600_000).toISOString(), status: 'completed', input_tokens: (i + 1) * 1_000_000, output_tokens: 0 })))
  const short = (await g.app.inject({ method: 'GET', url: '/api/users/me/stats/cost/forecast?tz_offset_minutes=0', headers: newUser.headers })).json()
  t.equal(short.method, 'linear_trend')
  t.same([short.slope, short.residual_sd, short.weekday_effects], [1, null, null])
  t.same(short.forecast[0], { date: new Date(today).toISOString().slice(0, 10), total_cost: 6, lower_80: null, upper_80: null, lower_95: null, upper_95: null }, 'under 14 days: no interval')

  const nobody = await signIn(g.app, 'user')
  const none = (await g.app.inject({ method: 'GET', url: '/api/users/me/stats/cost/forecast?days=2&history_days=3', headers: nobody.headers })).json()
  t.same([none.method, none.history_days_used, none.fit_start_date, none.forecast.map((d: any) => d.total_cost)], ['flat', 0, null, [0, 0]], 'no traffic: zero')

  for (const bad of ['days=0', 'days=91', 'days=abc', 'history_days=0', 'history_days=367', 'timezone=Nowhere/Else', 'tz_offset_minutes=9999']) {
    const refused = await g.app.inject({ method: 'GET', url: `/api/admin/stats/cost/forecast?${bad}`, headers: g.admin.headers })
    t.equal(refused.statusCode, 400, bad)
  }
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/stats/cost/forecast', headers: nobody.headers })).statusCode, 403, 'admins only')
})
