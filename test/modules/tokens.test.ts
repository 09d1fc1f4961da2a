import t from 'tap'
import { buildTestApp, signIn } from '../helper.js'

t.test('management tokens: created once, act as their user, cannot manage tokens, revocable', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  const created = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: user.headers, payload: { name: 'deploy script', description: 'CI' } })
  t.equal(created.statusCode, 201)
  const { token, ...record } = created.json()
  t.match(token, /^kmm_[A-Za-z0-9]{40}$/)
  t.match(record, { name: 'deploy script', description: 'CI', user_id: user.id, is_active: true, usage_count: 0 })
  t.ok(record.token_display.startsWith('kmm_') && !record.token_display.includes(token.slice(8, -4)), 'display is masked')

  const rows = await app.prisma.managementToken.findMany()
  t.notOk(JSON.stringify(rows, (_k, v) => typeof v === 'bigint' ? String(v) : v).includes(token), 'the token itself is never stored')

  const list = await app.inject({ method: 'GET', url: '/api/users/me/management-tokens', headers: user.headers })
  t.equal(list.json().total, 1)
  t.notOk(list.body.includes(token), 'listing never shows the token')

  const asToken = { authorization: `Bearer ${token}` }
  const me = await app.inject({ method: 'GET', url: '/api/users/me', headers: asToken })
  t.equal(me.statusCode, 200)
  t.equal(me.json().id, user.id)
  const used = await app.prisma.managementToken.findFirstOrThrow()
  t.equal(used.usageCount, 1)
  t.equal(used.lastUsedIp, '127.0.0.1')

  const manage = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: asToken, payload: { name: 'sneaky' } })
  t.equal(manage.statusCode, 403, 'a management token cannot create management tokens')

  await app.pipeline.readAuditsWritten()
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'users.me', managementTokenId: record.id } })
  t.equal(audit.principalType, 'management')

  const revoked = await app.inject({ method: 'DELETE', url: `/api/users/me/management-tokens/${record.id}`, headers: user.headers })
  t.equal(revoked.statusCode, 200)
  const after = await app.inject({ method: 'GET', url: '/api/users/me', headers: asToken })
  t.equal(after.statusCode, 401)
})

t.test('management tokens: expiry, IP allow list, and another user\'s token is a 404', async (t) => {
  const { app } = await buildTestApp(t)
  const alice = await signIn(app, 'user')
  const bob = await signIn(app, 'user')
  const pinned = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: alice.headers, payload: { name: 'pinned', allowed_ips: ['10.1.1.1'] } })
  const pinnedToken = { authorization: `Bearer ${pinned.json().token}` }
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: pinnedToken })).statusCode, 401, 'refused from another address')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: pinnedToken, remoteAddress: '10.1.1.1' })).statusCode, 200)

  const past = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: alice.headers, payload: { name: 'past', expires_at: '2020-01-01T00:00:00Z' } })
  t.equal(past.statusCode, 400)
  const soon = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: alice.headers, payload: { name: 'soon', expires_at: new Date(Date.now() + 60_000).toISOString() } })
  t.equal(soon.statusCode, 201)
  await app.prisma.managementToken.update({ where: { id: soon.json().id }, data: { expiresAt: new Date(Date.now() - 1) } })
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: { authorization: `Bearer ${soon.json().token}` } })).statusCode, 401, 'expired')

  const stolen = await app.inject({ method: 'DELETE', url: `/api/users/me/management-tokens/${pinned.json().id}`, headers: bob.headers })
  t.equal(stolen.statusCode, 404)
  t.equal(await app.prisma.managementToken.count({ where: { id: pinned.json().id } }), 1, 'still there')

  const dup = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: alice.headers, payload: { name: 'pinned' } })
  t.equal(dup.statusCode, 409, 'names are unique per user')
})

t.test('at most 20 management tokens per user, even when created concurrently', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) =>
    app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: user.headers, payload: { name: `t${i}` } })))
  t.equal(results.filter((r) => r.statusCode === 201).length, 20)
  const refused = results.filter((r) => r.statusCode === 409)
  t.equal(refused.length, 5)
  t.equal(refused[0]?.json().error.type, 'limit_reached')
  t.equal(await app.prisma.managementToken.count({ where: { userId: user.id } }), 20)
})

t.test('admins list and revoke every management token', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const made = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: user.headers, payload: { name: 'x' } })
  const list = await app.inject({ method: 'GET', url: `/api/admin/management-tokens?user_id=${user.id}`, headers: admin.headers })
  t.equal(list.json().total, 1)
  const revoke = await app.inject({ method: 'DELETE', url: `/api/admin/management-tokens/${made.json().id}`, headers: admin.headers })
  t.equal(revoke.statusCode, 200)
  const missing = await app.inject({ method: 'DELETE', url: `/api/admin/management-tokens/${made.json().id}`, headers: admin.headers })
  t.equal(missing.statusCode, 404)
})
