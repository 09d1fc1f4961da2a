import t from 'tap'
import pg from 'pg'
import { buildTestApp, GATEWAY_TOKEN, logCapture, signIn } from '../helper.js'

const KEY = /^sk-[0-9A-Za-z]{48}$/

t.test('a standalone key: created once with its full record, never shown again except on an audited reveal', async (t) => {
  const logs = logCapture()
  const { app, url } = await buildTestApp(t, { logStream: logs.stream })
  const admin = await signIn(app, 'admin', 'root')
  const res = await app.inject({
    method: 'POST', url: '/api/admin/api-keys', headers: admin.headers,
    payload: { name: 'partner', initial_balance_usd: 10, rate_limit: 60, allowed_models: ['claude-sonnet-4'], allowed_providers: [], expire_days: 30, tags: ['beta'] }
  })
  t.equal(res.statusCode, 201)
  const created = res.json()
  t.match(created.key, KEY)
  t.match(created, {
    name: 'partner', user_id: admin.id, username: 'root', is_standalone: true, is_active: true,
    current_balance_usd: 10, balance_used_usd: 0, remaining_balance_usd: 10, total_requests: 0, total_cost_usd: 0,
    rate_limit: 60, allowed_models: ['claude-sonnet-4'], allowed_providers: null, tags: ['beta'], auto_delete_on_expiry: null
  })
  t.equal(created.key_display, `${created.key.slice(0, 7)}…${created.key.slice(-4)}`)
  const days = (new Date(created.expires_at).getTime() - Date.now()) / 86_400_000
  t.ok(days > 29.9 && days <= 30, 'expires in 30 days')

  // a second key for the user routes, and an own key
  const own = await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: admin.headers, payload: { name: 'mine' } })
  t.match(own.json().key, KEY)
  const keys = [created.key as string, own.json().key as string]

  const list = await app.inject({ method: 'GET', url: '/api/admin/api-keys', headers: admin.headers })
  t.equal(list.json().total, 1, 'the standalone list holds standalone keys only')
  const get = await app.inject({ method: 'GET', url: `/api/admin/api-keys/${created.id}`, headers: admin.headers })
  const mine = await app.inject({ method: 'GET', url: '/api/users/me/api-keys', headers: admin.headers })
  for (const body of [list.body, get.body, mine.body]) for (const key of keys) t.notOk(body.includes(key), 'no full key in list or get')
  t.notOk('key' in get.json())

  const reveal = await app.inject({ method: 'GET', url: `/api/admin/api-keys/${created.id}?include_key=true`, headers: admin.headers })
  t.equal(reveal.json().key, created.key)
  await app.pipeline.readAuditsWritten()
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'api_keys.reveal' } })
  t.match(audit.metadata, { key_id: created.id })

  // no column of any table holds a plaintext key
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const tables = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
  for (const { table_name: table } of tables.rows) {
    const dump = await client.query(`SELECT * FROM "${table}"`)
    const text = JSON.stringify(dump.rows)
    for (const key of keys) t.notOk(text.includes(key) || text.includes(key.slice(3)), `no key in ${table}`)
  }
  for (const key of keys) t.notOk(logs.text().includes(key.slice(3)), 'no key in the logs')
})

t.test('PUT is a partial update: null clears, [] allows all, a past expiry is allowed', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const made = await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'k', rate_limit: 10, daily_cost_limit_usd: 1.5, allowed_models: ['a'], auto_delete_on_expiry: true } })
  const id = made.json().id
  const put = await app.inject({ method: 'PUT', url: `/api/admin/api-keys/${id}`, headers: admin.headers, payload: { rate_limit: null, allowed_models: [], expires_at: '2020-01-01T00:00:00Z', auto_delete_on_expiry: null } })
  t.equal(put.statusCode, 200)
  t.match(put.json(), { name: 'k', rate_limit: null, daily_cost_limit_usd: 1.5, allowed_models: null, expires_at: '2020-01-01T00:00:00.000Z', auto_delete_on_expiry: null })
  const both = await app.inject({ method: 'PUT', url: `/api/admin/api-keys/${id}`, headers: admin.headers, payload: { expire_days: 3, expires_at: '2030-01-01T00:00:00Z' } })
  t.equal(both.statusCode, 400)
  const toggled = await app.inject({ method: 'PATCH', url: `/api/admin/api-keys/${id}`, headers: admin.headers })
  t.same(toggled.json(), { id, is_active: false, message: 'API key disabled' })
  const back = await app.inject({ method: 'PATCH', url: `/api/admin/api-keys/${id}`, headers: admin.headers })
  t.equal(back.json().is_active, true)
  const soft = await app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${id}?hard=false`, headers: admin.headers })
  t.equal(soft.statusCode, 200)
  t.equal((await app.prisma.apiKey.findUniqueOrThrow({ where: { id } })).isActive, false, 'hard=false disables')
  const hard = await app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${id}`, headers: admin.headers })
  t.equal(hard.statusCode, 200)
  t.equal(await app.prisma.apiKey.count({ where: { id } }), 0, 'DELETE deletes, as Aether\'s page expects')
})

t.test('balance: top-ups and deductions, and every refusal leaves the balance alone', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const standalone = (await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 's', initial_balance_usd: 1 } })).json()
  const userKey = (await app.inject({ method: 'POST', url: `/api/admin/users/${user.id}/api-keys`, headers: admin.headers, payload: { name: 'u' } })).json()
  const balance = (id: string, payload: unknown, headers = admin.headers) => app.inject({ method: 'PATCH', url: `/api/admin/api-keys/${id}/balance`, headers, payload: payload as object })

  const up = await balance(standalone.id, { amount_usd: 2.25 })
  t.equal(up.statusCode, 200)
  t.match(up.json(), { current_balance_usd: 3.25, remaining_balance_usd: 3.25 })
  const down = await balance(standalone.id, { amount_usd: -3 })
  t.match(down.json(), { current_balance_usd: 0.25, remaining_balance_usd: 0.25 })

  const refusals: Array<[string, unknown, number, string, typeof admin.headers?]> = [
    [standalone.id, { amount_usd: 0 }, 400, 'invalid_input'],
    [standalone.id, { amount_usd: '1' }, 400, 'validation_error'],
    [standalone.id, { amount_usd: -0.26 }, 400, 'insufficient_balance'],
    [standalone.id, {}, 400, 'validation_error'],
    [userKey.id, { amount_usd: 1 }, 400, 'not_standalone'],
    ['00000000-0000-4000-8000-000000000000', { amount_usd: 1 }, 404, 'not_found'],
    ['not-a-uuid', { amount_usd: 1 }, 400, 'validation_error'],
    [standalone.id, { amount_usd: 1 }, 403, 'forbidden', user.headers]
  ]
  for (const [id, payload, status, type, headers] of refusals) {
    const res = await balance(id, payload, headers)
    t.equal(res.statusCode, status, `${JSON.stringify(payload)} → ${status}`)
    t.match(res.json(), { error: { type, message: String }, request_id: String })
  }
  const row = await app.prisma.apiKey.findUniqueOrThrow({ where: { id: standalone.id } })
  t.equal(row.currentBalance, 250_000_000n, 'unchanged by the refusals')
  const audited = await app.prisma.auditLog.count({ where: { action: 'api_keys.adjust_balance', success: false } })
  t.equal(audited, refusals.length, 'every refusal audited')
})

t.test('50 concurrent +0.10 top-ups end exactly 5.00 higher', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const key = (await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 's', initial_balance_usd: 1 } })).json()
  const results = await Promise.all(Array.from({ length: 50 }, () =>
    app.inject({ method: 'PATCH', url: `/api/admin/api-keys/${key.id}/balance`, headers: admin.headers, payload: { amount_usd: 0.1 } })))
  t.ok(results.every((r) => r.statusCode === 200))
  const row = await app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(row.currentBalance, 6_000_000_000n)
})

t.test('users: own keys and other people\'s keys', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const alice = await signIn(app, 'user')
  const bob = await signIn(app, 'user')
  const aliceKey = (await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: alice.headers, payload: { name: 'a' } })).json()
  t.equal(aliceKey.is_standalone, false)
  t.equal(aliceKey.user_id, alice.id)
  const extra = await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: alice.headers, payload: { name: 'a', rate_limit: 5 } })
  t.equal(extra.statusCode, 400, 'users cannot set their own limits')

  for (const [method, suffix] of [['GET', ''], ['PATCH', ''], ['DELETE', '']] as const) {
    const res = await app.inject({ method, url: `/api/users/me/api-keys/${aliceKey.id}${suffix}`, headers: bob.headers })
    t.equal(res.statusCode, 404, `${method} on another user's key is a 404`)
    t.equal(res.json().error.type, 'not_found')
  }
  const viaWrongUser = await app.inject({ method: 'GET', url: `/api/admin/users/${bob.id}/api-keys/${aliceKey.id}`, headers: admin.headers })
  t.equal(viaWrongUser.statusCode, 404, 'the admin per-user path checks ownership too')
  const nonAdmin = await app.inject({ method: 'GET', url: `/api/admin/users/${alice.id}/api-keys`, headers: alice.headers })
  t.equal(nonAdmin.statusCode, 403)
  t.equal((await app.prisma.apiKey.findUniqueOrThrow({ where: { id: aliceKey.id } })).isActive, true, 'nothing changed')

  const list = await app.inject({ method: 'GET', url: `/api/admin/users/${alice.id}/api-keys`, headers: admin.headers })
  t.equal(list.json().total, 1)
  const made = await app.inject({ method: 'POST', url: `/api/admin/users/${alice.id}/api-keys`, headers: admin.headers, payload: { name: 'by admin', concurrent_limit: 2, total_cost_limit_usd: 100 } })
  t.match(made.json(), { user_id: alice.id, concurrent_limit: 2, total_cost_limit_usd: 100, is_standalone: false })
  const put = await app.inject({ method: 'PUT', url: `/api/admin/users/${alice.id}/api-keys/${made.json().id}`, headers: admin.headers, payload: { name: 'renamed' } })
  t.equal(put.json().name, 'renamed')
  const toggle = await app.inject({ method: 'PATCH', url: `/api/admin/users/${alice.id}/api-keys/${made.json().id}`, headers: admin.headers })
  t.equal(toggle.json().is_active, false)
  const del = await app.inject({ method: 'DELETE', url: `/api/admin/users/${alice.id}/api-keys/${made.json().id}?hard=true`, headers: admin.headers })
  t.equal(del.statusCode, 200)
  const unknownUser = await app.inject({ method: 'POST', url: '/api/admin/users/00000000-0000-4000-8000-000000000000/api-keys', headers: admin.headers, payload: { name: 'x' } })
  t.equal(unknownUser.statusCode, 404)

  const ownToggle = await app.inject({ method: 'PATCH', url: `/api/users/me/api-keys/${aliceKey.id}`, headers: alice.headers })
  t.equal(ownToggle.json().is_active, false)
  const ownGet = await app.inject({ method: 'GET', url: `/api/users/me/api-keys/${aliceKey.id}`, headers: alice.headers })
  t.equal(ownGet.json().is_active, false)
  const ownDelete = await app.inject({ method: 'DELETE', url: `/api/users/me/api-keys/${aliceKey.id}`, headers: alice.headers })
  t.equal(ownDelete.statusCode, 200)
  t.equal(await app.prisma.apiKey.count({ where: { id: aliceKey.id } }), 0)
})

t.test('key stats: totals and days cut in the requested time zone', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const key = (await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 's' } })).json()
  // through ingestion, which keeps the rollups the statistics read: 100 tokens of m cost 1.5 USD, 50 of m2 0.5 USD
  const price = async (model: string, input: number) => {
    const res = await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { model, effective_from: '2020-01-01T00:00:00Z', tiers: [{ up_to: null, input, output: 0 }] } })
    t.equal(res.statusCode, 201, `price of ${model}`)
  }
  await price('m', 15_000)
  await price('m2', 10_000)
  const base = (requestId: string, model: string, createdAt: string) => ({ request_id: requestId, api_key_id: key.id, model, created_at: createdAt })
  const ingested = await app.inject({
    method: 'POST',
    url: '/api/gateway/usage',
    headers: { authorization: `Bearer ${GATEWAY_TOKEN}` },
    payload: {
      events: [
        { type: 'complete', ...base('r1', 'm', '2026-03-01T23:30:00Z'), status: 'completed', input_tokens: 100, output_tokens: 0, response_time_ms: 200 },
        { type: 'complete', ...base('r2', 'm2', '2026-03-01T10:00:00Z'), status: 'completed', input_tokens: 50, output_tokens: 0, response_time_ms: 400 },
        { type: 'start', ...base('r3', 'm', '2026-03-01T11:00:00Z') }
      ]
    }
  })
  t.same(ingested.json().results.map((r: { outcome: string }) => r.outcome), ['recorded', 'recorded', 'recorded'])

  const stats = async (tz: string) => {
    const res = await app.inject({ method: 'GET', url: `/api/admin/api-keys/${key.id}/stats?start_date=2026-03-01T00:00:00Z&end_date=2026-03-03T00:00:00Z&timezone=${encodeURIComponent(tz)}`, headers: admin.headers })
    t.equal(res.statusCode, 200, tz)
    return res.json()
  }
  const utc = await stats('UTC')
  t.match(utc, { key_id: key.id, key_name: 's', total_requests: 2, total_tokens: 150, total_cost_usd: 2, avg_response_time_ms: 300 })
  t.same(utc.daily_stats, [
    { date: '2026-03-01', requests: 2, tokens: 150, cost_usd: 2 },
    { date: '2026-03-02', requests: 0, tokens: 0, cost_usd: 0 }
  ], '23:30 UTC is the same day in UTC; days are zero-filled; pending requests are left out')
  const shanghai = await stats('Asia/Shanghai')
  t.same(shanghai.daily_stats.find((d: { date: string }) => d.date === '2026-03-02'), { date: '2026-03-02', requests: 1, tokens: 100, cost_usd: 1.5 }, '23:30 UTC is the next day in Shanghai')
  t.equal(shanghai.daily_stats[0].date, '2026-03-01')
  t.equal(shanghai.daily_stats.at(-1).date, '2026-03-03', 'the range ends at 08:00 on the 3rd in Shanghai')

  const badZone = await app.inject({ method: 'GET', url: `/api/admin/api-keys/${key.id}/stats?timezone=Mars/Olympus`, headers: admin.headers })
  t.equal(badZone.statusCode, 400)
  t.equal(badZone.json().error.field, 'query.timezone')
  const backwards = await app.inject({ method: 'GET', url: `/api/admin/api-keys/${key.id}/stats?start_date=2026-03-02T00:00:00Z&end_date=2026-03-01T00:00:00Z`, headers: admin.headers })
  t.equal(backwards.statusCode, 400)
  const unknown = await app.inject({ method: 'GET', url: '/api/admin/api-keys/00000000-0000-4000-8000-000000000000/stats', headers: admin.headers })
  t.equal(unknown.statusCode, 404)
})

t.test('your own keys, as Aether\'s page reads them: a bare array newest first with X-Total-Count, and the full key on include_key, audited', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = await signIn(app, 'user')
  const bob = await signIn(app, 'user')
  const made = []
  for (const name of ['first', 'second', 'third']) {
    const res = await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: alice.headers, payload: { name } })
    t.equal(res.statusCode, 201)
    made.push(res.json() as { id: string, key: string })
  }
  await app.prisma.apiKey.update({ where: { id: made[0]!.id }, data: { createdAt: new Date(Date.now() - 60_000) } })
  await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: bob.headers, payload: { name: 'bobs' } })

  const list = await app.inject({ method: 'GET', url: '/api/users/me/api-keys?page_size=5', headers: alice.headers })
  t.equal(list.statusCode, 200, 'an unknown parameter is ignored')
  t.ok(Array.isArray(list.json()), 'a bare array')
  t.same(list.json().map((k: { name: string }) => k.name).slice(-1), ['first'], 'newest first: the oldest last')
  t.equal(list.json().length, 3, 'only the caller\'s keys')
  t.equal(list.headers['x-total-count'], '3')
  const paged = await app.inject({ method: 'GET', url: '/api/users/me/api-keys?limit=1&skip=2', headers: alice.headers })
  t.same(paged.json().map((k: { name: string }) => k.name), ['first'])
  t.equal(paged.headers['x-total-count'], '3', 'the total, not the page')
  for (const key of made) t.notOk(list.body.includes(key.key), 'no full key in the list')

  const plain = await app.inject({ method: 'GET', url: `/api/users/me/api-keys/${made[1]!.id}`, headers: alice.headers })
  t.notOk('key' in plain.json(), 'no full key unless asked')
  const reveal = await app.inject({ method: 'GET', url: `/api/users/me/api-keys/${made[1]!.id}?include_key=true`, headers: alice.headers })
  t.equal(reveal.statusCode, 200)
  t.equal(reveal.json().key, made[1]!.key, 'your own key, whole')
  const others = await app.inject({ method: 'GET', url: `/api/users/me/api-keys/${made[1]!.id}?include_key=true`, headers: bob.headers })
  t.equal(others.statusCode, 404, 'someone else\'s key is not found')
  t.notOk(others.body.includes(made[1]!.key))

  await app.pipeline.readAuditsWritten()
  const reveals = await app.prisma.auditLog.findMany({ where: { action: 'own_api_keys.reveal' } })
  t.equal(reveals.length, 1, 'the reveal is audited under its own action')
  t.match(reveals[0], { userId: alice.id, statusCode: 200, metadata: { key_id: made[1]!.id } })
  t.notOk(JSON.stringify(reveals).includes(made[1]!.key), 'the key is not in the audit row')
})
