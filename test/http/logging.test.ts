// No secret ever reaches the log: passwords, access tokens, session cookies,
// management tokens and API keys in URLs — while every request still leaves a
// line with its request_id. Plus the scrub helpers themselves.
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { scrub, scrubString } from '../../src/http/logging.js'
import { hashPassword, randomBase62 } from '../../src/lib/crypto.js'
import { buildTestApp, logCapture } from '../helper.js'

t.test('secrets used in requests never appear in the log, and every request logs its request_id', async (t) => {
  const logs = logCapture()
  const { app } = await buildTestApp(t, { logStream: logs.stream })
  const username = `logger-${randomBase62(6)}`
  const password = `Pw-${randomBase62(24)}`
  const wrongPassword = `Wrong-${randomBase62(24)}`
  const apiKey = `sk-${randomBase62(48)}`
  await app.prisma.user.create({ data: { username, email: `${username}@example.com`, role: 'admin', passwordHash: await hashPassword(password) } })

  const responses: Array<{ id: string, status: number, what: string }> = []
  const call = async (what: string, options: InjectOptions) => {
    const res = await app.inject(options)
    responses.push({ id: String(res.headers['x-request-id']), status: res.statusCode, what })
    return res
  }

  // sign in with the password: bearer access token and signed session cookie
  const login = await call('login', { method: 'POST', url: '/api/auth/login', payload: { email: username, password } })
  t.equal(login.statusCode, 200, 'signed in')
  const accessToken = (login.json() as { access_token: string }).access_token
  const cookie = login.cookies.find((c) => c.name === 'km_session')
  t.ok(cookie, 'the session cookie is set')
  const cookieValue = cookie!.value
  const bearer = { authorization: `Bearer ${accessToken}` }

  t.equal((await call('bearer', { method: 'GET', url: '/api/users/me', headers: bearer })).statusCode, 200, 'the bearer token works')
  t.equal((await call('cookie', { method: 'GET', url: '/api/users/me', headers: { cookie: `km_session=${cookieValue}` } })).statusCode, 200, 'the session cookie works')
  t.equal((await call('admin list', { method: 'GET', url: '/api/admin/users?limit=5', headers: bearer })).statusCode, 200)

  // a management token, made with the session and then used
  const created = await call('create management token', { method: 'POST', url: '/api/users/me/management-tokens', headers: bearer, payload: { name: 'log test' } })
  t.equal(created.statusCode, 201, 'management token created')
  const managementToken = (created.json() as { token: string }).token
  t.match(managementToken, /^kmm_/)
  t.equal((await call('management token', { method: 'GET', url: '/api/admin/users', headers: { authorization: `Bearer ${managementToken}` } })).statusCode, 200, 'the management token works')

  // an API key in the URL, on a route that ignores it, one that refuses it and an unknown path
  await call('api_key on /health', { method: 'GET', url: `/health?api_key=${apiKey}` })
  await call('api_key on an admin route', { method: 'GET', url: `/api/admin/users?api_key=${apiKey}`, headers: bearer })
  await call('api_key on an unknown path', { method: 'GET', url: `/no/such/path?api_key=${apiKey}&token=${accessToken}` })

  // a failing login with a password, and refused calls carrying the secrets
  const failed = await call('failed login', { method: 'POST', url: '/api/auth/login', payload: { email: username, password: wrongPassword } })
  t.equal(failed.statusCode, 401, 'the wrong password is refused')
  await call('bad json with a password', { method: 'POST', url: '/api/auth/login', headers: { 'content-type': 'application/json' }, payload: `{"email":"${username}","password":"${wrongPassword}"` })
  await call('forbidden body with a token', { method: 'POST', url: '/api/admin/users', headers: bearer, payload: { username: 5, password } })

  // sign out; the token is then refused
  t.equal((await call('logout', { method: 'POST', url: '/api/auth/logout', headers: bearer })).statusCode, 200)
  t.equal((await call('revoked bearer', { method: 'GET', url: '/api/users/me', headers: bearer })).statusCode, 401)

  const text = logs.text()
  t.ok(text.length > 0, `the log has ${logs.lines.length} lines`)
  const secrets: Record<string, string> = {
    password,
    'wrong password': wrongPassword,
    'access token': accessToken,
    'cookie value': cookieValue,
    'cookie value, URL-encoded': encodeURIComponent(cookieValue),
    'management token': managementToken,
    'sk- key': apiKey
  }
  for (const [name, secret] of Object.entries(secrets)) {
    t.notOk(text.includes(secret), `the ${name} is not in the log`)
    // what follows the visible prefix (kms_x, kmm_x, sk-x) must not be there either
    t.notOk(text.includes(secret.slice(6)), `no tail of the ${name} is in the log`)
  }

  const entries = logs.lines.map((line) => JSON.parse(line) as { request_id?: string, msg?: string, status?: number, method?: string, route?: string, duration_ms?: number })
  for (const { id, status, what } of responses) {
    const mine = entries.filter((e) => e.request_id === id)
    t.ok(mine.length > 0, `${what}: the log has lines with request_id ${id}`)
    const completed = mine.filter((e) => e.msg === 'request completed')
    t.equal(completed.length, 1, `${what}: one "request completed" line`)
    t.equal(completed[0]?.status, status, `${what}: it records status ${status}`)
    t.type(completed[0]?.duration_ms, 'number', `${what}: and its duration`)
    t.ok(completed[0]?.method !== undefined && completed[0]?.route !== undefined, `${what}: and its method and route`)
  }
  t.equal(new Set(responses.map((r) => r.id)).size, responses.length, 'every request had its own id')
})

t.test('scrubString masks secret-shaped strings and leaves the rest', async (t) => {
  const sk = `sk-${randomBase62(48)}`
  const kms = `kms_${randomBase62(40)}`
  const kmm = `kmm_${randomBase62(40)}`
  const masked = scrubString(`GET /x?api_key=${sk}&session=${kms} auth Bearer ${kmm}.`)
  for (const secret of [sk, kms, kmm]) t.notOk(masked.includes(secret.slice(4)), `${secret.slice(0, 4)}… is masked`)
  t.match(masked, /api_key=sk-.\[redacted\]/, 'the prefix stays, for the reader')
  t.match(masked, /Bearer kmm_\[redacted\]\.$/, 'the text around it stays')
  t.equal(scrubString('nothing secret here: sk-short, kms_, task-list'), 'nothing secret here: sk-short, kms_, task-list', 'short or shapeless text is untouched')
})

t.test('scrub censors secret-named fields and secret-shaped strings at any depth, without touching the input', async (t) => {
  const sk = `sk-${randomBase62(48)}`
  const input = {
    msg: 'login',
    user: {
      name: 'bob',
      password: 'hunter2-plain',
      newPassword: 'hunter3-plain',
      profile: { apiKey: 'raw-key-value', access_token: 'raw-access', note: `their key is ${sk}` },
      sessions: [{ id: 1, token: 'tok-1' }, { id: 2, secret: 'shh' }]
    },
    headers: { authorization: 'Bearer raw', cookie: 'km_session=raw', 'x-api-key': 'raw-x' },
    count: 3,
    token_display: 'kmm_abcd…wxyz',
    tokenCount: 5,
    isKey: true,
    keyCount: 2,
    nothing: null
  }
  const copy = JSON.parse(JSON.stringify(input))
  const out = scrub(input) as typeof input
  t.same(input, copy, 'the input is not modified')
  t.not(out, input, 'a copy is returned')
  t.match(out, {
    msg: 'login',
    user: {
      name: 'bob',
      password: '[redacted]',
      newPassword: '[redacted]',
      profile: { apiKey: '[redacted]', access_token: '[redacted]' },
      sessions: [{ id: 1, token: '[redacted]' }, { id: 2, secret: '[redacted]' }]
    },
    headers: { authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]' },
    count: 3,
    token_display: 'kmm_abcd…wxyz',
    tokenCount: 5,
    isKey: true,
    nothing: null
  })
  t.notOk(out.user.profile.note.includes(sk.slice(4)), 'a key inside a free-text field is masked')
  const text = JSON.stringify(out)
  for (const raw of ['hunter2-plain', 'hunter3-plain', 'raw-key-value', 'raw-access', 'tok-1', 'shh', 'Bearer raw', 'km_session=raw', 'raw-x']) {
    t.notOk(text.includes(raw), `${raw} is gone`)
  }
})

t.test('scrub handles errors, arrays, class instances and deep nesting', async (t) => {
  const sk = `sk-${randomBase62(48)}`
  const error = scrub(new Error(`upstream refused ${sk}`)) as { type: string, message: string, stack: string }
  t.equal(error.type, 'Error')
  t.notOk(error.message.includes(sk.slice(4)), 'a key in an error message is masked')
  t.notOk(error.stack.includes(sk.slice(4)), 'and in its stack')

  t.same(scrub([`x ${sk}`, 1, null]), [`x sk-${sk[3]}[redacted]`, 1, null], 'arrays are walked')

  class Thing { constructor (readonly token = 'instance-token') {} }
  const thing = new Thing()
  t.equal(scrub(thing), thing, 'class instances are left to their serializers')

  let deep: Record<string, unknown> = { password: 'bottom' }
  for (let i = 0; i < 20; i++) deep = { next: deep }
  t.doesNotThrow(() => scrub(deep), 'deep nesting does not blow the stack')
  const cyclic: Record<string, unknown> = { name: 'loop' }
  cyclic.self = cyclic
  t.doesNotThrow(() => scrub(cyclic), 'a cycle ends at the depth limit')

  for (const value of [undefined, null, 0, true, 'plain']) t.equal(scrub(value), value, `${String(value)} passes through`)
})

t.test('scrub censors a secret-named field whatever its value holds', async (t) => {
  const out = JSON.stringify(scrub({
    authorization: ['Bearer gateway-raw-secret'],
    password: { value: 'nested-plain-password' },
    gateway_tokens: 'gw-raw-1,gw-raw-2',
    passwordHash: 'scrypt$raw-hash'
  }))
  for (const raw of ['gateway-raw-secret', 'nested-plain-password', 'gw-raw-1', 'scrypt$raw-hash']) t.notOk(out.includes(raw), `${raw} is gone`)
})
