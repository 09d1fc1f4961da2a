// A password change ends the user's other sessions, whichever credential carries them
// (the signed cookie or the bearer access token); the one making the change stays, and
// a change made with a management token (no session of its own) ends them all.
import t from 'tap'
import { buildTestApp, signIn } from '../../helper.js'

const PASSWORD = 'correct-horse-battery'

t.test('changed through the cookie session: that cookie still works, the bearer session ends', async (t) => {
  const { app } = await buildTestApp(t)
  const bearer = await signIn(app, 'user', 'ada')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'ada', password: PASSWORD } })
  const cookie = login.cookies.find((c) => c.name === 'km_session')!
  const byCookie = { cookie: `km_session=${cookie.value}` }
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: byCookie })).statusCode, 200, 'the cookie signs in')

  const changed = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: byCookie, payload: { old_password: PASSWORD, new_password: 'another-passphrase' } })
  t.equal(changed.statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: byCookie })).statusCode, 200, 'the session that changed it stays')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: bearer.headers })).statusCode, 401, 'the other session has ended')
})

t.test('changed through a management token: every session ends, the token goes on', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user', 'grace')
  const other = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'grace', password: PASSWORD } })
  const created = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: user.headers, payload: { name: 'script' } })
  const token = { authorization: `Bearer ${created.json().token as string}` }

  const refused = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: token, payload: { old_password: 'wrong-password', new_password: 'another-passphrase' } })
  t.equal(refused.statusCode, 400, 'a wrong current password')
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })).statusCode, 200, 'a refusal ends nothing')

  const changed = await app.inject({ method: 'PATCH', url: '/api/users/me/password', headers: token, payload: { old_password: PASSWORD, new_password: 'another-passphrase' } })
  t.equal(changed.statusCode, 200)
  for (const session of [user.headers, { authorization: `Bearer ${other.json().access_token as string}` }]) {
    t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: session })).statusCode, 401, 'a session has ended')
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: token })).statusCode, 200, 'the management token is no session: it stays')

  await app.pipeline.readAuditsWritten()
  const rows = await app.prisma.auditLog.findMany({ where: { userId: user.id, action: 'users.me.password' } })
  t.equal(rows.length, 2, 'the refusal and the change are audited')
})
