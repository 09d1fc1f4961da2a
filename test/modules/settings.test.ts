// Aether's settings page (AETHER.md §10): one's own name and email, password and
// dashboard preferences, each audited, each only ever the caller's own.
import t from 'tap'
import { buildTestApp, signIn } from '../helper.js'

const PASSWORD = 'correct-horse-battery' // signIn's

t.test('PUT /api/users/me changes your own name and email; one taken by someone else is a 400 naming the field', async (t) => {
  const { app } = await buildTestApp(t)
  const me = await signIn(app, 'user', 'ada')
  await signIn(app, 'user', 'grace')

  const changed = await app.inject({ method: 'PUT', url: '/api/users/me', headers: me.headers, payload: { username: 'ada.l', email: 'ada@analytical.engine' } })
  t.equal(changed.statusCode, 200)
  t.same(changed.json(), { message: 'profile updated' })
  const profile = (await app.inject({ method: 'GET', url: '/api/users/me', headers: me.headers })).json()
  t.match(profile, { id: me.id, username: 'ada.l', email: 'ada@analytical.engine' })

  const keepOwn = await app.inject({ method: 'PUT', url: '/api/users/me', headers: me.headers, payload: { username: 'ada.l' } })
  t.equal(keepOwn.statusCode, 200, 'your own current name is not "taken"')

  for (const [payload, field] of [[{ username: 'grace' }, 'body.username'], [{ email: 'grace@example.com' }, 'body.email']] as const) {
    const taken = await app.inject({ method: 'PUT', url: '/api/users/me', headers: me.headers, payload })
    t.equal(taken.statusCode, 400, `${field} taken`)
    t.match(taken.json(), { error: { type: 'invalid_input', field }, detail: /already taken/ })
  }
  const after = await app.prisma.user.findUniqueOrThrow({ where: { id: me.id } })
  t.match(after, { username: 'ada.l', email: 'ada@analytical.engine' }, 'a refused change wrote nothing')

  for (const payload of [{}, { username: '' }, { email: 'not-an-email' }, { role: 'admin' }]) {
    const bad = await app.inject({ method: 'PUT', url: '/api/users/me', headers: me.headers, payload })
    t.equal(bad.statusCode, 400, `${JSON.stringify(payload)} → 400`)
  }
  t.equal((await app.prisma.user.findUniqueOrThrow({ where: { id: me.id } })).role, 'user', 'no way to raise one\'s own role')
  t.equal((await app.inject({ method: 'PUT', url: '/api/users/me', payload: { username: 'x' } })).statusCode, 401, 'anonymous: 401')

  const rows = await app.prisma.auditLog.findMany({ where: { userId: me.id, action: 'users.me.update' }, orderBy: { createdAt: 'asc' } })
  t.same(rows.map((r) => r.statusCode), [200, 200, 400, 400, 400, 400, 400, 400], 'every call audited, refusals included')
})

t.test('PATCH /api/users/me/password: the old password is checked, the new one works, this session stays and the others end', async (t) => {
  const { app } = await buildTestApp(t)
  const me = await signIn(app, 'user', 'linus')
  const otherLogin = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'linus', password: PASSWORD } })
  const other = { authorization: `Bearer ${otherLogin.json().access_token as string}` }

  const wrong = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: me.headers, payload: { old_password: 'not-it', new_password: 'a-new-passphrase' } })
  t.equal(wrong.statusCode, 400)
  t.match(wrong.json(), { error: { type: 'invalid_input', field: 'body.old_password' }, detail: 'the current password is wrong' })
  const short = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: me.headers, payload: { old_password: PASSWORD, new_password: 'short' } })
  t.equal(short.statusCode, 400, 'a new password under 8 characters')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: other })).statusCode, 200, 'refusals end no session')

  const changed = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: me.headers, payload: { old_password: PASSWORD, new_password: 'a-new-passphrase' } })
  t.equal(changed.statusCode, 200)
  t.same(changed.json(), { message: 'password changed' })
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: me.headers })).statusCode, 200, 'the session that changed it still works')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: other })).statusCode, 401, 'the other session has ended')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'linus', password: PASSWORD } })).statusCode, 401, 'the old password no longer signs in')
  t.equal((await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'linus', password: 'a-new-passphrase' } })).statusCode, 200, 'the new one does')

  const rows = await app.prisma.auditLog.findMany({ where: { userId: me.id, action: 'users.me.password' }, orderBy: { createdAt: 'asc' } })
  t.same(rows.map((r) => r.statusCode), [400, 400, 200], 'audited, refusals included')
  t.notMatch(JSON.stringify(rows), /a-new-passphrase|correct-horse/, 'no password in the audit rows')
})

t.test('/api/users/me/preferences: every key, null until set; a PUT merges; each user has their own', async (t) => {
  const { app } = await buildTestApp(t)
  const me = await signIn(app, 'user')
  const other = await signIn(app, 'admin')
  const empty = { avatar_url: null, bio: null, theme: null, language: null, timezone: null, notifications: { email: null, usage_alerts: null, announcements: null } }

  const fresh = await app.inject({ method: 'GET', url: '/api/users/me/preferences', headers: me.headers })
  t.equal(fresh.statusCode, 200)
  t.same(fresh.json(), empty, 'nothing saved: every key, null')

  const put = await app.inject({ method: 'PUT', url: '/api/users/me/preferences', headers: me.headers, payload: { theme: 'dark', language: 'zh-CN', timezone: 'Asia/Shanghai', notifications: { email: true }, usage_alerts: false, unknown_field: 'ignored' } })
  t.equal(put.statusCode, 200)
  const saved = { ...empty, theme: 'dark', language: 'zh-CN', timezone: 'Asia/Shanghai', notifications: { email: true, usage_alerts: false, announcements: null } }
  t.same(put.json(), { message: 'preferences updated', preferences: saved }, 'nested and flat switches both taken; unknown keys ignored')
  t.same((await app.inject({ method: 'GET', url: '/api/users/me/preferences', headers: me.headers })).json(), saved)

  const merged = await app.inject({ method: 'PUT', url: '/api/users/me/preferences', headers: me.headers, payload: { theme: null, bio: 'hi', announcement_notifications: true } })
  t.same(merged.json().preferences, { ...saved, theme: null, bio: 'hi', notifications: { ...saved.notifications, announcements: true } }, 'absent keys kept, null clears')

  t.same((await app.inject({ method: 'GET', url: '/api/users/me/preferences', headers: other.headers })).json(), empty, 'another user\'s are their own')

  for (const payload of [{ timezone: 'Mars/Olympus' }, { theme: 'x'.repeat(33) }, { notifications: { email: 'yes' } }, { bio: 'x'.repeat(1001) }]) {
    const bad = await app.inject({ method: 'PUT', url: '/api/users/me/preferences', headers: me.headers, payload })
    t.equal(bad.statusCode, 400, `${JSON.stringify(payload).slice(0, 40)} → 400`)
    t.ok(bad.json().detail, 'with a message')
  }
  t.same((await app.inject({ method: 'GET', url: '/api/users/me/preferences', headers: me.headers })).json(), merged.json().preferences, 'refusals changed nothing')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me/preferences' })).statusCode, 401)
})
