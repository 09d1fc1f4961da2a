// The three per-address limits run on @fastify/rate-limit: the standard headers on every
// limited answer, the not-found limit (120 unknown paths a minute), the login throttle
// after the move, and memory bounded by the store's capacity however many addresses
// come. Time is the app's injected clock, moved by the test.
import t from 'tap'
import { WindowStore } from '../../src/http/rate-limit.js'
import { LoginThrottle } from '../../src/modules/auth/service.js'
import { createDatabase, testConfig } from '../helper.js'
import { buildApp } from '../../src/app.js'
import type { Test } from 'tap'

async function clockedApp (t: Test, clientsTracked?: number) {
  const url = await createDatabase(t)
  const clock = { now: 1_000_000_000_000 }
  const app = await buildApp(testConfig(url), { clock: () => clock.now, clientsTracked })
  await app.ready()
  t.teardown(() => app.close())
  return { app, clock }
}

t.test('limited answers carry x-ratelimit-limit/remaining/reset, and 429s retry-after', async (t) => {
  const { app } = await clockedApp(t)
  const stats = await app.inject({ method: 'POST', url: '/api/key-stats/user-stats', payload: { api_key: 'sk-guess' }, remoteAddress: '192.0.2.1' })
  t.equal(stats.statusCode, 401)
  t.match(stats.headers, { 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '59', 'x-ratelimit-reset': '60' }, 'key-stats')
  const unknown = await app.inject({ method: 'GET', url: '/nowhere', remoteAddress: '192.0.2.1' })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.headers, { 'x-ratelimit-limit': '120', 'x-ratelimit-remaining': '119', 'x-ratelimit-reset': '60' }, 'unknown paths')
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'nobody', password: 'guess' }, remoteAddress: '192.0.2.1' })
  t.equal(login.statusCode, 401)
  t.match(login.headers, { 'x-ratelimit-limit': String(LoginThrottle.LIMIT), 'x-ratelimit-remaining': String(LoginThrottle.LIMIT - 1), 'x-ratelimit-reset': String(LoginThrottle.WINDOW_MS / 1000) }, 'login')
  t.equal(unknown.headers['retry-after'], undefined, 'no retry-after while allowed')
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.headers['x-ratelimit-limit'], undefined, 'routes without a limit have no headers (global: false)')
})

t.test('unknown paths: 120 a minute per address, then 429 with Retry-After, not audited; a new window later', async (t) => {
  const { app, clock } = await clockedApp(t)
  const probe = (remoteAddress: string, url = '/api/admin/nothing-here') => app.inject({ method: 'GET', url, remoteAddress })
  for (let i = 0; i < 120; i++) t.equal((await probe('192.0.2.7')).statusCode, 404)
  clock.now += 30_000
  const limited = await probe('192.0.2.7')
  t.equal(limited.statusCode, 429)
  t.equal(limited.json().error.type, 'too_many_requests')
  t.equal(limited.headers['retry-after'], '30', 'half the window left')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.equal((await probe('192.0.2.8')).statusCode, 404, 'another address is not limited')
  t.equal(await app.prisma.auditLog.count(), 0, 'probes of unknown paths write no audit row, 404 or 429')
  clock.now += 30_000
  t.equal((await probe('192.0.2.7')).statusCode, 404, 'a new window')
})

t.test('the login throttle still throttles: LIMIT failures, then 429 login_throttled until the window ends', async (t) => {
  const { app, clock } = await clockedApp(t)
  for (let i = 0; i < LoginThrottle.LIMIT; i++) app.loginThrottle.fail('192.0.2.9')
  const login = () => app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'nobody', password: 'guess' }, remoteAddress: '192.0.2.9' })
  clock.now += LoginThrottle.WINDOW_MS - 60_000
  const refused = await login()
  t.equal(refused.statusCode, 429)
  t.equal(refused.json().error.type, 'login_throttled')
  t.equal(refused.headers['retry-after'], '60', 'the rest of the window')
  t.equal(await app.prisma.auditLog.count({ where: { action: 'auth.login', statusCode: 429 } }), 1, 'the refusal is audited')
  clock.now += 60_000
  const again = await login()
  t.equal(again.statusCode, 401, 'the window over, the address may try again')
  t.equal(again.headers['x-ratelimit-remaining'], String(LoginThrottle.LIMIT - 1))
})

t.test('memory is bounded: many distinct addresses never grow a limiter past its capacity', async (t) => {
  const { app } = await clockedApp(t, 50)
  for (let i = 0; i < 200; i++) {
    const remoteAddress = `198.18.${i >> 8}.${i & 255}`
    t.equal((await app.inject({ method: 'GET', url: '/nowhere', remoteAddress })).statusCode, 404)
    app.loginThrottle.fail(remoteAddress)
  }
  for (let i = 0; i < 60; i++) await app.inject({ method: 'POST', url: '/api/key-stats/user-stats', payload: {}, remoteAddress: `198.19.0.${i}` })
  const stores = app.rateLimitStores.all()
  t.ok(stores.length >= 3, `${stores.length} limiters (login, unknown paths, key-stats)`)
  t.same(stores.map((store) => store.size <= 50), stores.map(() => true), `sizes ${stores.map((s) => s.size).join(', ')} ≤ 50`)
  t.ok(stores.some((store) => store.size === 50), 'a limiter that saw 200 addresses is full, not larger')
  // the addresses seen last are remembered: a throttled one among them stays throttled
  for (let i = 0; i < LoginThrottle.LIMIT; i++) app.loginThrottle.fail('198.18.0.199')
  t.ok(app.loginThrottle.retryAfter('198.18.0.199') > 0)
})

t.test('WindowStore: fixed windows on its clock, least recently seen forgotten first, counts taken back', async (t) => {
  let now = 0
  const store = new WindowStore(3, () => now)
  const incr = (key: string) => { let out = { current: 0, ttl: 0 }; store.incr(key, (_e, r) => { out = r! }, 1000); return out }
  t.same(incr('a'), { current: 1, ttl: 1000 })
  now = 400
  t.same(incr('a'), { current: 2, ttl: 600 }, 'same window, 600 ms left')
  store.decrement('a', 1000)
  t.equal(store.count('a', 1000), 1, 'taken back')
  incr('b')
  incr('c')
  incr('a') // a is now the most recently seen
  incr('d') // evicts b
  t.equal(store.size, 3)
  t.equal(store.count('b', 1000), 0, 'b forgotten')
  t.equal(store.count('a', 1000), 2, 'a kept')
  now = 1000
  t.same(incr('a'), { current: 1, ttl: 1000 }, 'a new window at its end')
  t.equal(store.remainingMs('c', 1000), 400, 'c, counted at 400, has 400 ms left')
  now = 1400
  t.equal(store.remainingMs('c', 1000), 0, 'then its window is over')
})
