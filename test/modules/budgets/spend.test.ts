// What a budget's window holds: finished requests' cost created in [start, end) — whole
// hours from usage_hourly, raw rows at partial-hour edges — and the live holds it counts.
// The SQL gateway verify reads (budgetsSql) is evaluated at a literal "now"; each request
// costs a distinct power of two (in units of 0.001 USD), so a sum tells which rows counted.
import sql from 'sql-template-tag'
import t from 'tap'
import { budgetsSql, toBudgetStates } from '../../../src/modules/budgets/state.js'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'

/** 1 USD per 1M input tokens: 1000 input tokens cost 0.001 USD = 1,000,000 nano-USD */
const TIERS = [{ up_to: null, input: 1, output: 0, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1 }]
const MILLI = 1_000_000n

let sequence = 0
/** a finished request of `units` × 0.001 USD at `at` */
const done = (key: Json, at: string, units: number, model = 'm', status = 'completed') => ({
  type: 'complete', request_id: `s-${++sequence}`, api_key_id: key.id, model, status, status_code: status === 'failed' ? 500 : 200,
  created_at: at, input_tokens: units * 1000, output_tokens: 0
})

async function statesAt (g: Gateway, where: ReturnType<typeof sql>, now: string) {
  const { rows } = await g.app.pg.query(sql`SELECT ${budgetsSql(where, sql`${now}::timestamptz`)} AS budgets`)
  return toBudgetStates(rows[0].budgets)
}

t.test('a Kolkata day: rows just inside count, rows just outside do not, whole hours and :30 edges alike', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: TIERS })
  await g.price({ model: 'other', tiers: TIERS })
  const key = await g.standaloneKey()
  const all = await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', time_zone: 'Asia/Kolkata', limit_usd: 10 })
  const onlyM = await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', time_zone: 'Asia/Kolkata', limit_usd: 10, model: 'm' })
  // the day of 2026-10-15 in Kolkata (+05:30): [2026-10-14T18:30Z, 2026-10-15T18:30Z)
  await g.send([
    done(key, '2026-10-14T18:10:00.000Z', 1), // outside: in the UTC hour the window starts inside
    done(key, '2026-10-14T18:29:59.999Z', 2), // outside, by a millisecond
    done(key, '2026-10-14T18:30:00.000Z', 4), // inside: the first instant
    done(key, '2026-10-14T18:45:00.000Z', 8), // inside, in the partial first hour
    done(key, '2026-10-15T05:00:00.000Z', 16), // inside, a whole hour
    done(key, '2026-10-15T18:10:00.000Z', 32), // inside, in the partial last hour
    done(key, '2026-10-15T18:29:59.999Z', 64), // inside: the last millisecond
    done(key, '2026-10-15T18:30:00.000Z', 128), // outside: the next day's first instant
    done(key, '2026-10-15T06:00:00.000Z', 256, 'other'), // inside, another model
    done(key, '2026-10-15T07:00:00.000Z', 512, 'm', 'failed') // inside: a failed request is finished (its cost counts, as for every limit)
  ])
  const states = await statesAt(g, sql`b.api_key_id = ${key.id as string}::uuid`, '2026-10-15T12:00:00Z')
  t.same(states.map((s) => s.id), [all.id, onlyM.id], 'oldest first')
  t.equal(states[0]!.spent, (4n + 8n + 16n + 32n + 64n + 256n + 512n) * MILLI, 'every model: 4 + 8 + 16 + 32 + 64 + 256 + 512')
  t.equal(states[1]!.spent, (4n + 8n + 16n + 32n + 64n + 512n) * MILLI, 'model m only: without 256')
  t.same([states[0]!.window_start.toISOString(), states[0]!.window_end.toISOString()], ['2026-10-14T18:30:00.000Z', '2026-10-15T18:30:00.000Z'])

  // the next day holds only the 128 (its first instant)
  const next = await statesAt(g, sql`b.id = ${all.id as string}::uuid`, '2026-10-16T00:00:00Z')
  t.equal(next[0]!.spent, 128n * MILLI)

  // today_cost shares the rule: a UTC day of 2026-10-15 holds 16 + 32 + 64 + 128 + 256 + 512 (and not the 14th's rows)
  const utc = await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', time_zone: 'UTC', limit_usd: 10 })
  t.equal((await statesAt(g, sql`b.id = ${utc.id as string}::uuid`, '2026-10-15T23:00:00Z'))[0]!.spent, (16n + 32n + 64n + 128n + 256n + 512n) * MILLI)
})

t.test('a New York month and a rolling hour; a user budget sums the user\'s keys', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: TIERS })
  const user = await g.user()
  const [a, b] = [await g.userKey(user.id as string), await g.userKey(user.id as string)]
  const month = await g.adminCall('POST', `/api/admin/users/${user.id as string}/budgets`, { period: 'month', time_zone: 'America/New_York', limit_usd: 10 })
  const rolling = await g.adminCall('POST', `/api/admin/users/${user.id as string}/budgets`, { period: 'rolling', duration_seconds: 3600, limit_usd: 10 })
  const keyOnly = await g.adminCall('POST', `/api/admin/api-keys/${a!.id as string}/budgets`, { period: 'month', time_zone: 'America/New_York', limit_usd: 10 })
  // November 2026 in New York: [2026-11-01T04:00Z (EDT midnight), 2026-12-01T05:00Z (EST midnight))
  await g.send([
    done(a!, '2026-11-01T03:59:59.999Z', 1), // October, by a millisecond
    done(a!, '2026-11-01T04:00:00.000Z', 2),
    done(b!, '2026-11-15T12:00:00.000Z', 4),
    done(b!, '2026-11-30T23:30:00.000Z', 8), // the same rolling hour as the 16
    done(a!, '2026-12-01T00:15:00.000Z', 16), // 19:15 EST on the 30th: still November; inside the rolling hour
    done(a!, '2026-12-01T05:00:00.000Z', 32) // December in New York
  ])
  const at = '2026-12-01T00:30:00Z'
  const byId = new Map((await statesAt(g, sql`(b.user_id = ${user.id as string}::uuid OR b.api_key_id = ${a!.id as string}::uuid)`, at)).map((s) => [s.id, s]))
  t.equal(byId.get(month.id)!.spent, (2n + 4n + 8n + 16n) * MILLI, 'the user\'s November over both keys')
  t.equal(byId.get(keyOnly.id)!.spent, (2n + 16n) * MILLI, 'key a\'s own November')
  // (now − 1 h, now]: [2026-11-30T23:30Z, 2026-12-01T00:30Z]
  t.equal(byId.get(rolling.id)!.spent, (8n + 16n) * MILLI, 'the rolling hour, its first instant included')
  t.equal((await statesAt(g, sql`b.id = ${rolling.id as string}::uuid`, '2026-12-01T00:30:00.001Z'))[0]!.spent, 16n * MILLI, 'a millisecond later the 8 has left')
})

t.test('live holds: the owner\'s, of the budget\'s model or of none; an expired hold counts for nothing', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const user = await g.user()
  const [a, b] = [await g.userKey(user.id as string), await g.userKey(user.id as string)]
  const keyAll = await g.adminCall('POST', `/api/admin/api-keys/${a!.id as string}/budgets`, { period: 'day', limit_usd: 10 })
  const keyM = await g.adminCall('POST', `/api/admin/api-keys/${a!.id as string}/budgets`, { period: 'day', limit_usd: 10, model: 'm' })
  const userM = await g.adminCall('POST', `/api/admin/users/${user.id as string}/budgets`, { period: 'day', limit_usd: 10, model: 'm' })
  for (const [key, id, model] of [[a, 'h1', 'm'], [a, 'h2', 'x'], [a, 'h3', undefined], [b, 'h4', 'm'], [b, 'h5', 'x'], [a, 'h6', 'm']] as const) {
    t.equal((await g.verify({ key: key!.key, request_id: id, ...(model !== undefined && { model }) })).statusCode, 200)
  }
  await g.app.pg.query("UPDATE admission_holds SET expires_at = now() - interval '1 second' WHERE request_id = 'h6'")
  const byId = new Map((await statesAt(g, sql`(b.api_key_id = ${a!.id as string}::uuid OR b.user_id = ${user.id as string}::uuid)`, new Date().toISOString())).map((s) => [s.id, s]))
  t.equal(byId.get(keyAll.id)!.held, 30_000_000n, 'key a: h1, h2, h3')
  t.equal(byId.get(keyM.id)!.held, 20_000_000n, 'key a, model m: h1 and the model-less h3')
  t.equal(byId.get(userM.id)!.held, 30_000_000n, 'the user, model m: h1, h3, h4')
})
