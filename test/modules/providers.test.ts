import t, { type Test } from 'tap'
import pg from 'pg'
import type { LightMyRequestResponse } from 'fastify'
import { decrypt, maskSecret } from '../../src/lib/crypto.js'
import { buildTestApp, logCapture, signIn } from '../helper.js'

const UNKNOWN = '00000000-0000-4000-8000-000000000000'

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string, field?: string) {
  t.equal(res.statusCode, status, `${status} ${type}${field === undefined ? '' : ` ${field}`}`)
  t.match(res.json(), { error: { type, message: String }, request_id: String })
  if (field !== undefined) t.equal(res.json().error.field, field)
}

t.test('providers: create, list, get, partial update, delete', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url: `/api/admin/providers${url}`, headers: admin.headers, ...(payload !== undefined && { payload }) })

  const plain = await call('POST', '', { name: 'openai' })
  t.equal(plain.statusCode, 201)
  t.match(plain.json(), {
    name: 'openai', billing_type: 'pay_as_you_go', monthly_quota_usd: null, monthly_used_usd: 0, priority: 0,
    is_active: true, config: null, endpoint_count: 0, key_count: 0
  })
  const full = await call('POST', '', { name: 'anthropic', billing_type: 'monthly_quota', monthly_quota_usd: 12.5, priority: -1, is_active: false, config: { region: 'us', retries: 2 } })
  t.equal(full.statusCode, 201)
  t.match(full.json(), { billing_type: 'monthly_quota', monthly_quota_usd: 12.5, priority: -1, is_active: false })
  t.same(full.json().config, { region: 'us', retries: 2 })
  const stored = await app.prisma.provider.findUniqueOrThrow({ where: { id: full.json().id } })
  t.equal(stored.monthlyQuota, 12_500_000_000n, 'the quota is stored in nano-USD')
  await call('POST', '', { name: 'gemini', billing_type: 'free_tier' })

  const list = await call('GET', '')
  t.equal(list.statusCode, 200)
  t.match(list.json(), { total: 3, skip: 0, limit: 100 })
  t.same(list.json().providers.map((p: { name: string }) => p.name), ['anthropic', 'gemini', 'openai'], 'by priority, then name')
  const active = await call('GET', '?is_active=true&skip=1&limit=1')
  t.match(active.json(), { total: 2, skip: 1, limit: 1 })
  t.same(active.json().providers.map((p: { name: string }) => p.name), ['openai'])

  const get = await call('GET', `/${full.json().id}`)
  t.same(get.json(), full.json())

  const put = await call('PUT', `/${full.json().id}`, { monthly_quota_usd: null, config: null, priority: 5 })
  t.equal(put.statusCode, 200)
  t.match(put.json(), { name: 'anthropic', billing_type: 'monthly_quota', monthly_quota_usd: null, config: null, priority: 5, is_active: false })
  const cleared = await app.prisma.provider.findUniqueOrThrow({ where: { id: full.json().id } })
  t.equal(cleared.monthlyQuota, null)
  t.equal(cleared.config, null, 'config null is a SQL NULL')

  const del = await call('DELETE', `/${plain.json().id}`)
  t.same(del.json(), { message: 'provider deleted' })
  t.equal(await app.prisma.provider.count({ where: { id: plain.json().id } }), 0)
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'providers.delete', success: true } })
  t.match(audit.metadata, { provider_id: plain.json().id, name: 'openai' })
})

t.test('providers: refusals', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const made = (await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'openai' } })).json()
  await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'other' } })
  const cases: Array<[string, 'GET' | 'POST' | 'PUT' | 'DELETE', string, object | undefined, number, string, string?]> = [
    ['duplicate name', 'POST', '', { name: 'openai' }, 409, 'conflict'],
    ['rename onto an existing name', 'PUT', `/${made.id}`, { name: 'other' }, 409, 'conflict'],
    ['missing name', 'POST', '', {}, 400, 'validation_error', 'body.name'],
    ['unknown billing type', 'POST', '', { name: 'x', billing_type: 'prepaid' }, 400, 'validation_error', 'body.billing_type'],
    ['zero quota', 'POST', '', { name: 'x', monthly_quota_usd: 0 }, 400, 'validation_error', 'body.monthly_quota_usd'],
    ['fractional priority', 'POST', '', { name: 'x', priority: 1.5 }, 400, 'validation_error', 'body.priority'],
    ['config not an object', 'POST', '', { name: 'x', config: [1] }, 400, 'validation_error', 'body.config'],
    ['unknown field', 'POST', '', { name: 'x', secret: 'y' }, 400, 'validation_error', 'body.secret'],
    ['empty update', 'PUT', `/${made.id}`, {}, 400, 'validation_error', 'body'],
    ['id not a uuid', 'GET', '/openai', undefined, 400, 'validation_error', 'params.id'],
    ['unknown id (get)', 'GET', `/${UNKNOWN}`, undefined, 404, 'not_found'],
    ['unknown id (put)', 'PUT', `/${UNKNOWN}`, { priority: 1 }, 404, 'not_found'],
    ['unknown id (delete)', 'DELETE', `/${UNKNOWN}`, undefined, 404, 'not_found']
  ]
  for (const [what, method, url, payload, status, type, field] of cases) {
    t.test(what, async (t) => {
      const res = await app.inject({ method, url: `/api/admin/providers${url}`, headers: admin.headers, ...(payload !== undefined && { payload }) })
      refused(t, res, status, type, field)
    })
  }
  t.test('a non-admin is refused', async (t) => {
    refused(t, await app.inject({ method: 'GET', url: '/api/admin/providers', headers: user.headers }), 403, 'forbidden')
    refused(t, await app.inject({ method: 'POST', url: '/api/admin/providers', headers: user.headers, payload: { name: 'mine' } }), 403, 'forbidden')
    refused(t, await app.inject({ method: 'DELETE', url: `/api/admin/providers/${made.id}`, headers: user.headers }), 403, 'forbidden')
    t.equal(await app.prisma.provider.count(), 2, 'nothing created or deleted')
  })
  t.test('the refused mutations changed nothing', async (t) => {
    t.match(await app.prisma.provider.findUniqueOrThrow({ where: { id: made.id } }), { name: 'openai', priority: 0 })
  })
})

t.test('endpoints: one per API format, scoped to their provider', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const provider = (name: string) => app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name } }).then((r) => r.json().id as string)
  const [a, b] = [await provider('a'), await provider('b')]
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url: `/api/admin/providers/${url}`, headers: admin.headers, ...(payload !== undefined && { payload }) })

  const made = await call('POST', `${a}/endpoints`, { api_format: 'claude:messages', base_url: 'https://api.anthropic.com' })
  t.equal(made.statusCode, 201)
  const endpoint = made.json()
  t.match(endpoint, { provider_id: a, api_format: 'claude:messages', base_url: 'https://api.anthropic.com', is_active: true })
  t.match(await app.prisma.providerEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } }), { providerId: a, apiFormat: 'claude:messages', baseUrl: 'https://api.anthropic.com' })
  await call('POST', `${a}/endpoints`, { api_format: 'openai:chat', base_url: 'http://localhost:8080/v1', is_active: false })
  t.equal((await call('POST', `${b}/endpoints`, { api_format: 'claude:messages', base_url: 'https://b.example' })).statusCode, 201, 'the same format under another provider is fine')

  const list = await call('GET', `${a}/endpoints`)
  t.match(list.json(), { total: 2, skip: 0, limit: 100 })
  t.same(list.json().endpoints.map((e: { api_format: string }) => e.api_format), ['claude:messages', 'openai:chat'])
  t.equal((await call('GET', a)).json().endpoint_count, 2)
  t.same((await call('GET', `${a}/endpoints/${endpoint.id}`)).json(), endpoint)

  const put = await call('PUT', `${a}/endpoints/${endpoint.id}`, { base_url: 'https://proxy.example/anthropic', is_active: false })
  t.equal(put.statusCode, 200)
  t.match(put.json(), { api_format: 'claude:messages', base_url: 'https://proxy.example/anthropic', is_active: false })

  refused(t, await call('POST', `${a}/endpoints`, { api_format: 'claude:messages', base_url: 'https://x.example' }), 409, 'conflict')
  refused(t, await call('PUT', `${a}/endpoints/${endpoint.id}`, { api_format: 'openai:chat' }), 409, 'conflict')
  refused(t, await call('POST', `${a}/endpoints`, { api_format: 'x', base_url: 'ftp://files.example' }), 400, 'validation_error', 'body.base_url')
  refused(t, await call('POST', `${a}/endpoints`, { api_format: 'x', base_url: 'not a url' }), 400, 'validation_error', 'body.base_url')
  refused(t, await call('POST', `${a}/endpoints`, { api_format: '', base_url: 'https://x.example' }), 400, 'validation_error', 'body.api_format')
  refused(t, await call('POST', `${a}/endpoints`, { api_format: 'x'.repeat(65), base_url: 'https://x.example' }), 400, 'validation_error', 'body.api_format')
  refused(t, await call('PUT', `${a}/endpoints/${endpoint.id}`, {}), 400, 'validation_error', 'body')
  refused(t, await call('GET', `${UNKNOWN}/endpoints`), 404, 'not_found')
  refused(t, await call('POST', `${UNKNOWN}/endpoints`, { api_format: 'x', base_url: 'https://x.example' }), 404, 'not_found')
  refused(t, await call('GET', `${a}/endpoints/${UNKNOWN}`), 404, 'not_found')
  refused(t, await call('GET', `${a}/endpoints/not-a-uuid`), 400, 'validation_error', 'params.endpoint_id')
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    refused(t, await call(method, `${b}/endpoints/${endpoint.id}`, method === 'PUT' ? { is_active: true } : undefined), 404, 'not_found')
  }
  t.match(await app.prisma.providerEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } }), { providerId: a, isActive: false }, 'untouched through the wrong provider')

  const del = await call('DELETE', `${a}/endpoints/${endpoint.id}`)
  t.same(del.json(), { message: 'endpoint deleted' })
  t.equal(await app.prisma.providerEndpoint.count({ where: { id: endpoint.id } }), 0)
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'provider_endpoints.delete', success: true } })
  t.match(audit.metadata, { provider_id: a, endpoint_id: endpoint.id })
})

t.test('provider keys: the secret is write-only and stored only encrypted', async (t) => {
  const logs = logCapture()
  const { app, url } = await buildTestApp(t, { logStream: logs.stream })
  const admin = await signIn(app, 'admin')
  const provider = (name: string) => app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name } }).then((r) => r.json().id as string)
  const [a, b] = [await provider('a'), await provider('b')]
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, payload?: object) =>
    app.inject({ method, url: `/api/admin/providers/${path}`, headers: admin.headers, ...(payload !== undefined && { payload }) })
  const secret = 'sk-ant-api03-SECRETsecretSECRETsecret-0123456789'
  const replacement = 'sk-ant-api03-REPLACEMENTreplacement-9876543210'
  const bodies: string[] = []
  const seen = async (res: Promise<LightMyRequestResponse>) => { const r = await res; bodies.push(r.body); return r }

  const made = await seen(call('POST', `${a}/keys`, { name: 'primary', secret }))
  t.equal(made.statusCode, 201)
  const key = made.json()
  t.match(key, { provider_id: a, name: 'primary', secret_display: maskSecret(secret), rate_multiplier: 1, cache_ttl_minutes: 5, is_active: true, expires_at: null })
  t.notOk('secret' in key)
  const row = await app.prisma.providerApiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.not(row.secretEncrypted, secret)
  t.equal(decrypt(app.keyring.providerSecretCipher, row.secretEncrypted), secret, 'the stored copy decrypts to the secret')
  t.equal(row.secretDisplay, maskSecret(secret))

  const tuned = await seen(call('POST', `${a}/keys`, { name: 'batch', secret: 'short', rate_multiplier: 0.123456, cache_ttl_minutes: 0, is_active: false, expires_at: '2030-01-01T00:00:00+02:00' }))
  t.match(tuned.json(), { rate_multiplier: 0.123456, cache_ttl_minutes: 0, is_active: false, expires_at: '2029-12-31T22:00:00.000Z', secret_display: maskSecret('short') })
  t.equal((await app.prisma.providerApiKey.findUniqueOrThrow({ where: { id: tuned.json().id } })).rateMultiplier.toString(), '0.123456')

  const list = await seen(call('GET', `${a}/keys`))
  t.match(list.json(), { total: 2, skip: 0, limit: 100 })
  t.same(list.json().keys.map((k: { name: string }) => k.name), ['primary', 'batch'])
  t.equal((await seen(call('GET', a))).json().key_count, 2)
  t.same((await seen(call('GET', `${a}/keys/${key.id}`))).json(), key)

  const put = await seen(call('PUT', `${a}/keys/${key.id}`, { secret: replacement, rate_multiplier: 2.5, expires_at: '2031-01-01T00:00:00Z' }))
  t.equal(put.statusCode, 200)
  t.match(put.json(), { name: 'primary', secret_display: maskSecret(replacement), rate_multiplier: 2.5, expires_at: '2031-01-01T00:00:00.000Z' })
  const replaced = await app.prisma.providerApiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(decrypt(app.keyring.providerSecretCipher, replaced.secretEncrypted), replacement, 'PUT replaces the secret')
  const renamed = await seen(call('PUT', `${a}/keys/${key.id}`, { name: 'main', expires_at: null }))
  t.match(renamed.json(), { name: 'main', secret_display: maskSecret(replacement), expires_at: null })
  t.equal((await app.prisma.providerApiKey.findUniqueOrThrow({ where: { id: key.id } })).secretEncrypted, replaced.secretEncrypted, 'a PUT without a secret keeps it')

  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y', rate_multiplier: 1.0000001 }), 400, 'invalid_input', 'body.rate_multiplier')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y', rate_multiplier: 0 }), 400, 'validation_error', 'body.rate_multiplier')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y', rate_multiplier: 1001 }), 400, 'validation_error', 'body.rate_multiplier')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y', cache_ttl_minutes: 1441 }), 400, 'validation_error', 'body.cache_ttl_minutes')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: '' }), 400, 'validation_error', 'body.secret')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y'.repeat(4097) }), 400, 'validation_error', 'body.secret')
  refused(t, await call('POST', `${a}/keys`, { name: 'x' }), 400, 'validation_error', 'body.secret')
  refused(t, await call('POST', `${a}/keys`, { name: 'x', secret: 'y', expires_at: '2030-01-01T00:00:00' }), 400, 'validation_error', 'body.expires_at')
  refused(t, await call('PUT', `${a}/keys/${key.id}`, { rate_multiplier: 0.5000001 }), 400, 'invalid_input', 'body.rate_multiplier')
  refused(t, await call('POST', `${UNKNOWN}/keys`, { name: 'x', secret: 'y' }), 404, 'not_found')
  refused(t, await call('GET', `${UNKNOWN}/keys`), 404, 'not_found')
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    refused(t, await call(method, `${b}/keys/${key.id}`, method === 'PUT' ? { secret: 'stolen' } : undefined), 404, 'not_found')
  }
  t.equal((await app.prisma.providerApiKey.findUniqueOrThrow({ where: { id: key.id } })).rateMultiplier.toString(), '2.5', 'refused updates changed nothing')

  const del = await seen(call('DELETE', `${a}/keys/${tuned.json().id}`))
  t.same(del.json(), { message: 'provider key deleted' })
  t.equal(await app.prisma.providerApiKey.count({ where: { providerId: a } }), 1)

  for (const body of bodies) for (const s of [secret, replacement]) t.notOk(body.includes(s), 'no response carries the secret')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const tables = await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
  for (const { table_name: table } of tables.rows) {
    const text = JSON.stringify((await client.query(`SELECT * FROM "${table}"`)).rows)
    for (const s of [secret, replacement]) t.notOk(text.includes(s), `no plaintext secret in ${table}`)
  }
  for (const s of [secret, replacement]) t.notOk(logs.text().includes(s), 'no secret in the logs')
})

t.test('deleting a provider cascades to endpoints, keys and its own prices; usage keeps its history', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const provider = (await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'doomed' } })).json()
  const endpoint = (await app.inject({ method: 'POST', url: `/api/admin/providers/${provider.id}/endpoints`, headers: admin.headers, payload: { api_format: 'openai:chat', base_url: 'https://x.example' } })).json()
  const key = (await app.inject({ method: 'POST', url: `/api/admin/providers/${provider.id}/keys`, headers: admin.headers, payload: { name: 'k', secret: 'sk-doomed-secret' } })).json()
  const price = (await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { model: 'gpt-4o', provider_id: provider.id, tiers: [{ up_to: null, input: 2.5, output: 10 }] } })).json()
  const usage = await app.prisma.usage.create({
    data: { requestId: 'r1', model: 'gpt-4o', providerId: provider.id, providerName: 'doomed', providerEndpointId: endpoint.id, providerApiKeyId: key.id, status: 'completed' }
  })

  const del = await app.inject({ method: 'DELETE', url: `/api/admin/providers/${provider.id}`, headers: admin.headers })
  t.equal(del.statusCode, 200)
  t.equal(await app.prisma.providerEndpoint.count(), 0)
  t.equal(await app.prisma.providerApiKey.count(), 0)
  t.equal(await app.prisma.modelPrice.count(), 0)
  t.match(await app.prisma.usage.findFirstOrThrow({ where: { id: usage.id } }), { providerId: null, providerEndpointId: null, providerApiKeyId: null, providerName: 'doomed', model: 'gpt-4o' })
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'providers.delete', success: true } })
  t.same(audit.metadata, { provider_id: provider.id, name: 'doomed', endpoint_ids: [endpoint.id], key_ids: [key.id], price_ids: [price.id] }, 'the audit row names every row deleted')
})
