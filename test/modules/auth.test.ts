import t from 'tap'
import { buildTestApp, signIn } from '../helper.js'
import { hashPassword } from '../../src/lib/crypto.js'
import { WindowStore } from '../../src/http/rate-limit.js'
import { LoginThrottle } from '../../src/modules/auth/service.js'

t.test('login returns the Aether shape, sets a signed HttpOnly cookie, and both credentials work', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await app.prisma.user.create({ data: { username: 'ada', email: 'ada@example.com', role: 'admin', passwordHash: await hashPassword('difference-engine') } })
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'ada@example.com', password: 'difference-engine' } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { token_type: 'bearer', expires_in: 86400, user_id: user.id, email: 'ada@example.com', username: 'ada', role: 'admin' })
  t.match(body.access_token, /^kms_[A-Za-z0-9]{40}$/)
  const cookie = res.cookies.find((c) => c.name === 'km_session')
  t.ok(cookie, 'session cookie set')
  t.equal(cookie?.httpOnly, true)
  t.equal(cookie?.sameSite, 'Lax')
  t.not(cookie?.value, body.access_token, 'cookie is signed, not the bare token')

  const byBearer = await app.inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${body.access_token}` } })
  t.equal(byBearer.statusCode, 200)
  t.match(byBearer.json(), { id: user.id, username: 'ada', role: 'admin', is_active: true, quota_usd: null, used_usd: 0 })
  t.notOk('password_hash' in byBearer.json())
  const byCookie = await app.inject({ method: 'GET', url: '/api/users/me', cookies: { km_session: cookie!.value } })
  t.equal(byCookie.statusCode, 200)
  t.equal(byCookie.json().id, user.id)

  const last = await app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })
  t.ok(last.lastLoginAt, 'last_login_at recorded')
})

t.test('the username works as the login too; a tampered cookie does not', async (t) => {
  const { app } = await buildTestApp(t)
  await app.prisma.user.create({ data: { username: 'bob', role: 'user', passwordHash: await hashPassword('builder-bob-1') } })
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'bob', password: 'builder-bob-1' } })
  t.equal(res.statusCode, 200)
  const forged = await app.inject({ method: 'GET', url: '/api/users/me', cookies: { km_session: `${res.json().access_token}.forged` } })
  t.equal(forged.statusCode, 401)
  t.equal(forged.json().error.type, 'unauthorized')
})

t.test('wrong password, unknown user and disabled user all answer 401 with the same message', async (t) => {
  const { app } = await buildTestApp(t)
  await app.prisma.user.create({ data: { username: 'carol', role: 'user', passwordHash: await hashPassword('carol-secret-1') } })
  await app.prisma.user.create({ data: { username: 'dave', role: 'user', isActive: false, passwordHash: await hashPassword('dave-secret-1') } })
  const attempts = [
    { email: 'carol', password: 'wrong-password' },
    { email: 'nobody', password: 'carol-secret-1' },
    { email: 'dave', password: 'dave-secret-1' }
  ]
  const messages = new Set<string>()
  for (const payload of attempts) {
    const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload, remoteAddress: `10.0.0.${messages.size + 1}` })
    t.equal(res.statusCode, 401, `${payload.email} refused`)
    t.match(res.json(), { error: { type: 'unauthorized' }, request_id: String })
    messages.add(res.json().error.message)
  }
  t.equal(messages.size, 1, 'no hint which part was wrong')
  const audit = await app.prisma.auditLog.findMany({ where: { action: 'auth.login', success: false } })
  t.equal(audit.length, 3, 'each failure is audited')
})

t.test('logout ends the session: the token and the cookie stop working', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const out = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: admin.headers })
  t.equal(out.statusCode, 200)
  const after = await app.inject({ method: 'GET', url: '/api/auth/me', headers: admin.headers })
  t.equal(after.statusCode, 401)
  const again = await app.inject({ method: 'POST', url: '/api/auth/logout', headers: admin.headers })
  t.equal(again.statusCode, 401)
})

t.test('an expired session is refused', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  await app.prisma.userSession.updateMany({ where: { userId: user.id }, data: { expiresAt: new Date(Date.now() - 1000) } })
  const res = await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })
  t.equal(res.statusCode, 401)
})

t.test('repeated failures from one address are slowed, then refused with 429 and Retry-After', async (t) => {
  const { app } = await buildTestApp(t)
  await app.prisma.user.create({ data: { username: 'erin', role: 'user', passwordHash: await hashPassword('erin-secret-1') } })
  // drive the throttle straight to its limit so the test does not sit through the delays
  for (let i = 0; i < LoginThrottle.LIMIT; i++) app.loginThrottle.fail('10.9.9.9')
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'erin', password: 'erin-secret-1' }, remoteAddress: '10.9.9.9' })
  t.equal(res.statusCode, 429)
  t.equal(res.json().error.type, 'login_throttled')
  t.ok(Number(res.headers['retry-after']) > 0)
  const other = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'erin', password: 'erin-secret-1' }, remoteAddress: '10.9.9.10' })
  t.equal(other.statusCode, 200, 'other addresses are not affected')
})

t.test('login throttle: free attempts, growing delay, limit, window', async (t) => {
  let now = 1_000_000
  const throttle = new LoginThrottle(new WindowStore(100, () => now))
  for (let i = 0; i < LoginThrottle.FREE; i++) {
    t.equal(throttle.delayMs('ip'), 0)
    throttle.fail('ip')
  }
  t.equal(throttle.delayMs('ip'), 250)
  throttle.fail('ip')
  t.equal(throttle.delayMs('ip'), 500)
  for (let i = LoginThrottle.FREE + 1; i < LoginThrottle.LIMIT; i++) throttle.fail('ip')
  t.equal(throttle.retryAfter('ip'), LoginThrottle.WINDOW_MS / 1000)
  now += LoginThrottle.WINDOW_MS + 1
  t.equal(throttle.retryAfter('ip'), 0, 'forgotten after the window')
  throttle.fail('ip2')
  throttle.succeed('ip2')
  t.equal(throttle.delayMs('ip2'), 0, 'a success clears the count')
})
