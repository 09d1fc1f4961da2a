// Aether's users page (AETHER.md §7.1, §7.3, §7.4) and key deletion (§7.4, §8): the
// list as a bare array, allowed_endpoints, total_usd beside used_usd, the quota reset,
// the API-format options, and DELETE that deletes while usage keeps its history.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { chargeFromRollups } from '../../src/modules/accounting/bulk.js'
import { hashPassword } from '../../src/lib/crypto.js'
import { buildTestApp, createDatabase, signIn } from '../helper.js'
import { gateway, type Gateway, type Json } from './gateway/fixtures.js'

const UNKNOWN = '00000000-0000-4000-8000-000000000000'

t.test('GET /api/admin/users: a bare array of every user (up to 1000) with X-Total-Count; skip, limit, role and is_active; unknown parameters ignored', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin', 'root')
  const user = await signIn(app, 'user', 'plain')
  // 150 more users: past Aether's old default of 100 and keymeter's old envelope page
  const hash = await hashPassword('correct-horse-battery')
  await app.prisma.user.createMany({
    data: Array.from({ length: 150 }, (_, i) => ({ username: `bulk-${String(i).padStart(3, '0')}`, passwordHash: hash, isActive: i % 3 !== 0, createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)) }))
  })
  const get = (query: string, headers = admin.headers) => app.inject({ method: 'GET', url: `/api/admin/users${query}`, headers })

  const all = await get('')
  t.equal(all.statusCode, 200)
  const rows = all.json() as Json[]
  t.ok(Array.isArray(rows), 'a bare array')
  t.equal(rows.length, 152, 'every user without a limit')
  t.equal(all.headers['x-total-count'], '152')
  t.same(rows.slice(0, 2).map((u) => u.username), ['bulk-000', 'bulk-001'], 'oldest first')
  t.match(rows.find((u) => u.username === 'plain'), { id: user.id, role: 'user', is_active: true, quota_usd: null, used_usd: 0, total_usd: 0, allowed_providers: null, allowed_endpoints: null, allowed_api_formats: null, allowed_models: null })

  const page = await get('?skip=2&limit=3')
  t.same(page.json().map((u: Json) => u.username), ['bulk-002', 'bulk-003', 'bulk-004'])
  t.equal(page.headers['x-total-count'], '152', 'the total, not the page')
  t.equal((await get('?limit=1000')).json().length, 152, 'limit 1000 is allowed')

  // the bulk users with i % 3 === 0 are disabled: i = 0, 3, …, 147 → 50 of them
  const inactive = await get('?is_active=false')
  t.equal(inactive.json().length, 50, 'is_active as a string')
  t.ok(inactive.json().every((u: Json) => u.is_active === false))
  const admins = await get('?role=admin&is_active=true')
  t.same(admins.json().map((u: Json) => u.username), ['root'])
  t.equal(admins.headers['x-total-count'], '1')

  const unknown = await get('?page_size=5&search=x')
  t.equal(unknown.statusCode, 200, 'unknown parameters are ignored, not refused')
  t.equal(unknown.json().length, 152)

  for (const query of ['?limit=1001', '?limit=0', '?skip=-1', '?role=owner', '?is_active=maybe']) {
    const bad = await get(query)
    t.equal(bad.statusCode, 400, `${query} → 400`)
    t.equal(typeof bad.json().detail, 'string')
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/users' })).statusCode, 401, 'no token: 401')
  t.equal((await get('', user.headers)).statusCode, 403, 'a regular user: 403')
  await app.pipeline.readAuditsWritten()
  t.equal(await app.prisma.auditLog.count({ where: { action: 'users.list', userId: admin.id, success: true } }), 6, 'each answered list call audited')
})

t.test('allowed_endpoints: Aether\'s name for allowed_api_formats, taken on create and update and answered under both names', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const provider = (await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'anthropic' } })).json()
  const call = (method: 'POST' | 'PUT' | 'GET', url: string, payload?: object) => app.inject({ method, url, headers: admin.headers, ...(payload !== undefined && { payload }) })

  // Aether's create body (Users.vue), whole
  const aether = { username: 'ada', password: 'analytical', email: 'ada@example.com', quota_usd: 25.5, role: 'user', allowed_providers: [provider.id], allowed_endpoints: ['claude:messages'], allowed_models: null }
  const created = await call('POST', '/api/admin/users', aether)
  t.equal(created.statusCode, 201)
  const record = created.json()
  t.match(record, { username: 'ada', email: 'ada@example.com', quota_usd: 25.5, used_usd: 0, total_usd: 0, role: 'user', is_active: true, allowed_providers: [provider.id], allowed_endpoints: ['claude:messages'], allowed_api_formats: ['claude:messages'], allowed_models: null })
  t.same((await app.prisma.user.findUniqueOrThrow({ where: { id: record.id } })).allowedApiFormats, ['claude:messages'], 'stored in the one column')
  t.same((await call('GET', `/api/admin/users/${record.id}`)).json(), record, 'get answers the same record')
  t.match((await call('GET', '/api/admin/users')).json().find((u: Json) => u.id === record.id), { allowed_endpoints: ['claude:messages'], allowed_api_formats: ['claude:messages'], allowed_providers: [provider.id] }, 'the list carries the allow-lists (the edit form prefills from it)')

  const edited = await call('PUT', `/api/admin/users/${record.id}`, { ...aether, password: undefined, allowed_endpoints: ['openai:chat', 'claude:messages'], quota_usd: null })
  t.equal(edited.statusCode, 200)
  t.match(edited.json(), { allowed_endpoints: ['openai:chat', 'claude:messages'], allowed_api_formats: ['openai:chat', 'claude:messages'], quota_usd: null })
  const both = await call('PUT', `/api/admin/users/${record.id}`, { allowed_endpoints: ['a', 'b'], allowed_api_formats: ['b', 'a'] })
  t.equal(both.statusCode, 200, 'both names with the same items: taken')
  t.same(both.json().allowed_endpoints, ['b', 'a'])
  const cleared = await call('PUT', `/api/admin/users/${record.id}`, { allowed_endpoints: null })
  t.equal(cleared.json().allowed_endpoints, null, 'null clears, as the dialog sends for an empty selection')
  t.equal(cleared.json().allowed_api_formats, null)
  const toggled = await call('PUT', `/api/admin/users/${record.id}`, { is_active: false })
  t.match(toggled.json(), { is_active: false, email: 'ada@example.com' }, 'the toggle\'s body alone')

  const differ = await call('PUT', `/api/admin/users/${record.id}`, { allowed_endpoints: ['a'], allowed_api_formats: ['b'] })
  t.equal(differ.statusCode, 400, 'both names, different lists: 400')
  t.match(differ.json(), { error: { type: 'invalid_input', field: 'body.allowed_endpoints' }, detail: /allowed_endpoints and allowed_api_formats/ })
  const nullVsList = await call('POST', '/api/admin/users', { username: 'bob', password: 'long-enough', allowed_endpoints: null, allowed_api_formats: ['a'] })
  t.equal(nullVsList.statusCode, 400, 'null against a list differs too')
  t.equal(await app.prisma.user.count({ where: { username: 'bob' } }), 0, 'nothing created')
  t.equal((await app.prisma.user.findUniqueOrThrow({ where: { id: record.id } })).allowedApiFormats, null, 'nothing changed by the refusal')

  const short = await call('POST', '/api/admin/users', { ...aether, username: 'short', password: 'six666' })
  t.equal(short.statusCode, 400, 'Aether allows 6 characters; keymeter keeps 8')
  t.equal(short.json().error.field, 'body.password')
  const badList = await call('POST', '/api/admin/users', { ...aether, username: 'bad', allowed_endpoints: 'claude:messages' })
  t.equal(badList.statusCode, 400, 'a list, not a string')
})

/** A USD 3 / 1M input price for `m`: 1000 input tokens cost exactly USD 0.003 (3,000,000 nano-USD). */
async function spend (g: Gateway, keyId: string, requestId: string) {
  const [result] = await g.send([{ type: 'complete', request_id: requestId, api_key_id: keyId, model: 'm', status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 0 }])
  if (result?.outcome !== 'recorded') throw new Error(`spend: ${JSON.stringify(result)}`)
}

t.test('total_usd and PATCH /api/admin/users/:id/quota: the reset zeroes used_usd, total_usd keeps counting', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const ada = await g.user({ quota_usd: 1 })
  const bob = await g.user()
  const adaKey = await g.userKey(ada.id)
  const bobKey = await g.userKey(bob.id)
  await spend(g, adaKey.id, 'a1')
  await spend(g, adaKey.id, 'a2')
  await spend(g, bobKey.id, 'b1')
  const record = async (id: string) => g.adminCall('GET', `/api/admin/users/${id}`)
  t.match(await record(ada.id), { used_usd: 0.006, total_usd: 0.006 }, 'two requests of USD 0.003')

  const patch = (id: string, options: { payload?: string, headers?: Record<string, string> } = {}) =>
    g.app.inject({ method: 'PATCH', url: `/api/admin/users/${id}/quota`, headers: { ...g.admin.headers, ...options.headers }, ...(options.payload !== undefined && { payload: options.payload }) })
  const reset = await patch(ada.id)
  t.equal(reset.statusCode, 200, 'no body')
  t.same(reset.json(), { message: 'quota reset', user_id: ada.id, quota_usd: 1, used_usd: 0, total_usd: 0.006 })
  const row = await g.app.prisma.user.findUniqueOrThrow({ where: { id: ada.id } })
  t.same({ used: row.used, total: row.totalUsed }, { used: 0n, total: 6_000_000n }, 'nano-USD in the columns')
  t.match(await record(bob.id), { used_usd: 0.003, total_usd: 0.003 }, 'another user is untouched')

  await spend(g, adaKey.id, 'a3')
  t.match(await record(ada.id), { used_usd: 0.003, total_usd: 0.009 }, 'after the reset a charge lands on both')
  const listed = (await g.adminCall('GET', '/api/admin/users')) as unknown as Json[]
  t.match(listed.find((u) => u.id === ada.id), { used_usd: 0.003, total_usd: 0.009 }, 'the list carries total_usd')

  const empty = await patch(ada.id, { payload: '{}', headers: { 'content-type': 'application/json' } })
  t.equal(empty.statusCode, 200, '{} is fine')
  t.match(empty.json(), { used_usd: 0, total_usd: 0.009 })
  const other = await patch(bob.id)
  t.match(other.json(), { user_id: bob.id, used_usd: 0, total_usd: 0.003 })

  t.equal((await patch(UNKNOWN)).statusCode, 404, 'unknown user')
  t.equal((await patch('not-a-uuid')).statusCode, 400)
  await g.adminCall('DELETE', `/api/admin/users/${bob.id}`)
  t.equal((await patch(bob.id)).statusCode, 404, 'a deleted user')
  t.equal((await g.app.inject({ method: 'PATCH', url: `/api/admin/users/${ada.id}/quota` })).statusCode, 401)
  const regular = await signIn(g.app, 'user')
  t.equal((await g.app.inject({ method: 'PATCH', url: `/api/admin/users/${ada.id}/quota`, headers: regular.headers })).statusCode, 403)
  t.equal((await g.app.prisma.user.findUniqueOrThrow({ where: { id: ada.id } })).totalUsed, 9_000_000n, 'refusals changed nothing')

  const audits = await g.app.prisma.auditLog.findMany({ where: { action: 'users.quota_reset' }, orderBy: { createdAt: 'asc' } })
  t.same(audits.map((a) => a.statusCode), [200, 200, 200, 404, 400, 404, 401, 403], 'every call audited')
  t.match(audits[0]!.metadata, { target_user_id: ada.id, used_usd_before: 0.006 })
})

t.test('the seed\'s bulk charge sets total_used with used, from the daily key rollup', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  const other = await signIn(app, 'user')
  const key = '00000000-0000-4000-8000-0000000000aa'
  // two days of one key and one day of the other user, as the seed's rollup would hold them
  await app.prisma.$executeRawUnsafe(`INSERT INTO usage_daily_key (day, user_id, api_key_id, model, requests, total_tokens, total_cost)
    VALUES ('2026-11-01', $1::uuid, $3::uuid, 'm', 1, 10, 1500), ('2026-11-02', $1::uuid, $3::uuid, 'm', 2, 20, 2500), ('2026-11-02', $2::uuid, $3::uuid, 'n', 1, 5, 7)`, user.id, other.id, key)
  await chargeFromRollups(app.pg)
  const rows = await app.prisma.user.findMany({ where: { id: { in: [user.id, other.id] } }, select: { id: true, used: true, totalUsed: true } })
  t.same(Object.fromEntries(rows.map((r) => [r.id, [r.used, r.totalUsed]])), { [user.id]: [4000n, 4000n], [other.id]: [7n, 7n] })
})

const MIGRATION = '20261202040000_users_total_used'

t.test(`migration ${MIGRATION}: total_used starts as each user's used`, async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const migrationsWhere = async (keep: (name: string) => boolean) => {
    const dir = await mkdtemp(join(tmpdir(), 'keymeter-migrations-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    for (const name of await readdir(MIGRATIONS_DIR)) if (keep(name)) await cp(join(MIGRATIONS_DIR, name), join(dir, name), { recursive: true })
    return dir
  }
  await applyMigrations(url, { dir: await migrationsWhere((name) => name < MIGRATION) })
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  // used as ingestion left it: nothing reset it before this migration, so it is the all-time spend
  await client.query(`INSERT INTO users (username, password_hash, used, updated_at) VALUES ('spender', 'x', 9000000000000000000, now()), ('idle', 'x', 0, now()), ('small', 'x', 3000000, now())`)
  t.same(await applyMigrations(url, { dir: await migrationsWhere((name) => name <= MIGRATION) }), [MIGRATION])
  const { rows } = await client.query<{ username: string, used: string, total_used: string }>('SELECT username, used, total_used FROM users ORDER BY username')
  t.same(rows, [
    { username: 'idle', used: '0', total_used: '0' },
    { username: 'small', used: '3000000', total_used: '3000000' },
    { username: 'spender', used: '9000000000000000000', total_used: '9000000000000000000' }
  ])
  await applyMigrations(url)
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models')
})

t.test('GET /api/admin/system/api-formats: the known formats, then the other configured ones', async (t) => {
  const g = await gateway(t)
  const p = await g.provider('p')
  await g.endpoint(p.id, 'openai:chat')
  await g.endpoint(p.id, 'zeta:custom')
  await g.endpoint(p.id, 'alpha:custom')
  const res = await g.app.inject({ method: 'GET', url: '/api/admin/system/api-formats?anything=1', headers: g.admin.headers })
  t.equal(res.statusCode, 200)
  const formats = res.json().formats as Json[]
  t.same(formats.map((f) => f.value), ['claude:messages', 'openai:chat', 'openai:responses', 'gemini:generate', 'alpha:custom', 'zeta:custom'], 'a configured known format once; others by name after the known')
  t.same(formats.find((f) => f.value === 'openai:chat'), { value: 'openai:chat', label: 'OpenAI Chat Completions', default_path: '/v1/chat/completions' })
  t.same(formats.at(-1), { value: 'zeta:custom', label: 'zeta:custom' })
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/system/api-formats' })).statusCode, 401)
  const regular = await signIn(g.app, 'user')
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/system/api-formats', headers: regular.headers })).statusCode, 403)
  await g.app.pipeline.readAuditsWritten()
  t.equal(await g.app.prisma.auditLog.count({ where: { action: 'api_formats.list' } }), 3, 'audited')
})

t.test('DELETE on a key deletes it, on both admin paths; its usage, the user\'s charges and the statistics keep their history', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await g.user()
  const viaUser = await g.userKey(user.id)
  const standalone = await g.standaloneKey()
  // the per-user figures count requests that reached a provider
  const provider = await g.provider('anthropic')
  const now = Date.now()
  const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString()
  const events = [viaUser, standalone].flatMap((key, k) => [1, 2].map((i) => ({
    type: 'complete', request_id: `del-${k}-${i}`, api_key_id: key.id, provider_id: provider.id, model: 'm', status: 'completed', status_code: 200,
    input_tokens: 1000 * i, output_tokens: 0, response_time_ms: 100, created_at: at(10 * i)
  })))
  t.same((await g.send(events)).map((r) => r.outcome), ['recorded', 'recorded', 'recorded', 'recorded'])
  const range = `start_date=${encodeURIComponent(new Date(now - 3 * 3600_000).toISOString().slice(0, 19) + 'Z')}&end_date=${encodeURIComponent(new Date(now + 3600_000).toISOString().slice(0, 19) + 'Z')}`
  const stats = async () => g.adminCall('GET', `/api/admin/usage/stats?${range}`)
  const byUser = async () => ((await g.adminCall('GET', `/api/admin/usage/aggregation/stats?group_by=user&${range}`)) as unknown as Json[]).find((r) => r.user_id === user.id)
  // 1000 + 2000 input tokens per key at USD 3 / 1M: USD 0.009 per key
  t.match(await stats(), { total_requests: 4, total_tokens: 6000, total_cost: 0.018 })
  t.match(await byUser(), { request_count: 2, total_tokens: 3000, total_cost: 0.009 })

  const viaUserPath = await g.app.inject({ method: 'DELETE', url: `/api/admin/users/${user.id as string}/api-keys/${viaUser.id as string}`, headers: g.admin.headers })
  t.equal(viaUserPath.statusCode, 200)
  t.same(viaUserPath.json(), { message: 'API key deleted' })
  const direct = await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${standalone.id as string}?from=aether`, headers: g.admin.headers })
  t.equal(direct.statusCode, 200, 'an unknown parameter is ignored')
  t.equal(await g.app.prisma.apiKey.count({ where: { id: { in: [viaUser.id, standalone.id] } } }), 0, 'both rows gone, not disabled')
  const keys = await g.adminCall('GET', `/api/admin/users/${user.id as string}/api-keys`)
  t.same(keys.api_keys, [], 'the keys dialog no longer lists it')
  t.equal((await g.app.inject({ method: 'GET', url: `/api/admin/api-keys/${standalone.id as string}`, headers: g.admin.headers })).statusCode, 404)

  const rows = await g.app.prisma.usage.findMany({ orderBy: { requestId: 'asc' }, select: { requestId: true, apiKeyId: true, userId: true, totalCost: true } })
  t.same(rows.map((r) => [r.requestId, r.apiKeyId, r.userId, r.totalCost]), [
    ['del-0-1', null, user.id, 3_000_000n], ['del-0-2', null, user.id, 6_000_000n],
    ['del-1-1', null, g.admin.id, 3_000_000n], ['del-1-2', null, g.admin.id, 6_000_000n]
  ], 'the usage rows stay, with their owner and cost, without the key')
  t.match(await stats(), { total_requests: 4, total_tokens: 6000, total_cost: 0.018 }, 'the statistics still count them')
  t.match(await byUser(), { request_count: 2, total_tokens: 3000, total_cost: 0.009 })
  t.match(await g.adminCall('GET', `/api/admin/users/${user.id as string}`), { used_usd: 0.009, total_usd: 0.009 }, 'the user\'s charges stay')

  const again = await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${standalone.id as string}`, headers: g.admin.headers })
  t.equal(again.statusCode, 404, 'a deleted key is not found')
  const regular = await signIn(g.app, 'user')
  const kept = await g.userKey(user.id)
  t.equal((await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${kept.id as string}`, headers: regular.headers })).statusCode, 403)
  t.equal((await g.app.inject({ method: 'DELETE', url: `/api/admin/users/${user.id as string}/api-keys/${kept.id as string}` })).statusCode, 401)
  t.equal((await g.app.inject({ method: 'DELETE', url: `/api/admin/users/${regular.id}/api-keys/${kept.id as string}`, headers: g.admin.headers })).statusCode, 404, 'another user\'s path does not reach it')
  t.equal((await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${kept.id as string}?hard=maybe`, headers: g.admin.headers })).statusCode, 400)
  t.equal(await g.app.prisma.apiKey.count({ where: { id: kept.id } }), 1, 'the refusals deleted nothing')
})
