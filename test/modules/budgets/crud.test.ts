// The admin routes of budgets: validation (4xx with the reason), the bound per owner,
// audit rows, scoping (a budget of another owner is a 404), and the reports in the admin
// key record and the key holder's user-stats.
import t from 'tap'
import { gateway, UNKNOWN_UUID } from '../gateway/fixtures.js'

/** 1 USD per 1M input tokens */
const TIERS = [{ up_to: null, input: 1, output: 0, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1 }]

t.test('create, list, update, delete; defaults; audit rows', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const url = `/api/admin/api-keys/${key.id as string}/budgets`
  const week = await g.adminCall('POST', url, { period: 'week', limit_usd: 12.5 })
  t.match(week, { scope: 'key', api_key_id: key.id, user_id: null, model: null, period: 'week', time_zone: 'UTC', week_start: 1, duration_seconds: null, limit_usd: 12.5, spent_usd: 0, held_usd: 0, remaining_usd: 12.5 },
    'a week in APP_TIMEZONE (UTC here) from Monday by default')
  t.equal(new Date(week.window_start).getUTCDay(), 1, 'the window starts on a Monday')
  t.equal(Date.parse(week.resets_at) - Date.parse(week.window_start), 7 * 86_400_000, 'and lasts a week')

  const rolling = await g.adminCall('POST', url, { period: 'rolling', duration_seconds: 3600, limit_usd: 1, model: 'gpt-x' })
  t.match(rolling, { period: 'rolling', time_zone: null, week_start: null, duration_seconds: 3600, model: 'gpt-x', resets_at: null })
  t.same((await g.adminCall('GET', url)).budgets.map((b: { id: string }) => b.id), [week.id, rolling.id], 'listed oldest first')

  // week → day: week_start dropped, the zone kept; the limit unchanged
  const day = await g.adminCall('PUT', `${url}/${week.id as string}`, { period: 'day', time_zone: 'Asia/Kolkata' })
  t.match(day, { id: week.id, period: 'day', week_start: null, time_zone: 'Asia/Kolkata', limit_usd: 12.5 })
  t.equal(new Date(day.window_start).getUTCMinutes(), 30, 'a Kolkata day starts at :30 UTC')
  t.match(await g.adminCall('PUT', `${url}/${week.id as string}`, { limit_usd: 3, model: 'm' }), { period: 'day', limit_usd: 3, model: 'm', time_zone: 'Asia/Kolkata' })
  t.match(await g.adminCall('PUT', `${url}/${week.id as string}`, { model: null }), { model: null })
  // rolling → month: the zone defaults again, the duration goes
  t.match(await g.adminCall('PUT', `${url}/${rolling.id as string}`, { period: 'month' }), { period: 'month', time_zone: 'UTC', duration_seconds: null })
  // within one period, what is not given is kept
  const wednesday = await g.adminCall('POST', url, { period: 'week', week_start: 3, time_zone: 'America/New_York', limit_usd: 4 })
  t.match(await g.adminCall('PUT', `${url}/${wednesday.id as string}`, { limit_usd: 5 }), { week_start: 3, time_zone: 'America/New_York', limit_usd: 5 })
  const hour = await g.adminCall('POST', url, { period: 'rolling', duration_seconds: 3600, limit_usd: 1 })
  t.match(await g.adminCall('PUT', `${url}/${hour.id as string}`, { limit_usd: 2 }), { duration_seconds: 3600, limit_usd: 2 })
  await g.adminCall('DELETE', `${url}/${wednesday.id as string}`)
  await g.adminCall('DELETE', `${url}/${hour.id as string}`)
  t.same(await g.adminCall('DELETE', `${url}/${rolling.id as string}`), { message: 'budget deleted' })
  t.equal((await g.adminCall('GET', url)).budgets.length, 1)

  await g.app.pipeline.readAuditsWritten()
  const { rows } = await g.app.pg.query("SELECT action, success, metadata FROM audit_logs WHERE action LIKE 'api_key_budgets.%' ORDER BY created_at, action")
  const actions = rows.map((r) => r.action)
  const count = (action: string) => actions.filter((a) => a === action).length
  t.same([count('api_key_budgets.create'), count('api_key_budgets.update'), count('api_key_budgets.delete'), count('api_key_budgets.list')], [4, 6, 3, 2], 'each call audited')
  t.match(rows.find((r) => r.action === 'api_key_budgets.create')!.metadata, { key_id: key.id, budget_id: week.id, period: 'week', limit_usd: 12.5 })

  // a user's budgets, at their own door
  const user = await g.user()
  const userUrl = `/api/admin/users/${user.id as string}/budgets`
  t.match(await g.adminCall('POST', userUrl, { period: 'month', time_zone: 'Europe/Berlin', limit_usd: 100 }), { scope: 'user', user_id: user.id, api_key_id: null })
  t.equal((await g.adminCall('GET', userUrl)).budgets.length, 1)
  t.equal((await g.app.pg.query("SELECT count(*)::int AS n FROM audit_logs WHERE action = 'user_budgets.create' AND metadata->>'target_user_id' = $1", [user.id])).rows[0].n, 1)

  // deleting the key deletes its budgets
  await g.adminCall('DELETE', `/api/admin/api-keys/${key.id as string}`)
  t.equal((await g.app.pg.query('SELECT count(*)::int AS n FROM budgets WHERE api_key_id = $1', [key.id])).rows[0].n, 0)
})

t.test('bad input is a 4xx naming the reason; nothing is written', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const url = `/api/admin/api-keys/${key.id as string}/budgets`
  const post = (payload: object, at = url) => g.app.inject({ method: 'POST', url: at, headers: g.admin.headers, payload })
  const cases: Array<[object, number, RegExp]> = [
    [{ period: 'day', limit_usd: 1, time_zone: 'Mars/Olympus' }, 400, /body\.time_zone: unknown time zone "Mars\/Olympus"/],
    [{ period: 'day', limit_usd: 1, week_start: 2 }, 400, /body\.week_start applies only to a week budget/],
    [{ period: 'day', limit_usd: -1 }, 400, /limit_usd/],
    [{ period: 'day', limit_usd: 0 }, 400, /limit_usd/],
    [{ period: 'day', limit_usd: 1e-12 }, 400, /body\.limit_usd must be at least one nano-USD/],
    [{ period: 'rolling', limit_usd: 1 }, 400, /body\.duration_seconds is required for a rolling budget/],
    [{ period: 'rolling', limit_usd: 1, duration_seconds: 59 }, 400, /duration_seconds/],
    [{ period: 'rolling', limit_usd: 1, duration_seconds: 366 * 86_400 + 1 }, 400, /duration_seconds/],
    [{ period: 'rolling', limit_usd: 1, duration_seconds: 60, time_zone: 'UTC' }, 400, /body\.time_zone does not apply to a rolling budget/],
    [{ period: 'month', limit_usd: 1, duration_seconds: 60 }, 400, /body\.duration_seconds applies only to a rolling budget/],
    [{ period: 'week', limit_usd: 1, week_start: 7 }, 400, /week_start/],
    [{ period: 'year', limit_usd: 1 }, 400, /period/],
    [{ period: 'day', limit_usd: 1, extra: true }, 400, /unknown field/],
    [{ limit_usd: 1 }, 400, /period/]
  ]
  for (const [body, status, message] of cases) {
    const res = await post(body)
    t.equal(res.statusCode, status, JSON.stringify(body))
    t.match(res.json().error.message, message)
  }
  t.equal((await post({ period: 'day', limit_usd: 1 }, `/api/admin/api-keys/${UNKNOWN_UUID}/budgets`)).statusCode, 404, 'unknown key')
  t.equal((await post({ period: 'day', limit_usd: 1 }, `/api/admin/users/${UNKNOWN_UUID}/budgets`)).statusCode, 404, 'unknown user')
  t.equal((await g.app.inject({ method: 'GET', url: `/api/admin/api-keys/${UNKNOWN_UUID}/budgets`, headers: g.admin.headers })).statusCode, 404)
  t.equal((await g.app.inject({ method: 'GET', url: `/api/admin/users/${UNKNOWN_UUID}/budgets`, headers: g.admin.headers })).statusCode, 404)
  t.equal((await g.app.pg.query('SELECT count(*)::int AS n FROM budgets')).rows[0].n, 0, 'nothing written')
  const refusal = (await g.app.pg.query("SELECT success FROM audit_logs WHERE action = 'api_key_budgets.create' ORDER BY created_at DESC LIMIT 1")).rows[0]
  t.equal(refusal.success, false, 'a refused create is audited')

  // the bound: 20 per key
  for (let i = 0; i < 20; i++) await g.adminCall('POST', url, { period: 'day', limit_usd: i + 1 })
  const tooMany = await post({ period: 'day', limit_usd: 1 })
  t.equal(tooMany.statusCode, 409)
  t.match(tooMany.json().error, { type: 'limit_reached', message: 'a key may have at most 20 budgets' })

  // another owner's budget is not found through this key; bad updates refused, the row unchanged
  const one = (await g.adminCall('GET', url)).budgets[0]
  const other = await g.standaloneKey()
  const put = (at: string, payload: object) => g.app.inject({ method: 'PUT', url: at, headers: g.admin.headers, payload })
  t.equal((await put(`/api/admin/api-keys/${other.id as string}/budgets/${one.id as string}`, { limit_usd: 5 })).statusCode, 404)
  t.equal((await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${other.id as string}/budgets/${one.id as string}`, headers: g.admin.headers })).statusCode, 404)
  t.equal((await put(`${url}/${one.id as string}`, { period: 'rolling' })).statusCode, 400, 'rolling needs a duration')
  t.equal((await put(`${url}/${one.id as string}`, { week_start: 3 })).statusCode, 400, 'week_start on a day budget')
  t.equal((await put(`${url}/${one.id as string}`, {})).statusCode, 400, 'an empty update')
  t.match((await g.adminCall('GET', url)).budgets[0], { id: one.id, period: 'day', limit_usd: 1 })
  t.equal((await put(`/api/admin/users/${UNKNOWN_UUID}/budgets/${one.id as string}`, { limit_usd: 5 })).statusCode, 404)

  // only admins
  const user = await g.user()
  const login = await g.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.username, password: 'correct-horse-battery' } })
  const headers = { authorization: `Bearer ${login.json().access_token as string}` }
  t.equal((await g.app.inject({ method: 'GET', url, headers })).statusCode, 403)

  // the table refuses what the API refuses (a write that skipped the API)
  await t.rejects(g.app.pg.query('INSERT INTO budgets (api_key_id, user_id, period, time_zone, cost_limit) VALUES ($1, $2, \'day\', \'UTC\', 1)', [key.id, user.id]), /budgets_one_owner/)
  await t.rejects(g.app.pg.query('INSERT INTO budgets (api_key_id, period, time_zone, week_start, cost_limit) VALUES ($1, \'day\', \'UTC\', 1, 1)', [other.id]), /budgets_period_fields/)
  await t.rejects(g.app.pg.query('INSERT INTO budgets (api_key_id, period, time_zone, cost_limit) VALUES ($1, \'day\', \'UTC\', 0)', [other.id]), /budgets_cost_limit_positive/)
})

t.test('reported in the admin key record and in the key holder\'s user-stats, with spend, holds and reset', async (t) => {
  const g = await gateway(t, { ADMISSION_DEFAULT_HOLD_USD: '0.25' })
  await g.price({ model: 'm', tiers: TIERS })
  const user = await g.user()
  const key = await g.userKey(user.id as string)
  const own = await g.adminCall('POST', `/api/admin/api-keys/${key!.id as string}/budgets`, { period: 'day', time_zone: 'America/New_York', limit_usd: 2 })
  const owners = await g.adminCall('POST', `/api/admin/users/${user.id as string}/budgets`, { period: 'rolling', duration_seconds: 86_400, limit_usd: 5, model: 'm' })
  // 0.5 USD spent now (500k input tokens), and a live hold of 0.25 for model m
  await g.send([{ type: 'complete', request_id: 'c1', api_key_id: key!.id, model: 'm', status: 'completed', status_code: 200, input_tokens: 500_000, output_tokens: 0 }])
  t.equal((await g.verify({ key: key!.key, request_id: 'h1', model: 'm' })).statusCode, 200)

  const record = await g.adminCall('GET', `/api/admin/api-keys/${key!.id as string}`)
  t.same(record.budgets.map((b: { id: string }) => b.id), [own.id, owners.id], 'the key\'s budget and its owner\'s')
  t.match(record.budgets[0], { scope: 'key', limit_usd: 2, spent_usd: 0.5, held_usd: 0.25, remaining_usd: 1.25 })
  t.match(record.budgets[1], { scope: 'user', model: 'm', limit_usd: 5, spent_usd: 0.5, held_usd: 0.25, remaining_usd: 4.25, resets_at: null })
  const resets = Date.parse(record.budgets[0].resets_at)
  t.ok(resets > Date.now() && resets - Date.parse(record.budgets[0].window_start) >= 23 * 3_600_000, 'a New York day ahead')
  t.ok(Math.abs(Date.parse(record.budgets[1].window_start) - (Date.now() - 86_400_000)) < 60_000, 'a rolling day: from 24 h ago')
  t.match(await g.adminCall('GET', `/api/admin/api-keys/${key!.id as string}?include_key=true`), { key: key!.key, budgets: [{ id: own.id }, { id: owners.id }] })

  const stats = await g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: { authorization: `Bearer ${key!.key as string}` } })
  t.equal(stats.statusCode, 200)
  // a rolling window slides with now: its start is compared above
  const steady = (budgets: Array<Record<string, unknown>>) => budgets.map((b) => b.period === 'rolling' ? { ...b, window_start: 'now − 24 h' } : b)
  t.same(steady(stats.json().budgets), steady(record.budgets), 'the key holder sees the same budgets')
  const plain = await g.standaloneKey()
  t.same((await g.adminCall('GET', `/api/admin/api-keys/${plain.id as string}`)).budgets, [], 'a key without budgets')
})
