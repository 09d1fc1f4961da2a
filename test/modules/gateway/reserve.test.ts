// Admission with holds: POST /api/gateway/keys/verify with a request_id reserves the
// request's worst-case cost and its place in the rate window and in flight, atomically;
// its completion settles the hold in the same transaction as the charge; an abandoned
// hold expires. Expected amounts are worked out by hand in the comments.
import t from 'tap'
import { burst, gateway, type Gateway, type Json } from './fixtures.js'
import { waitUntil } from '../../helper.js'
import { Reserver } from '../../../src/modules/gateway/reserve.js'

/** USD per 1M tokens: input 3, output 15, cache writes 3.75 (5 min) and 6 (1 h), reads 0.3 */
const TIERS = [{ up_to: null, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 }]

const complete = (key: Json, requestId: string, tokens: { input?: number, output?: number } = {}) => ({
  type: 'complete', request_id: requestId, api_key_id: key.id, model: 'm', status: 'completed', status_code: 200,
  input_tokens: tokens.input ?? 1000, output_tokens: tokens.output ?? 0
})

async function holds (g: Gateway, filter = '') {
  return await g.adminCall('GET', `/api/admin/admission/holds${filter}`)
}

async function keyRow (g: Gateway, id: string) {
  const { rows } = await g.app.pg.query<{ balance_used: string, total_cost: string }>('SELECT balance_used::text, total_cost::text FROM api_keys WHERE id = $1', [id])
  return rows[0]!
}

t.test('200 concurrent reservations against room for exactly k: exactly k admitted, for each kind of limit', async (t) => {
  // default hold USD 0.01 (no estimate given): a balance of 0.05 has room for 5
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const balance = await g.standaloneKey({ initial_balance_usd: 0.05 })
  const { byStatus, answers } = await burst(g, balance, 200, 'bal')
  t.same(byStatus, { 200: 5, 402: 195 }, 'balance 0.05 / hold 0.01: 5 admitted, the rest 402')
  t.ok(answers.filter((res) => res.statusCode === 402).every((res) => res.json().error.type === 'balance_exhausted'))
  const listed = await holds(g, `?api_key_id=${balance.id as string}`)
  t.equal(listed.total, 5, 'five holds recorded')
  t.equal(listed.held_usd, 0.05)

  const total = await g.standaloneKey({ total_cost_limit_usd: 0.03 })
  t.same((await burst(g, total, 200, 'tot')).byStatus, { 200: 3, 402: 197 }, 'total cost limit 0.03: 3 admitted')
  const daily = await g.standaloneKey({ daily_cost_limit_usd: 0.02 })
  t.same((await burst(g, daily, 200, 'day')).byStatus, { 200: 2, 402: 198 }, 'daily cost limit 0.02: 2 admitted')
  const concurrent = await g.standaloneKey({ concurrent_limit: 3 })
  t.same((await burst(g, concurrent, 200, 'conc')).byStatus, { 200: 3, 429: 197 }, 'concurrency 3: 3 admitted')
  const rate = await g.standaloneKey({ rate_limit: 7 })
  t.same((await burst(g, rate, 200, 'rate')).byStatus, { 200: 7, 429: 193 }, 'rate limit 7: 7 admitted')

  // an owner's quota spans their keys: two keys of one user, 100 reservations each at once
  const user = await g.user({ quota_usd: 0.04 })
  const [a, b] = [await g.userKey(user.id as string), await g.userKey(user.id as string)]
  const both = await Promise.all([burst(g, a!, 100, 'qa'), burst(g, b!, 100, 'qb')])
  t.equal((both[0].byStatus[200] ?? 0) + (both[1].byStatus[200] ?? 0), 4, 'quota 0.04 over two keys: 4 admitted in all')
  t.equal((await holds(g, `?user_id=${user.id as string}`)).total, 4)
})

t.test('rate_limit = 1: the second reservation in the window is refused with no usage reported', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ rate_limit: 1 })
  t.equal((await g.verify({ key: key.key, request_id: 'one' })).statusCode, 200)
  const second = await g.verify({ key: key.key, request_id: 'two' })
  t.equal(second.statusCode, 429)
  t.equal(second.json().error.type, 'rate_limited')
  const retry = Number(second.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 60, `Retry-After ${retry} within the window`)
  // an advisory verify (no request_id) sees the hold too
  t.equal((await g.verify({ key: key.key })).statusCode, 429, 'advisory verify counts the hold')
})

t.test('a hold counts once: by itself until the start arrives, then by its usage row', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ rate_limit: 2, concurrent_limit: 2 })
  t.equal((await g.verify({ key: key.key, request_id: 'r1' })).statusCode, 200)
  await g.send([{ type: 'start', request_id: 'r1', api_key_id: key.id, model: 'm' }])
  const listed = await holds(g)
  t.equal(listed.holds[0].started, true, 'the start marks the hold started')
  // window: r1's row (1) + no unstarted hold = 1 < 2
  t.equal((await g.verify({ key: key.key, request_id: 'r2' })).statusCode, 200, 'r1 is counted once, not twice')
  // window: r1's row + r2's unstarted hold = 2
  t.equal((await g.verify({ key: key.key, request_id: 'r3' })).statusCode, 429)
})

t.test('a request whose start reached usage before its verify holds as started: its row counts, not its hold', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ rate_limit: 2 })
  await g.send([{ type: 'start', request_id: 'early', api_key_id: key.id, model: 'm' }])
  t.equal((await g.verify({ key: key.key, request_id: 'early' })).statusCode, 200)
  t.equal((await holds(g)).holds[0].started, true, 'held as started: its usage row is in flight')
  // window: early's row (1) + no unstarted hold = 1 < 2
  t.equal((await g.verify({ key: key.key, request_id: 'late' })).statusCode, 200, 'early counted once')
  // window: early's row + late's unstarted hold = 2
  t.equal((await g.verify({ key: key.key, request_id: 'later' })).statusCode, 429)
})

t.test('settlement: the completion replaces the hold with the charge; a resent request is not charged twice', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: TIERS })
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  // hold: 1000 input tokens at the dearest input-side price (1 h write, 6 USD/1M) = 0.006, + 2 nano-USD,
  // + 500 output tokens at 15 USD/1M = 0.0075: 0.013500002
  const res = await g.verify({ key: key.key, request_id: 'req-1', model: 'm', estimated_input_tokens: 1000, max_output_tokens: 500 })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.hold.amount_usd, 0.013500002)
  t.equal(body.hold.request_id, 'req-1')
  t.equal(body.remaining_balance_usd, 0.986499998, '1 − the hold')

  const again = await g.verify({ key: key.key, request_id: 'req-1', model: 'm', estimated_input_tokens: 1000, max_output_tokens: 500 })
  t.equal(again.statusCode, 200, 'the same request verified again is admitted…')
  t.equal(again.json().hold.expires_at, body.hold.expires_at, '…on its first hold')
  t.equal((await holds(g)).total, 1, 'still one hold')
  t.match((await g.app.inject({ method: 'GET', url: '/metrics' })).body, /keymeter_admission_holds_taken_total 1\b/, 'one hold taken, counted once')

  // actual: 1000 input × 3 + 200 output × 15 per 1M = 0.003 + 0.003 = 0.006
  const [result] = await g.send([complete(key, 'req-1', { input: 1000, output: 200 })])
  t.equal(result!.cost_usd, 0.006)
  t.equal((await holds(g)).total, 0, 'no hold left')
  t.same(await keyRow(g, key.id as string), { balance_used: '6000000', total_cost: '6000000' }, 'charged the actual cost, once')
  t.equal((await g.verify({ key: key.key })).json().remaining_balance_usd, 0.994)

  const resent = await g.verify({ key: key.key, request_id: 'req-1' })
  t.equal(resent.statusCode, 409, 'a settled request cannot be reserved again')
  t.equal(resent.json().error.type, 'request_conflict')
  const [duplicate] = await g.send([complete(key, 'req-1', { input: 1000, output: 200 })])
  t.equal(duplicate!.outcome, 'duplicate')
  t.same(await keyRow(g, key.id as string), { balance_used: '6000000', total_cost: '6000000' }, 'still charged once')
  t.equal((await holds(g)).total, 0, 'and no hold taken')

  const other = await g.standaloneKey()
  t.equal((await g.verify({ key: key.key, request_id: 'req-2' })).statusCode, 200)
  const stolen = await g.verify({ key: other.key, request_id: 'req-2' })
  t.equal(stolen.statusCode, 409, 'a request held by one key cannot be reserved by another')
})

t.test('the default hold applies without a price or without an estimate', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.25' })
  await g.price({ model: 'm', tiers: TIERS })
  const key = await g.standaloneKey()
  const amount = async (body: object) => (await g.verify({ key: key.key, ...body })).json().hold.amount_usd
  t.equal(await amount({ request_id: 'a', model: 'unpriced', estimated_input_tokens: 10, max_output_tokens: 10 }), 0.25, 'no price')
  t.equal(await amount({ request_id: 'b', model: 'm', estimated_input_tokens: 10 }), 0.25, 'no max_output_tokens')
  t.equal(await amount({ request_id: 'c', model: 'm', max_output_tokens: 10 }), 0.25, 'no estimated_input_tokens')
  // 0 tokens: nothing but the 2 nano-USD rounding margin
  t.equal(await amount({ request_id: 'd', model: 'm', estimated_input_tokens: 0, max_output_tokens: 0 }), 0.000000002)
})

t.test('an abandoned hold expires: it stops counting, is released with an audit row, and counted in a metric', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01', ADMISSION_HOLD_SWEEP_SECONDS: '1' })
  const key = await g.standaloneKey({ initial_balance_usd: 0.01 })
  t.equal((await g.verify({ key: key.key, request_id: 'lost' })).statusCode, 200)
  t.equal((await g.verify({ key: key.key, request_id: 'next' })).statusCode, 402, 'the balance is held')
  // the gateway never reports it: move its expiry to the past, as time would
  await g.app.pg.query("UPDATE admission_holds SET expires_at = now() - interval '1 second' WHERE request_id = 'lost'")
  t.equal((await holds(g)).total, 0, 'an expired hold is not listed')
  const audit = await waitUntil('the expired hold released', async () =>
    (await g.app.pg.query("SELECT metadata FROM audit_logs WHERE action = 'admission_hold_expired'")).rows, (rows) => rows.length > 0)
  t.match(audit[0].metadata, { request_id: 'lost', key_id: key.id, amount_usd: 0.01, started: false })
  t.equal((await g.app.pg.query('SELECT count(*)::int AS n FROM admission_holds')).rows[0].n, 0, 'the row is gone')
  const metrics = (await g.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /keymeter_admission_holds_expired_total 1\b/)
  t.equal((await g.verify({ key: key.key, request_id: 'next' })).statusCode, 200, 'its room is free again')
  // a late completion of the released request is still charged, once
  const [late] = await g.send([{ ...complete(key, 'lost'), model: 'unpriced' }])
  t.equal(late!.outcome, 'recorded')
})

t.test('spend stays within a limit by at most one request\'s cost above its hold', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: TIERS })
  // balance 0.1; each request estimated at 1000 in / 1000 out: hold 0.006 + 0.015 + 2 nano = 0.021000002
  const key = await g.standaloneKey({ initial_balance_usd: 0.1 })
  const estimate = { model: 'm', estimated_input_tokens: 1000, max_output_tokens: 1000 }
  // within their estimates, 40 concurrent requests: 4 fit (4 × 0.021000002 ≤ 0.1 < 5 ×)
  const { answers } = await burst(g, key, 40, 'within', estimate)
  const admitted = answers.map((res, i) => [res, i] as const).filter(([res]) => res.statusCode === 200).map(([, i]) => `within-${i}`)
  t.equal(admitted.length, 4)
  // each uses all it asked for at the dearest prices: 1000 1 h cache writes (0.006) and 1000 output (0.015) = 0.021
  await g.send(admitted.map((id) => ({ ...complete(key, id, { input: 0, output: 1000 }), cache_creation_input_tokens: 1000, cache_creation_1h_input_tokens: 1000 })))
  t.equal((await keyRow(g, key.id as string)).balance_used, '84000000', '4 × 0.021 = 0.084 ≤ 0.1: never past the limit')

  // one request past its estimate: 5000 output (0.075) against its hold of 0.021000002 — the limit is passed by at most 0.075 − 0.021000002
  const over = await g.verify({ key: key.key, request_id: 'over', ...estimate, estimated_input_tokens: 0 })
  t.equal(over.statusCode, 200, '0.084 + 0.015000002 ≤ 0.1')
  await g.send([complete(key, 'over', { input: 0, output: 5000 })])
  const used = BigInt((await keyRow(g, key.id as string)).balance_used)
  t.equal(used, 159_000_000n, '0.084 + 0.075')
  t.ok(used - 100_000_000n <= 75_000_000n - 15_000_002n, 'past the limit by no more than that request\'s cost above its hold')
  t.equal((await g.verify({ key: key.key, request_id: 'after' })).statusCode, 402, 'and nothing more is admitted')
})

t.test('bad reservations are 4xx, and the holds list is for admins', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  for (const body of [
    { request_id: '' }, { request_id: 'x'.repeat(129) }, { request_id: 'a', estimated_input_tokens: -1 },
    { request_id: 'a', max_output_tokens: 2 ** 31 }, { request_id: 'a', estimated_input_tokens: 1.5 }, { request_id: 7 }
  ]) {
    const res = await g.verify({ key: key.key, ...body })
    t.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 60))
  }
  t.equal((await g.verify({ key: 'km-not-a-key', request_id: 'q' })).statusCode, 401, 'an unknown key holds nothing')
  t.equal((await g.app.pg.query('SELECT count(*)::int AS n FROM admission_holds')).rows[0].n, 0)

  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/admission/holds' })).statusCode, 401)
  const user = await g.user()
  const login = await g.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.username, password: 'correct-horse-battery' } })
  const headers = { authorization: `Bearer ${login.json().access_token as string}` }
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/admission/holds', headers })).statusCode, 403)
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/admission/holds?api_key_id=nope', headers: g.admin.headers })).statusCode, 400)
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/admission/holds?limit=1001', headers: g.admin.headers })).statusCode, 400)
})

t.test('token limits and the rate window\'s length: per key, held at admission, settled to the actual tokens', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ token_limit: 3000, rate_limit: 10, rate_window_seconds: 5 })
  t.match(key, { token_limit: 3000, rate_limit: 10, rate_window_seconds: 5 }, 'the key record')
  const reserve = (id: string, input: number, output: number) => g.verify({ key: key.key, request_id: id, estimated_input_tokens: input, max_output_tokens: output })
  t.equal((await reserve('t1', 1000, 1000)).statusCode, 200, '2000 of 3000')
  const over = await reserve('t2', 1000, 1000)
  t.equal(over.statusCode, 429, '2000 + 2000 > 3000')
  t.match(over.json().error, { type: 'token_limited', message: /token limit of 3000 tokens per 5 s/ })
  t.ok(Number(over.headers['retry-after']) >= 1 && Number(over.headers['retry-after']) <= 5, 'Retry-After within the 5 s window')
  t.equal((await reserve('t3', 500, 500)).statusCode, 200, '2000 + 1000 = 3000: exactly at the limit')
  // t1 used 300 tokens, not 2000: the window holds 300 (its row) + 1000 (t3's hold)
  await g.send([{ ...complete(key, 't1', { input: 200, output: 100 }), model: 'unpriced' }])
  t.equal((await reserve('t4', 1000, 700)).statusCode, 200, '300 + 1000 + 1700 = 3000')
  t.equal((await reserve('t5', 0, 1)).statusCode, 429, 'and not one token more')
  // the window is 5 s: once its requests are older, the room is back
  await g.app.pg.query("UPDATE usage SET created_at = now() - interval '6 seconds'")
  // (the window's per-second counts move with their rows: the same 6 s, whole seconds)
  await g.app.pg.query("UPDATE usage_key_seconds SET second = date_trunc('second', now() - interval '6 seconds')")
  await g.app.pg.query("UPDATE admission_holds SET created_at = now() - interval '6 seconds'")
  t.equal((await reserve('t6', 1000, 1000)).statusCode, 200, 'after 5 s, 2000 tokens fit again')
  const stats = await g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: { authorization: `Bearer ${key.key as string}` } })
  t.match(stats.json().limits, { token_limit: 3000, rate_window_seconds: 5, current_window_tokens: 2000, current_window_requests: 1 }, 'the key holder sees the window')

  // an advisory verify: the window's tokens from recorded requests alone
  const plain = await g.standaloneKey({ token_limit: 100 })
  t.equal((await g.verify({ key: plain.key })).statusCode, 200)
  await g.send([{ ...complete(plain, 'p1', { input: 60, output: 40 }), model: 'unpriced' }])
  t.equal((await g.verify({ key: plain.key })).statusCode, 429, '100 of 100 tokens used in the last 60 s')

  for (const body of [{ rate_window_seconds: 0 }, { rate_window_seconds: 86_401 }, { token_limit: 0 }, { token_limit: 1.5 }]) {
    const res = await g.app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: g.admin.headers, payload: { name: 'bad', ...body } })
    t.equal(res.statusCode, 400, JSON.stringify(body))
  }
})

t.test('batches: one request_id sent many times at once holds once; keys of one owner in one batch share the quota', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  // ten verifies of one request at once: they land in the same batch or in later ones, never two holds
  const answers = await Promise.all(Array.from({ length: 10 }, async () => await g.verify({ key: key.key, request_id: 'same-request' })))
  t.same(answers.map((res) => res.statusCode), Array(10).fill(200), 'every one admitted')
  t.equal(new Set(answers.map((res) => JSON.stringify(res.json().hold))).size, 1, 'all answered with the one hold')
  t.same(answers.map((res) => res.json().hold.amount_usd), Array(10).fill(0.01))
  const listed = await holds(g, `?api_key_id=${key.id as string}`)
  t.equal(listed.total, 1, 'one hold recorded')
  t.equal(listed.held_usd, 0.01)

  // a quota of 0.03 and three keys: 30 reservations at once (several per batch, keys mixed)
  const user = await g.user({ quota_usd: 0.03 })
  const keys = [await g.userKey(user.id as string), await g.userKey(user.id as string), await g.userKey(user.id as string)]
  const mixed = await Promise.all(Array.from({ length: 30 }, async (_v, i) => await g.verify({ key: keys[i % 3]!.key, request_id: `mixed-${i}` })))
  t.equal(mixed.filter((res) => res.statusCode === 200).length, 3, 'three admitted over the three keys')
  t.ok(mixed.filter((res) => res.statusCode !== 200).every((res) => res.statusCode === 402 && res.json().error.type === 'balance_exhausted'), 'the rest refused: the owner\'s quota')

  // a balance of 0.05, five at once: each answer's remaining balance counts the holds admitted before it
  const balance = await g.standaloneKey({ initial_balance_usd: 0.05 })
  const five = await Promise.all(Array.from({ length: 5 }, async (_v, i) => await g.verify({ key: balance.key, request_id: `five-${i}` })))
  t.same(five.map((res) => res.json().remaining_balance_usd as number).sort(), [0, 0.01, 0.02, 0.03, 0.04], '0.05 − 0.01 × (1 … 5)')
})

t.test('batches hand their connection on: one checkout while requests wait, back in the pool when none do', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  const pool = g.app.pg
  // one request a batch: twenty batches in a row, each starting as the last one ends
  const reserver = new Reserver(pool, g.app.keyring, { timeZone: 'UTC', pendingTimeoutMinutes: 30, holdTtlSeconds: 60, maxBatch: 1 })
  let checkouts = 0
  const count = () => { checkouts++ }
  pool.on('acquire', count)
  t.teardown(() => { pool.off('acquire', count) })
  const ids = Array.from({ length: 20 }, (_v, i) => `handed-${i}`)
  const held = await Promise.all(ids.map(async (id) => await reserver.reserve({ key: key.key as string }, { request_id: id, amount: 10n ** 7n, tokens: 0n })))
  t.same(held.map((answer) => answer.hold.request_id), ids, 'each request answered with its own hold')
  t.equal(checkouts, 1, 'the first batch checked a connection out; the nineteen after it were handed it')
  t.equal(pool.idleCount, pool.totalCount, 'with nothing waiting, the connection is back in the pool')
  t.equal((await holds(g, `?api_key_id=${key.id as string}`)).total, 20, 'every batch committed its hold')
})
