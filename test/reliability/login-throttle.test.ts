// The login throttle counts an attempt before its password is hashed: 200 concurrent
// wrong passwords from one address reach the hash at most LoginThrottle.LIMIT times,
// the rest are refused with 429. The hash checks are counted by wrapping the password
// check login calls (auth/service's passwordCheck), not by timing.
import t, { type Test } from 'tap'
import { hashPassword } from '../../src/lib/crypto.js'
import { LoginThrottle, passwordCheck } from '../../src/modules/auth/service.js'
import { buildTestApp } from '../helper.js'

async function countingApp (t: Test) {
  let checks = 0
  const verify = passwordCheck.verify
  passwordCheck.verify = async (password, stored) => { checks++; return verify(password, stored) }
  t.teardown(() => { passwordCheck.verify = verify })
  const { app } = await buildTestApp(t)
  return { app, checks: () => checks }
}

t.test('200 concurrent wrong passwords for one account from one address: at most LIMIT hash checks, the rest 429', async (t) => {
  const { app, checks } = await countingApp(t)
  await app.prisma.user.create({ data: { username: 'victim', email: 'victim@example.com', role: 'admin', passwordHash: await hashPassword('the-real-password') } })
  const attempts = Array.from({ length: 200 }, (_, i) => app.inject({
    method: 'POST', url: '/api/auth/login', remoteAddress: '203.0.113.7', payload: { email: 'victim', password: `guess-${i}` }
  }))
  const answers = await Promise.all(attempts)
  const statuses = new Map<number, number>()
  for (const answer of answers) statuses.set(answer.statusCode, (statuses.get(answer.statusCode) ?? 0) + 1)
  t.ok(checks() <= LoginThrottle.LIMIT, `${checks()} password checks for 200 attempts (limit ${LoginThrottle.LIMIT})`)
  t.equal(statuses.get(401), checks(), 'each checked attempt is a 401')
  t.equal(statuses.get(429), 200 - checks(), 'every other attempt is refused with 429')
  t.same([...statuses.keys()].sort(), [401, 429], 'nothing else (no 500)')
  const refused = answers.filter((a) => a.statusCode === 429)
  t.ok(refused.every((a) => a.json().error.type === 'login_throttled' && Number(a.headers['retry-after']) > 0), 'each 429 is login_throttled with a Retry-After')
  // the right password is refused too while the address is throttled, without a hash check
  const before = checks()
  const right = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '203.0.113.7', payload: { email: 'victim', password: 'the-real-password' } })
  t.equal(right.statusCode, 429)
  t.equal(checks(), before, 'no hash check for a throttled address')
  t.equal(await app.prisma.auditLog.count({ where: { action: 'auth.login' } }), 201, 'every attempt audited')
  const other = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '203.0.113.8', payload: { email: 'victim', password: 'the-real-password' } })
  t.equal(other.statusCode, 200, 'another address signs in')
})

t.test('signing in to one\'s own account does not reset the count of guesses at another', async (t) => {
  const { app, checks } = await countingApp(t)
  await app.prisma.user.create({ data: { username: 'victim', role: 'user', passwordHash: await hashPassword('the-real-password') } })
  await app.prisma.user.create({ data: { username: 'mallory', role: 'user', passwordHash: await hashPassword('mallory-own-pass') } })
  const throttle = app.loginThrottle
  // guesses counted as made (skips their growing delays), then the attacker's own sign-in
  for (let i = 0; i < LoginThrottle.LIMIT - 1; i++) throttle.fail('198.51.100.4')
  const own = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '198.51.100.4', payload: { email: 'mallory', password: 'mallory-own-pass' } })
  t.equal(own.statusCode, 200, 'the own sign-in works')
  const guess = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '198.51.100.4', payload: { email: 'victim', password: 'guess' } })
  t.equal(guess.statusCode, 401, 'the last guess allowed')
  const next = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '198.51.100.4', payload: { email: 'victim', password: 'guess-2' } })
  t.equal(next.statusCode, 429, 'then refused: the own sign-in did not clear the guesses')
  t.equal(checks(), 2, 'two hash checks: the own sign-in and the one guess')
})
