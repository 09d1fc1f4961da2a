// Budgets at gateway verify: spend + holds + this request's hold ≤ limit, or 402
// budget_exhausted with Retry-After from the window that refused; a per-model budget meets
// the requests of its model (and those naming none); a user budget spans the user's keys.
import t from 'tap'
import { burst, gateway, type Gateway } from '../gateway/fixtures.js'

/** 1 USD per 1M input tokens */
const TIERS = [{ up_to: null, input: 1, output: 0, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1 }]

const budget = async (g: Gateway, path: string, body: object) => await g.adminCall('POST', `/api/admin/${path}/budgets`, body)

t.test('a day budget: admitted while spent + held + the hold fit; then 402 until the zone\'s next midnight', async (t) => {
  // every hold is 0.01 USD (no estimate)
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  await g.price({ model: 'm', tiers: TIERS })
  const key = await g.standaloneKey()
  await budget(g, `api-keys/${key.id as string}`, { period: 'day', time_zone: 'UTC', limit_usd: 0.03 })
  // spent 0.005 today: 5000 input tokens at 1 USD / 1M
  await g.send([{ type: 'complete', request_id: 'spent', api_key_id: key.id, model: 'm', status: 'completed', status_code: 200, input_tokens: 5000, output_tokens: 0 }])
  t.equal((await g.verify({ key: key.key, request_id: 'r1' })).statusCode, 200, '0.005 + 0.01 ≤ 0.03')
  t.equal((await g.verify({ key: key.key, request_id: 'r2' })).statusCode, 200, '0.005 + 0.01 + 0.01 ≤ 0.03')
  const refused = await g.verify({ key: key.key, request_id: 'r3' })
  t.equal(refused.statusCode, 402, '0.005 + 0.02 + 0.01 > 0.03')
  t.match(refused.json().error, { type: 'budget_exhausted', message: 'the key\'s daily budget of 0.03 USD is used up' })
  const now = Date.now()
  const nextMidnight = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate() + 1)
  const retry = Number(refused.headers['retry-after'])
  t.ok(Math.abs(retry - Math.ceil((nextMidnight - now) / 1000)) <= 5, `Retry-After ${retry} s: until the next UTC midnight`)
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'an advisory verify needs one nano-USD of room: 0.005 + 0.02 < 0.03')
  t.equal((await g.app.pg.query("SELECT count(*)::int AS n FROM admission_holds WHERE request_id = 'r3'")).rows[0].n, 0, 'a refusal holds nothing')

  // r1 settles at 0.015: 0.005 + 0.015 + 0.01 (r2) = 0.03, full for an advisory verify too
  await g.send([{ type: 'complete', request_id: 'r1', api_key_id: key.id, model: 'm', status: 'completed', status_code: 200, input_tokens: 15000, output_tokens: 0 }])
  t.equal((await g.verify({ key: key.key })).statusCode, 402, 'spent 0.02 + held 0.01 = 0.03: no room left')
})

t.test('a per-model budget meets its model\'s requests and those naming none, not other models\'', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const key = await g.standaloneKey()
  await budget(g, `api-keys/${key.id as string}`, { period: 'week', week_start: 0, time_zone: 'Europe/Berlin', limit_usd: 0.02, model: 'a' })
  t.equal((await g.verify({ key: key.key, request_id: 'a1', model: 'a' })).statusCode, 200)
  for (let i = 0; i < 3; i++) t.equal((await g.verify({ key: key.key, request_id: `b${i}`, model: 'b' })).statusCode, 200, 'model b is not limited')
  t.equal((await g.verify({ key: key.key, request_id: 'none' })).statusCode, 200, 'no model: meets the budget (0.01 + 0.01 ≤ 0.02), and holds against it')
  const refused = await g.verify({ key: key.key, request_id: 'a2', model: 'a' })
  t.equal(refused.statusCode, 402, 'a1 and the model-less hold fill it')
  t.match(refused.json().error.message, /the key's weekly budget for model a of 0\.02 USD is used up/)
  t.equal((await g.verify({ key: key.key, request_id: 'none2' })).statusCode, 402, 'a request naming no model may be model a')
  t.equal((await g.verify({ key: key.key, request_id: 'b9', model: 'b' })).statusCode, 200, 'model b still passes')
})

t.test('a user budget spans the user\'s keys; a rolling budget\'s Retry-After is its length', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const user = await g.user()
  const [a, b] = [await g.userKey(user.id as string), await g.userKey(user.id as string)]
  await budget(g, `users/${user.id as string}`, { period: 'rolling', duration_seconds: 600, limit_usd: 0.03 })
  t.equal((await g.verify({ key: a!.key, request_id: 'a1' })).statusCode, 200)
  t.equal((await g.verify({ key: a!.key, request_id: 'a2' })).statusCode, 200)
  t.equal((await g.verify({ key: b!.key, request_id: 'b1' })).statusCode, 200)
  for (const key of [a!, b!]) {
    const refused = await g.verify({ key: key.key, request_id: `x-${key.id as string}` })
    t.equal(refused.statusCode, 402)
    t.match(refused.json().error.message, /the owner's rolling 600 s budget of 0\.03 USD/)
    t.equal(refused.headers['retry-after'], '600', 'the rolling window\'s length')
  }
  const other = await g.userKey((await g.user()).id as string)
  t.equal((await g.verify({ key: other!.key, request_id: 'o1' })).statusCode, 200, 'another user\'s key is not limited by it')
})

t.test('200 concurrent reservations against room for exactly k under a budget: exactly k admitted', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const key = await g.standaloneKey()
  await budget(g, `api-keys/${key.id as string}`, { period: 'month', time_zone: 'Asia/Kolkata', limit_usd: 0.05 })
  const { byStatus, answers } = await burst(g, key, 200, 'k')
  t.same(byStatus, { 200: 5, 402: 195 }, 'a month budget of 0.05 / holds of 0.01: 5')
  t.ok(answers.filter((res) => res.statusCode === 402).every((res) => res.json().error.type === 'budget_exhausted'))

  const perModel = await g.standaloneKey()
  await budget(g, `api-keys/${perModel.id as string}`, { period: 'day', limit_usd: 0.03, model: 'a' })
  const [ofA, ofB] = await Promise.all([burst(g, perModel, 100, 'pa', { model: 'a' }), burst(g, perModel, 100, 'pb', { model: 'b' })])
  t.same(ofA.byStatus, { 200: 3, 402: 97 }, 'model a: 3 of 100')
  t.same(ofB.byStatus, { 200: 100 }, 'model b: all 100')

  // a user budget: two keys at once, 100 reservations each — the owner's lock serialises them
  const user = await g.user()
  const [a, b] = [await g.userKey(user.id as string), await g.userKey(user.id as string)]
  await budget(g, `users/${user.id as string}`, { period: 'day', limit_usd: 0.04 })
  const both = await Promise.all([burst(g, a!, 100, 'ua'), burst(g, b!, 100, 'ub')])
  t.equal((both[0].byStatus[200] ?? 0) + (both[1].byStatus[200] ?? 0), 4, 'user budget 0.04 over two keys: 4 admitted in all')
})
