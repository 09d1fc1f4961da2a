// Aether's providers page (AETHER.md §11): the summary list, the create form's body and
// the partial PATCH answered with a summary row. Expected rows are written by hand from
// what each test creates.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { buildTestApp, signIn } from '../helper.js'
import { PROVIDER_MONTH } from '../../src/modules/accounting/model.js'

const UNKNOWN = '00000000-0000-4000-8000-000000000000'

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string, field?: string) {
  t.equal(res.statusCode, status, `${status} ${type}${field === undefined ? '' : ` ${field}`}`)
  t.match(res.json(), { error: { type, message: String }, request_id: String, detail: String })
  if (field !== undefined) t.equal(res.json().error.field, field)
}

/** the body Aether's ProviderFormDialog posts (its form fields, local datetimes without a zone) */
const AETHER_BODY = {
  name: 'alpha',
  display_name: 'Alpha Cloud',
  description: 'the main upstream',
  website: 'https://alpha.example',
  billing_type: 'monthly_quota',
  monthly_quota_usd: 50,
  quota_reset_day: 30,
  quota_last_reset_at: '2026-12-01T08:00',
  quota_expires_at: '2027-01-01T00:00',
  rpm_limit: 60,
  provider_priority: 2,
  is_active: true
}

async function setup (t: Test) {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object, headers = admin.headers) =>
    app.inject({ method, url: `/api/admin/providers${url}`, headers, ...(payload !== undefined && { payload }) })
  const ok = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
    const res = await call(method, url, payload)
    if (res.statusCode >= 300) throw new Error(`${method} ${url} → ${res.statusCode} ${res.body}`)
    return res.json()
  }
  return { app, admin, call, ok }
}

t.test('summary: one row per provider, every field from its endpoints, keys and own prices', async (t) => {
  const { app, admin, call, ok } = await setup(t)
  const alpha = await ok('POST', '', AETHER_BODY)
  const beta = await ok('POST', '', { name: 'beta', priority: 1 })
  await ok('POST', '', { name: 'gamma', priority: 3, is_active: false, display_name: '  ' })

  await ok('POST', `/${alpha.id}/endpoints`, { api_format: 'openai:chat', base_url: 'https://alpha.example/v1', is_active: false })
  await ok('POST', `/${alpha.id}/endpoints`, { api_format: 'claude:messages', base_url: 'https://alpha.example' })
  await ok('POST', `/${alpha.id}/keys`, { name: 'live', secret: 'sk-live-0123456789' })
  await ok('POST', `/${alpha.id}/keys`, { name: 'later', secret: 'sk-later-0123456789', expires_at: '2999-01-01T00:00:00Z' })
  await ok('POST', `/${alpha.id}/keys`, { name: 'off', secret: 'sk-off-0123456789', is_active: false })
  const expired = await ok('POST', `/${alpha.id}/keys`, { name: 'expired', secret: 'sk-expired-0123456789' })
  await app.prisma.providerApiKey.update({ where: { id: expired.id }, data: { expiresAt: new Date(Date.now() - 60_000) } })
  await ok('POST', `/${beta.id}/keys`, { name: 'beta-key', secret: 'sk-beta-0123456789' })

  const prices = async (body: object) => {
    const res = await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { tiers: [{ up_to: null, input: 1, output: 2 }], ...body } })
    if (res.statusCode !== 201) throw new Error(res.body)
  }
  // alpha: m1 in two versions (one model), m2 also; m3 only in the future; a global price is nobody's
  await prices({ model: 'm1', provider_id: alpha.id, effective_from: '2020-01-01T00:00:00Z' })
  await prices({ model: 'm1', provider_id: alpha.id, effective_from: '2021-01-01T00:00:00Z' })
  await prices({ model: 'm2', provider_id: alpha.id, effective_from: '2020-01-01T00:00:00Z' })
  await prices({ model: 'm3', provider_id: alpha.id, effective_from: '2999-01-01T00:00:00Z' })
  await prices({ model: 'm4', effective_from: '2020-01-01T00:00:00Z' })
  await prices({ model: 'm4', provider_id: beta.id, effective_from: '2020-01-01T00:00:00Z' })
  // this quota period's spend, the period starting on alpha's quota_reset_day (a row of another period reads as 0: providers/quota.ts)
  const month = PROVIDER_MONTH.period(new Date(), AETHER_BODY.quota_reset_day).start
  await app.prisma.provider.update({ where: { id: alpha.id }, data: { monthlyUsed: 1_500_000_000n, monthlyUsedMonth: month } })

  const res = await call('GET', '/summary')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-total-count'], '3')
  const rows = res.json()
  t.ok(Array.isArray(rows), 'a bare array')
  t.same(rows.map((r: { name: string }) => r.name), ['beta', 'alpha', 'gamma'], 'by priority')
  const stored = async (id: string) => app.prisma.provider.findUniqueOrThrow({ where: { id } })
  const a = await stored(alpha.id)
  t.same(rows[1], {
    id: alpha.id,
    name: 'alpha',
    display_name: 'Alpha Cloud',
    description: 'the main upstream',
    website: 'https://alpha.example',
    provider_priority: 2,
    priority: 2,
    billing_type: 'monthly_quota',
    monthly_quota_usd: 50,
    monthly_used_usd: 1.5,
    quota_reset_day: 30,
    quota_last_reset_at: '2026-12-01T08:00',
    quota_expires_at: '2027-01-01T00:00',
    rpm_limit: 60,
    rpm_used: 0,
    rpm_reset_at: null,
    is_active: true,
    total_endpoints: 2,
    active_endpoints: 1,
    total_keys: 4,
    active_keys: 2,
    total_models: 2,
    active_models: 2,
    avg_health_score: null,
    unhealthy_endpoints: 0,
    api_formats: ['claude:messages', 'openai:chat'],
    endpoint_health_details: [
      { api_format: 'claude:messages', is_active: true, health_score: null, active_keys: 2 },
      { api_format: 'openai:chat', is_active: false, health_score: null, active_keys: 2 }
    ],
    config: {
      display_name: 'Alpha Cloud',
      description: 'the main upstream',
      website: 'https://alpha.example',
      quota_reset_day: 30,
      quota_last_reset_at: '2026-12-01T08:00',
      quota_expires_at: '2027-01-01T00:00',
      rpm_limit: 60
    },
    created_at: a.createdAt.toISOString(),
    updated_at: a.updatedAt.toISOString()
  })
  const b = await stored(beta.id)
  t.same(rows[0], {
    id: beta.id,
    name: 'beta',
    display_name: 'beta',
    description: null,
    website: null,
    provider_priority: 1,
    priority: 1,
    billing_type: 'pay_as_you_go',
    monthly_quota_usd: null,
    monthly_used_usd: 0,
    quota_reset_day: null,
    quota_last_reset_at: null,
    quota_expires_at: null,
    rpm_limit: null,
    rpm_used: 0,
    rpm_reset_at: null,
    is_active: true,
    total_endpoints: 0,
    active_endpoints: 0,
    total_keys: 1,
    active_keys: 1,
    total_models: 1,
    active_models: 1,
    avg_health_score: null,
    unhealthy_endpoints: 0,
    api_formats: [],
    endpoint_health_details: [],
    config: null,
    created_at: b.createdAt.toISOString(),
    updated_at: b.updatedAt.toISOString()
  })
  t.match(rows[2], { name: 'gamma', display_name: 'gamma', is_active: false, total_keys: 0, total_models: 0 }, 'a blank display_name shows the name')

  await t.test('paging, the is_active filter, and unknown parameters ignored', async (t) => {
    const page = await call('GET', '/summary?skip=1&limit=1&page_size=7')
    t.equal(page.statusCode, 200)
    t.equal(page.headers['x-total-count'], '3')
    t.same(page.json().map((r: { name: string }) => r.name), ['alpha'])
    const active = await call('GET', '/summary?is_active=false')
    t.equal(active.headers['x-total-count'], '1')
    t.same(active.json().map((r: { name: string }) => r.name), ['gamma'])
    const past = await call('GET', '/summary?skip=10')
    t.same(past.json(), [])
    t.equal(past.headers['x-total-count'], '3', 'the total past the last page')
  })

  await t.test('the summary path is not taken for a provider id', async (t) => {
    t.equal((await call('GET', `/${alpha.id}`)).json().name, 'alpha')
    const trailing = await call('GET', '/summary/')
    t.equal(trailing.statusCode, 200)
  })
})

t.test('summary: the same statements for 1 provider as for 6 (no query per provider)', async (t) => {
  const { app, call, ok } = await setup(t)
  const statements: string[] = []
  const prisma = app.prisma as unknown as Record<string, (...args: unknown[]) => unknown>
  for (const name of ['$queryRawUnsafe', '$queryRaw', '$executeRawUnsafe', '$executeRaw']) {
    const original = prisma[name]!.bind(app.prisma)
    prisma[name] = (...args: unknown[]) => { statements.push(name); return original(...args) }
  }
  const counted = async () => {
    statements.length = 0
    const res = await call('GET', '/summary')
    t.equal(res.statusCode, 200)
    return { rows: res.json().length, statements: statements.length }
  }
  const make = async (name: string) => {
    const made = await ok('POST', '', { name, display_name: name.toUpperCase() })
    await ok('POST', `/${made.id}/endpoints`, { api_format: 'claude:messages', base_url: 'https://x.example' })
    await ok('POST', `/${made.id}/keys`, { name: 'k', secret: 'sk-0123456789abcdef' })
  }
  await make('p0')
  const one = await counted()
  for (let i = 1; i < 6; i++) await make(`p${i}`)
  const six = await counted()
  t.same([one.rows, six.rows], [1, 6])
  t.equal(six.statements, one.statements, 'a fixed number of statements')
  t.ok(one.statements <= 2, `${one.statements} statements (the page and its count)`)
})

t.test('summary: refusals', async (t) => {
  const { app, call } = await setup(t)
  const user = await signIn(app, 'user')
  refused(t, await call('GET', '/summary', undefined, {} as never), 401, 'unauthorized')
  refused(t, await call('GET', '/summary', undefined, user.headers), 403, 'forbidden')
  refused(t, await call('GET', '/summary?limit=0'), 400, 'validation_error', 'querystring.limit')
  refused(t, await call('GET', '/summary?limit=1001'), 400, 'validation_error', 'querystring.limit')
  refused(t, await call('GET', '/summary?skip=-1'), 400, 'validation_error', 'querystring.skip')
  refused(t, await call('GET', '/summary?is_active=maybe'), 400, 'validation_error', 'querystring.is_active')
})

t.test('create: Aether\'s body (trailing slash), mapped to priority and config; keymeter\'s body unchanged', async (t) => {
  const { app, call } = await setup(t)
  const made = await call('POST', '/', { ...AETHER_BODY, name: 'slash', quota_expires_at: '2027-01-01T00:00:00Z' })
  t.equal(made.statusCode, 201, 'POST /api/admin/providers/ is the same route')
  t.match(made.json(), { name: 'slash', priority: 2, billing_type: 'monthly_quota', monthly_quota_usd: 50, is_active: true })
  const stored = await app.prisma.provider.findUniqueOrThrow({ where: { id: made.json().id } })
  t.equal(stored.priority, 2, 'provider_priority is the priority column')
  t.same(stored.config, {
    display_name: 'Alpha Cloud',
    description: 'the main upstream',
    website: 'https://alpha.example',
    quota_reset_day: 30,
    quota_last_reset_at: '2026-12-01T08:00',
    quota_expires_at: '2027-01-01T00:00:00Z',
    rpm_limit: 60
  }, 'the datetimes stored as given')

  const both = await call('POST', '', { name: 'both', config: { region: 'eu', rpm_limit: 5 }, rpm_limit: null, display_name: 'Both', priority: 4, provider_priority: 4 })
  t.equal(both.statusCode, 201)
  t.same(both.json().config, { region: 'eu', display_name: 'Both' }, 'Aether\'s fields set on the given config; null removes one')
  t.equal(both.json().priority, 4, 'priority and provider_priority may agree')

  const plain = await call('POST', '', { name: 'plain' })
  t.match(plain.json(), { config: null, priority: 0 }, 'no Aether field: config untouched')

  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'providers.create', success: true, metadata: { path: ['name'], equals: 'slash' } } })
  t.match(audit.metadata, { provider_id: made.json().id })
})

t.test('create and update: bounds on Aether\'s fields', async (t) => {
  const { app, call } = await setup(t)
  const made = (await call('POST', '', { name: 'target' })).json()
  const cases: Array<[string, object, string, string?]> = [
    ['display_name too long', { display_name: 'x'.repeat(101) }, 'body.display_name'],
    ['description too long', { description: 'x'.repeat(1001) }, 'body.description'],
    ['website too long', { website: 'https://' + 'x'.repeat(493) }, 'body.website'],
    ['quota_reset_day 0', { quota_reset_day: 0 }, 'body.quota_reset_day'],
    ['quota_reset_day 366', { quota_reset_day: 366 }, 'body.quota_reset_day'],
    ['rpm_limit negative', { rpm_limit: -1 }, 'body.rpm_limit'],
    ['rpm_limit fractional', { rpm_limit: 1.5 }, 'body.rpm_limit'],
    ['rpm_limit as a string', { rpm_limit: '60' }, 'body.rpm_limit'],
    ['provider_priority fractional', { provider_priority: 1.5 }, 'body.provider_priority'],
    ['provider_priority too large', { provider_priority: 1_000_001 }, 'body.provider_priority'],
    ['priority and provider_priority disagree', { priority: 1, provider_priority: 2 }, 'body.provider_priority', 'invalid_input'],
    ['quota_last_reset_at not a date', { quota_last_reset_at: 'tomorrow' }, 'body.quota_last_reset_at'],
    ['quota_last_reset_at month 13', { quota_last_reset_at: '2026-13-01T00:00' }, 'body.quota_last_reset_at'],
    ['quota_expires_at hour 24', { quota_expires_at: '2026-12-01T24:00' }, 'body.quota_expires_at'],
    ['quota_expires_at too long', { quota_expires_at: '2026-12-01T08:00:00.' + '1'.repeat(40) }, 'body.quota_expires_at'],
    ['display_name not a string', { display_name: 5 }, 'body.display_name'],
    ['an unknown field', { proxy: { url: 'http://x' } }, 'body.proxy']
  ]
  for (const [what, fields, field, type = 'validation_error'] of cases) {
    t.test(what, async (t) => {
      refused(t, await call('POST', '', { name: 'new', ...fields }), 400, type, field)
      refused(t, await call('PATCH', `/${made.id}`, fields), 400, type, field)
    })
  }
  t.test('nothing was created or changed', async (t) => {
    t.equal(await app.prisma.provider.count(), 1)
    t.match(await app.prisma.provider.findUniqueOrThrow({ where: { id: made.id } }), { config: null, priority: 0 })
  })
  t.test('the zone-less forms Aether sends are accepted', async (t) => {
    for (const value of ['2026-12-01', '2026-12-01T08:00', '2026-12-01 08:00:30', '2026-12-01T08:00:30.123', '2026-12-01T08:00+08:00']) {
      const res = await call('PATCH', `/${made.id}`, { quota_last_reset_at: value })
      t.equal(res.statusCode, 200, value)
      t.equal(res.json().quota_last_reset_at, value, 'answered as given')
    }
  })
})

t.test('PATCH: partial, merged into config, answered with the summary row', async (t) => {
  const { app, call, ok } = await setup(t)
  const alpha = await ok('POST', '', AETHER_BODY)
  await ok('POST', '', { name: 'taken' })
  await ok('POST', `/${alpha.id}/endpoints`, { api_format: 'claude:messages', base_url: 'https://alpha.example' })

  const toggled = await call('PATCH', `/${alpha.id}`, { is_active: false })
  t.equal(toggled.statusCode, 200)
  const summary = (await call('GET', '/summary?is_active=false')).json()
  t.same(toggled.json(), summary[0], 'the answer is the provider\'s summary row')
  t.match(toggled.json(), { is_active: false, display_name: 'Alpha Cloud', rpm_limit: 60, total_endpoints: 1, provider_priority: 2 }, 'the toggle keeps the rest')

  const edited = await call('PATCH', `/${alpha.id}`, { description: null, display_name: 'Alpha 2', provider_priority: 7, rpm_limit: null, monthly_quota_usd: 80 })
  t.equal(edited.statusCode, 200)
  t.match(edited.json(), { display_name: 'Alpha 2', description: null, rpm_limit: null, provider_priority: 7, monthly_quota_usd: 80, website: 'https://alpha.example' })
  t.same((await app.prisma.provider.findUniqueOrThrow({ where: { id: alpha.id } })).config, {
    display_name: 'Alpha 2', website: 'https://alpha.example', quota_reset_day: 30, quota_last_reset_at: '2026-12-01T08:00', quota_expires_at: '2027-01-01T00:00'
  }, 'null removed the fields; the others kept')

  const resent = await call('PATCH', `/${alpha.id}/`, { ...AETHER_BODY, is_active: true })
  t.equal(resent.statusCode, 200, 'the edit form resends the whole body, its own name included')
  t.match(resent.json(), { name: 'alpha', display_name: 'Alpha Cloud', description: 'the main upstream', provider_priority: 2, is_active: true })

  const bare = await ok('POST', '', { name: 'bare', rpm_limit: 10 })
  t.same(bare.config, { rpm_limit: 10 })
  const emptied = await call('PATCH', `/${bare.id}`, { rpm_limit: null })
  t.match(emptied.json(), { rpm_limit: null, config: null })
  t.equal((await app.prisma.provider.findUniqueOrThrow({ where: { id: bare.id } })).config, null, 'removing the last field leaves a SQL NULL config')

  const put = await call('PUT', `/${alpha.id}`, { display_name: 'Via PUT' })
  t.equal(put.statusCode, 200)
  t.equal(put.json().config.display_name, 'Via PUT', 'keymeter\'s PUT takes the same fields, answering its own record')
  t.equal(put.json().config.website, 'https://alpha.example')

  const audits = await app.prisma.auditLog.findMany({ where: { action: 'providers.update', method: 'PATCH', success: true }, orderBy: { createdAt: 'asc' } })
  t.equal(audits.length, 4, 'each PATCH audited as an update')
  t.match(audits[0]!.metadata, { provider_id: alpha.id, fields: ['is_active'] })

  const user = await signIn(app, 'user')
  refused(t, await call('PATCH', `/${alpha.id}`, { is_active: true }, {} as never), 401, 'unauthorized')
  refused(t, await call('PATCH', `/${alpha.id}`, { is_active: true }, user.headers), 403, 'forbidden')
  refused(t, await call('PATCH', `/${alpha.id}`, {}), 400, 'validation_error', 'body')
  refused(t, await call('PATCH', '/alpha', { is_active: true }), 400, 'validation_error', 'params.id')
  refused(t, await call('PATCH', `/${UNKNOWN}`, { is_active: true }), 404, 'not_found')
  refused(t, await call('PATCH', `/${alpha.id}`, { name: 'taken' }), 409, 'conflict')
  t.match(await app.prisma.provider.findUniqueOrThrow({ where: { id: alpha.id } }), { name: 'alpha' }, 'the refusals changed nothing')
})
