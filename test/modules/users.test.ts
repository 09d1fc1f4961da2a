import t from 'tap'
import { buildTestApp, signIn } from '../helper.js'

t.test('admin users: create, get, list, partial update, delete', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin', 'root')
  const created = await app.inject({
    method: 'POST', url: '/api/admin/users', headers: admin.headers,
    payload: { username: 'grace', email: 'grace@example.com', password: 'cobol-forever', allowed_models: ['claude-sonnet-4'], quota_usd: 12.5 }
  })
  t.equal(created.statusCode, 201)
  const user = created.json()
  t.match(user, { username: 'grace', email: 'grace@example.com', role: 'user', is_active: true, quota_usd: 12.5, used_usd: 0, allowed_models: ['claude-sonnet-4'], allowed_providers: null })
  t.notOk('password' in user || 'password_hash' in user, 'no password in the record')
  const row = await app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })
  t.equal(row.quota, 12_500_000_000n, 'quota stored in nano-USD')
  t.match(row.passwordHash, /^scrypt\$/)

  const got = await app.inject({ method: 'GET', url: `/api/admin/users/${user.id}`, headers: admin.headers })
  t.same(got.json(), user)

  const list = await app.inject({ method: 'GET', url: '/api/admin/users?limit=1&skip=1', headers: admin.headers })
  t.equal(list.statusCode, 200)
  t.equal(list.headers['x-total-count'], '2', 'the total in a header')
  t.same(list.json(), [user], 'a bare array: the second user, oldest first')

  const updated = await app.inject({ method: 'PUT', url: `/api/admin/users/${user.id}`, headers: admin.headers, payload: { quota_usd: null, allowed_models: null, role: 'admin' } })
  t.equal(updated.statusCode, 200)
  t.match(updated.json(), { quota_usd: null, allowed_models: null, role: 'admin', email: 'grace@example.com' }, 'null clears, absent keeps')

  const deleted = await app.inject({ method: 'DELETE', url: `/api/admin/users/${user.id}`, headers: admin.headers })
  t.equal(deleted.statusCode, 200)
  const gone = await app.inject({ method: 'GET', url: `/api/admin/users/${user.id}`, headers: admin.headers })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().error.type, 'not_found')
  const kept = await app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })
  t.equal(kept.isDeleted, true, 'the row stays for history')

  await app.pipeline.readAuditsWritten() // a read's row is written behind its answer, stamped with the time of the answer
  const actions = (await app.prisma.auditLog.findMany({ where: { userId: admin.id, action: { startsWith: 'users.' } }, orderBy: { createdAt: 'asc' } })).map((a) => a.action)
  t.same(actions, ['users.create', 'users.get', 'users.list', 'users.update', 'users.delete', 'users.get'], 'one audit row per call')
})

t.test('a deleted or deactivated user can no longer sign in or use a session', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const off = await app.inject({ method: 'PUT', url: `/api/admin/users/${user.id}`, headers: admin.headers, payload: { is_active: false } })
  t.equal(off.statusCode, 200)
  const me = await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })
  t.equal(me.statusCode, 401)
})

t.test('refusals: duplicate username 409, unknown id 404, malformed id 400, self-delete 409 — nothing written', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin', 'root')
  const before = await app.prisma.user.count()
  const dup = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'root', password: 'another-password' } })
  t.equal(dup.statusCode, 409)
  t.equal(dup.json().error.type, 'conflict')
  const unknown = await app.inject({ method: 'PUT', url: '/api/admin/users/00000000-0000-4000-8000-000000000000', headers: admin.headers, payload: { role: 'admin' } })
  t.equal(unknown.statusCode, 404)
  const malformed = await app.inject({ method: 'GET', url: '/api/admin/users/not-a-uuid', headers: admin.headers })
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.json().error.field, 'params.id')
  const self = await app.inject({ method: 'DELETE', url: `/api/admin/users/${admin.id}`, headers: admin.headers })
  t.equal(self.statusCode, 409)
  const demote = await app.inject({ method: 'PUT', url: `/api/admin/users/${admin.id}`, headers: admin.headers, payload: { role: 'user' } })
  t.equal(demote.statusCode, 409)
  const short = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'x', password: 'short' } })
  t.equal(short.statusCode, 400)
  t.equal(short.json().error.field, 'body.password')
  const empty = await app.inject({ method: 'PUT', url: `/api/admin/users/${admin.id}`, headers: admin.headers, payload: {} })
  t.equal(empty.statusCode, 400, 'an update must change something')
  t.equal(await app.prisma.user.count(), before)
  const refused = await app.prisma.auditLog.count({ where: { userId: admin.id, success: false } })
  t.equal(refused, 7, 'every refusal audited')
})

t.test('a user reads their own profile but not the admin API', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user', 'plain')
  const me = await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })
  t.equal(me.statusCode, 200)
  t.match(me.json(), { id: user.id, username: 'plain', role: 'user' })
  const admin = await app.inject({ method: 'GET', url: '/api/admin/users', headers: user.headers })
  t.equal(admin.statusCode, 403)
})
