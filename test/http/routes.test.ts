// Every protected route, walked from app.routeTable (so a route added later is
// covered without touching this file): strangers get 401, non-admins get 403 on
// admin routes, each refusal carries the error body and is in the audit log.
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import type { KeymeterApp, RouteInfo } from '../../src/app.js'
import { randomBase62 } from '../../src/lib/crypto.js'
import { buildTestApp, signIn } from '../helper.js'

const under = (url: string, prefix: string) => url === prefix || url.startsWith(`${prefix}/`)
const hasBody = (method: string) => ['POST', 'PUT', 'PATCH'].includes(method)

/** The route's url with each :param filled: a fresh uuid for ids, a plausible word otherwise. */
function concreteUrl (route: RouteInfo): string {
  const params = (route.schema?.params as { properties?: Record<string, { format?: string }> } | undefined)?.properties ?? {}
  return route.url.replace(/:(\w+)/g, (_match, name: string) =>
    params[name]?.format === 'uuid' || /(^|_)id$/i.test(name) ? randomUUID() : `some-${name.replace(/_/g, '-')}`)
}

function request (route: RouteInfo, headers: Record<string, string> = {}) {
  const url = concreteUrl(route)
  return { method: route.method as 'GET', url, headers, ...(hasBody(route.method) && { payload: {} }) }
}

function isErrorBody (t: Test, res: LightMyRequestResponse, status: number, type: string, what: string) {
  t.equal(res.statusCode, status, `${what}: status ${status}`)
  const body = res.json() as { error?: { type?: unknown, message?: unknown }, request_id?: unknown, detail?: unknown }
  t.match(body, { error: { type, message: String }, request_id: String }, `${what}: error body, type ${type}`)
  t.same(Object.keys(body).sort(), ['detail', 'error', 'request_id'], `${what}: nothing but error, request_id and detail`)
  t.equal(body.detail, body.error?.message, `${what}: detail repeats the message`)
  t.equal(body.request_id, res.headers['x-request-id'], `${what}: request_id is the x-request-id header`)
}

interface Refusal { requestId: string, method: string, path: string, status: number, userId: string | null, what: string }

async function auditedFailures (app: KeymeterApp, headers: Record<string, string>) {
  const rows = new Map<string, { status_code: number | null, success: boolean, method: string | null, path: string | null, user_id: string | null, principal_type: string }>()
  for (let offset = 0; ; offset += 500) {
    const res = await app.inject({ method: 'GET', url: `/api/admin/audit-logs?success=false&limit=500&offset=${offset}`, headers })
    if (res.statusCode !== 200) throw new Error(`audit list failed: ${res.statusCode} ${res.body}`)
    const page = res.json() as { items: Array<{ request_id: string | null } & (typeof rows extends Map<string, infer V> ? V : never)>, total: number }
    for (const row of page.items) if (row.request_id !== null) rows.set(row.request_id, row)
    if (page.items.length === 0 || offset + page.items.length >= page.total) break
  }
  return rows
}

const { app } = await buildTestApp(t)
const admin = await signIn(app, 'admin')
const user = await signIn(app, 'user')
const adminRoutes = app.routeTable.filter((r) => under(r.url, '/api/admin'))
const meRoutes = app.routeTable.filter((r) => under(r.url, '/api/users/me'))
const refusals: Refusal[] = []

t.test('the route table lists admin and /api/users/me routes', async (t) => {
  t.ok(adminRoutes.length > 0, `${adminRoutes.length} admin routes`)
  t.ok(meRoutes.length > 0, `${meRoutes.length} /api/users/me routes`)
  t.ok(adminRoutes.some((r) => r.url === '/api/admin/audit-logs' && r.method === 'GET'), 'the audit list itself is walked')
})

t.test('every /api/admin route refuses a caller without credentials: 401 unauthorized', async (t) => {
  for (const route of adminRoutes) {
    const req = request(route)
    const res = await app.inject(req)
    isErrorBody(t, res, 401, 'unauthorized', `${route.method} ${route.url} anonymous`)
    refusals.push({ requestId: String(res.headers['x-request-id']), method: route.method, path: req.url, status: 401, userId: null, what: `${route.method} ${route.url} anonymous` })
  }
})

t.test('every /api/admin route refuses a signed-in non-admin: 403 forbidden', async (t) => {
  for (const route of adminRoutes) {
    const req = request(route, user.headers)
    const res = await app.inject(req)
    isErrorBody(t, res, 403, 'forbidden', `${route.method} ${route.url} as user`)
    refusals.push({ requestId: String(res.headers['x-request-id']), method: route.method, path: req.url, status: 403, userId: user.id, what: `${route.method} ${route.url} as user` })
  }
})

t.test('every /api/users/me route refuses a caller without credentials: 401 unauthorized', async (t) => {
  for (const route of meRoutes) {
    const req = request(route)
    const res = await app.inject(req)
    isErrorBody(t, res, 401, 'unauthorized', `${route.method} ${route.url} anonymous`)
    refusals.push({ requestId: String(res.headers['x-request-id']), method: route.method, path: req.url, status: 401, userId: null, what: `${route.method} ${route.url} anonymous` })
  }
})

t.test('every refusal above has an audit row with its request id, status and success=false', async (t) => {
  t.equal(refusals.length, adminRoutes.length * 2 + meRoutes.length, 'every refusal was recorded by the tests above')
  const rows = await auditedFailures(app, admin.headers)
  for (const refusal of refusals) {
    const row = rows.get(refusal.requestId)
    if (row === undefined) {
      t.fail(`${refusal.what}: no audit row for request ${refusal.requestId}`)
      continue
    }
    t.match(row, { status_code: refusal.status, success: false, method: refusal.method, path: refusal.path }, `${refusal.what}: audited as ${refusal.status}`)
    t.match(row, { user_id: refusal.userId, principal_type: refusal.status === 401 ? 'anonymous' : 'user' }, `${refusal.what}: the audit row names who was refused`)
  }
})

t.test('a request id given by the caller is echoed and used in the audit row', async (t) => {
  const requestId = `caller-${randomBase62(12)}`
  const res = await app.inject({ method: 'GET', url: '/api/admin/users', headers: { 'x-request-id': requestId } })
  isErrorBody(t, res, 401, 'unauthorized', 'anonymous list with an x-request-id')
  t.equal(res.json().request_id, requestId)
  const rows = await auditedFailures(app, admin.headers)
  t.match(rows.get(requestId), { status_code: 401, success: false }, 'audited under the caller\'s id')
  const unsafe = await app.inject({ method: 'GET', url: '/api/admin/users', headers: { 'x-request-id': 'has spaces and <html>' } })
  t.match(unsafe.json().request_id, /^[0-9a-f-]{36}$/, 'an unsafe caller id is replaced by a uuid')
  const long = await app.inject({ method: 'GET', url: '/api/admin/users', headers: { 'x-request-id': 'x'.repeat(65) } })
  t.not(long.json().request_id, 'x'.repeat(65), 'an over-long caller id is replaced')
})

// A route that answers a signed-in admin, to try credentials against.
const adminProbe = { method: 'GET' as const, url: '/api/admin/users' }
const meProbe = { method: 'GET' as const, url: '/api/users/me' }

t.test('an invalid bearer token is refused with 401', async (t) => {
  const bad = [
    `Bearer kms_${randomBase62(40)}`,
    `Bearer kmm_${randomBase62(40)}`,
    `Bearer sk-${randomBase62(48)}`,
    `Bearer ${admin.token.slice(0, -1)}${admin.token.endsWith('A') ? 'B' : 'A'}`,
    `Bearer ${admin.token}x`,
    'Bearer not-a-token',
    'Bearer ',
    `Basic ${Buffer.from('admin:password').toString('base64')}`,
    admin.token
  ]
  for (const authorization of bad) {
    for (const probe of [adminProbe, meProbe]) {
      const res = await app.inject({ ...probe, headers: { authorization } })
      isErrorBody(t, res, 401, 'unauthorized', `${probe.url} with "${authorization.slice(0, 16)}…"`)
    }
  }
  const good = await app.inject({ ...adminProbe, headers: admin.headers })
  t.equal(good.statusCode, 200, 'the genuine admin token still works')
})

t.test('a tampered or unsigned session cookie is refused with 401', async (t) => {
  for (const cookie of [`km_session=${user.token}`, `km_session=${user.token}.forged-signature`, 'km_session=garbage']) {
    const res = await app.inject({ ...meProbe, headers: { cookie } })
    isErrorBody(t, res, 401, 'unauthorized', `cookie ${cookie.slice(0, 20)}…`)
  }
})

t.test('a revoked (signed-out) session token is refused with 401', async (t) => {
  const someone = await signIn(app, 'admin')
  t.equal((await app.inject({ ...meProbe, headers: someone.headers })).statusCode, 200, 'works before sign-out')
  const out = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: someone.headers })
  t.equal(out.statusCode, 200, 'signed out')
  for (const probe of [meProbe, adminProbe]) {
    isErrorBody(t, await app.inject({ ...probe, headers: someone.headers }), 401, 'unauthorized', `${probe.url} after sign-out`)
  }
})

t.test('an expired session token is refused with 401', async (t) => {
  const someone = await signIn(app, 'user')
  await app.prisma.userSession.updateMany({ where: { userId: someone.id }, data: { expiresAt: new Date(Date.now() - 1000) } })
  isErrorBody(t, await app.inject({ ...meProbe, headers: someone.headers }), 401, 'unauthorized', 'expired session')
})

t.test('a deactivated user\'s token is refused with 401', async (t) => {
  const someone = await signIn(app, 'admin')
  await app.prisma.user.update({ where: { id: someone.id }, data: { isActive: false } })
  for (const probe of [meProbe, adminProbe]) {
    isErrorBody(t, await app.inject({ ...probe, headers: someone.headers }), 401, 'unauthorized', `${probe.url} as a deactivated user`)
  }
})

t.test('a revoked management token is refused with 401', async (t) => {
  const someone = await signIn(app, 'admin')
  const created = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: someone.headers, payload: { name: 'script' } })
  t.equal(created.statusCode, 201, 'created')
  const { id, token } = created.json() as { id: string, token: string }
  const bearer = { authorization: `Bearer ${token}` }
  t.equal((await app.inject({ ...adminProbe, headers: bearer })).statusCode, 200, 'works before revocation')
  const revoked = await app.inject({ method: 'DELETE', url: `/api/users/me/management-tokens/${id}`, headers: someone.headers })
  t.equal(revoked.statusCode, 200, 'revoked')
  for (const probe of [meProbe, adminProbe]) {
    isErrorBody(t, await app.inject({ ...probe, headers: bearer }), 401, 'unauthorized', `${probe.url} with a revoked management token`)
  }
})

t.test('a non-admin\'s management token is refused on admin routes with 403', async (t) => {
  const someone = await signIn(app, 'user')
  const created = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: someone.headers, payload: { name: 'script' } })
  t.equal(created.statusCode, 201)
  const bearer = { authorization: `Bearer ${(created.json() as { token: string }).token}` }
  t.equal((await app.inject({ ...meProbe, headers: bearer })).statusCode, 200, 'the token signs its user in')
  isErrorBody(t, await app.inject({ ...adminProbe, headers: bearer }), 403, 'forbidden', 'admin route with a user\'s management token')
})
