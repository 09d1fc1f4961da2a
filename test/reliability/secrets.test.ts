// The secrets scan: a realistic session (users, keys of every kind, management tokens,
// provider secrets, logins including a password typed into the login field, gateway
// verify and usage events whose headers and bodies carry the caller's key), then the
// whole database, the whole log and every response body are searched for each secret
// in clear. Only the responses the README names may carry a key (creation and "show
// full key"); a token appears only in the response that issues it.
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { hashPassword, randomBase62 } from '../../src/lib/crypto.js'
import { maskCredential, redactHeaders, redactJson, redactText } from '../../src/lib/redact.js'
import { buildTestApp, GATEWAY_TOKEN, logCapture } from '../helper.js'

interface Seen { what: string, status: number, text: string, allowed: Set<string> }

/** Every row of every table in the public schema, as JSON text (the embedded PostgreSQL ships no pg_dump). */
async function dumpDatabase (app: Awaited<ReturnType<typeof buildTestApp>>['app']): Promise<{ text: string, tables: number, rows: number }> {
  const tables = await app.prisma.$queryRaw<Array<{ tablename: string }>>`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`
  const parts: string[] = []
  let rows = 0
  for (const { tablename } of tables) {
    // names come from the catalogue, quoted as identifiers
    const dumped = await app.prisma.$queryRawUnsafe<Array<{ row: string }>>(`SELECT row_to_json(t)::text AS row FROM "${tablename.replaceAll('"', '""')}" t`)
    rows += dumped.length
    parts.push(`-- ${tablename}`, ...dumped.map((r) => r.row))
  }
  return { text: parts.join('\n'), tables: tables.length, rows }
}

t.test('no secret in clear in the database, the log, or any response but the ones that issue it', async (t) => {
  const logs = logCapture()
  const { app } = await buildTestApp(t, { logStream: logs.stream, env: { LOG_LEVEL: 'debug' } })
  const seen: Seen[] = []
  const call = async (what: string, options: InjectOptions, allowed: string[] = []) => {
    const res = await app.inject(options)
    seen.push({ what, status: res.statusCode, text: `${JSON.stringify(res.headers)}\n${res.body}`, allowed: new Set(allowed) })
    return res
  }
  const ok = (res: { statusCode: number, body: string }, status: number, what: string) => {
    if (res.statusCode !== status) t.fail(`${what}: ${res.statusCode} ${res.body}`)
    return JSON.parse(res.body) as Record<string, any>
  }

  const secrets: Record<string, string> = { 'gateway token': GATEWAY_TOKEN }

  // admin signs in
  const adminName = `root-${randomBase62(6)}`
  secrets['admin password'] = `Adm-${randomBase62(24)}`
  await app.prisma.user.create({ data: { username: adminName, email: `${adminName}@example.com`, role: 'admin', passwordHash: await hashPassword(secrets['admin password']) } })
  const adminLogin = ok(await call('admin login', { method: 'POST', url: '/api/auth/login', payload: { email: adminName, password: secrets['admin password'] } }, ['admin session']), 200, 'admin login')
  secrets['admin session'] = adminLogin.access_token
  const admin = { authorization: `Bearer ${secrets['admin session']}` }

  // a user, created through the API with a password
  secrets['user password'] = `Usr-${randomBase62(24)}`
  const user = ok(await call('create user', { method: 'POST', url: '/api/admin/users', headers: admin, payload: { username: 'grace', email: 'grace@example.com', password: secrets['user password'] } }), 201, 'create user')

  // the user types the password into the login field, then a wrong one, then signs in
  ok(await call('password in the login field', { method: 'POST', url: '/api/auth/login', payload: { email: secrets['user password'], password: 'grace@example.com' } }), 401, 'password in the login field')
  secrets['wrong password'] = `Wrong-${randomBase62(24)}`
  ok(await call('wrong password', { method: 'POST', url: '/api/auth/login', payload: { email: 'grace', password: secrets['wrong password'] } }), 401, 'wrong password')
  const userLoginRes = await call('user login', { method: 'POST', url: '/api/auth/login', payload: { email: 'grace@example.com', password: secrets['user password'] } }, ['user session'])
  secrets['user session'] = ok(userLoginRes, 200, 'user login').access_token
  const cookie = userLoginRes.cookies.find((c) => c.name === 'km_session')!.value
  const grace = { authorization: `Bearer ${secrets['user session']}` }

  // a management token, made with the session and used
  const token = ok(await call('create management token', { method: 'POST', url: '/api/users/me/management-tokens', headers: admin, payload: { name: 'scripts' } }, ['management token']), 201, 'create management token')
  secrets['management token'] = token.token
  ok(await call('management token used', { method: 'GET', url: '/api/admin/users', headers: { authorization: `Bearer ${secrets['management token']}` } }), 200, 'management token used')
  ok(await call('management tokens listed', { method: 'GET', url: '/api/admin/management-tokens', headers: admin }), 200, 'management tokens listed')

  // a provider with an API key (write-only secret)
  secrets['provider secret'] = `sk-ant-api03-${randomBase62(40)}`
  const provider = ok(await call('create provider', { method: 'POST', url: '/api/admin/providers', headers: admin, payload: { name: 'anthropic', billing_type: 'pay_as_you_go' } }), 201, 'create provider')
  const providerKey = ok(await call('create provider key', { method: 'POST', url: `/api/admin/providers/${provider.id}/keys`, headers: admin, payload: { name: 'main', secret: secrets['provider secret'] } }), 201, 'create provider key')
  ok(await call('provider keys listed', { method: 'GET', url: `/api/admin/providers/${provider.id}/keys`, headers: admin }), 200, 'provider keys listed')

  // keys: standalone, a user's (by the admin) and the user's own; one full-key reveal
  const standalone = ok(await call('create standalone key', { method: 'POST', url: '/api/admin/api-keys', headers: admin, payload: { name: 'batch' } }, ['standalone key']), 201, 'create standalone key')
  secrets['standalone key'] = standalone.key
  const userKey = ok(await call('create user key', { method: 'POST', url: `/api/admin/users/${user.id}/api-keys`, headers: admin, payload: { name: 'laptop' } }, ['user key']), 201, 'create user key')
  secrets['user key'] = userKey.key
  const ownKey = ok(await call('create own key', { method: 'POST', url: '/api/users/me/api-keys', headers: grace, payload: { name: 'own' } }, ['own key']), 201, 'create own key')
  secrets['own key'] = ownKey.key
  const revealed = ok(await call('show full key', { method: 'GET', url: `/api/admin/api-keys/${standalone.id}?include_key=true`, headers: admin }, ['standalone key']), 200, 'show full key')
  t.equal(revealed.key, secrets['standalone key'], 'the reveal shows the key')
  ok(await call('keys listed', { method: 'GET', url: '/api/admin/api-keys', headers: admin }), 200, 'keys listed')
  ok(await call('own keys listed', { method: 'GET', url: '/api/users/me/api-keys', headers: grace }), 200, 'own keys listed')

  // the gateway verifies the key and reports the request, with the caller's headers and bodies
  const gatewayHeaders = { authorization: `Bearer ${GATEWAY_TOKEN}` }
  ok(await call('verify', { method: 'POST', url: '/api/gateway/keys/verify', headers: gatewayHeaders, payload: { key: secrets['user key'], model: 'claude-x' } }), 200, 'verify')
  secrets['upstream cookie'] = `up-${randomBase62(32)}`
  const events = [{
    type: 'complete', request_id: 'req-with-secrets', api_key_id: userKey.id, model: 'claude-x', api_format: 'claude:messages',
    provider_id: provider.id, provider_api_key_id: providerKey.id, status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5,
    request_headers: {
      authorization: `Bearer ${secrets['user key']}`, 'x-api-key': secrets['user key'], cookie: `km_session=${cookie}; theme=dark`,
      'proxy-authorization': `Basic ${Buffer.from(`grace:${secrets['user password']}`).toString('base64')}`,
      'x-goog-api-key': secrets['provider secret'], 'content-type': 'application/json', 'user-agent': 'claude-cli/1.0'
    },
    request_body: { model: 'claude-x', api_key: secrets['own key'], messages: [{ role: 'user', content: `why does ${secrets['user key']} not work? also Bearer ${secrets['management token']}` }] },
    response_headers: { 'set-cookie': [`upstream=${secrets['upstream cookie']}; Path=/; HttpOnly`], 'anthropic-ratelimit-tokens-remaining': '39000' },
    response_body: { content: [{ type: 'text', text: `your key ${secrets['standalone key']} is fine` }], usage: { input_tokens: 10, output_tokens: 5 } },
    metadata: { client: 'cli', forwarded_authorization: `Bearer ${secrets['user key']}`, note: `session ${secrets['admin session']}` }
  }, {
    type: 'complete', request_id: 'req-failed', api_key_id: userKey.id, model: 'claude-x', status: 'failed', status_code: 401, input_tokens: 0, output_tokens: 0,
    error_message: `upstream refused x-api-key ${secrets['provider secret']}`,
    candidates: [{ candidate_index: 0, provider_id: provider.id, status: 'failed', status_code: 401, error_message: `invalid key ${secrets['provider secret']}` }]
  }]
  const results = ok(await call('usage', { method: 'POST', url: '/api/gateway/usage', headers: gatewayHeaders, payload: { events } }), 200, 'usage').results
  t.same(results.map((r: { outcome: string }) => r.outcome), ['recorded', 'recorded'], 'both events recorded')

  // the details read back, by the admin and by their owner; the key holder's own views
  const usageRow = await app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-with-secrets' } })
  const failedRow = await app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-failed' } })
  const detail = ok(await call('admin detail', { method: 'GET', url: `/api/admin/usage/${usageRow.id}`, headers: admin }), 200, 'admin detail')
  ok(await call('admin detail, failed', { method: 'GET', url: `/api/admin/usage/${failedRow.id}`, headers: admin }), 200, 'admin detail, failed')
  ok(await call('own detail', { method: 'GET', url: `/api/users/me/usage/${usageRow.id}`, headers: grace }), 200, 'own detail')
  ok(await call('records', { method: 'GET', url: '/api/admin/usage/records', headers: admin }), 200, 'records')
  ok(await call('own records', { method: 'GET', url: '/api/users/me/usage/records', headers: grace }), 200, 'own records')
  ok(await call('key holder stats', { method: 'POST', url: '/api/key-stats/user-stats', payload: { api_key: secrets['user key'] } }), 200, 'key holder stats')
  ok(await call('key holder details', { method: 'GET', url: '/api/key-stats/usage-details', headers: { authorization: `Bearer ${secrets['user key']}` } }), 200, 'key holder details')

  // what is kept is still useful: header names, a masked display, the rest of the body
  t.same(Object.keys(detail.request_headers).sort(), ['authorization', 'content-type', 'cookie', 'proxy-authorization', 'user-agent', 'x-api-key', 'x-goog-api-key'], 'every header name kept')
  t.match(detail.request_headers.authorization, /^Bearer sk-.…[A-Za-z0-9]{4}$/, 'the scheme and a masked display')
  t.match(detail.request_headers.cookie, /^km_session=.+….+; theme=\*\*\*\*$/, 'cookie names kept')
  t.equal(detail.request_headers['content-type'], 'application/json')
  t.equal(detail.response_headers['anthropic-ratelimit-tokens-remaining'], '39000', 'rate-limit counts are not credentials')
  t.equal(detail.request_body.messages[0].role, 'user')
  t.match(detail.request_body.messages[0].content, /^why does sk-.…\w{4} not work\? also Bearer kmm_…\w{4}$/)
  t.same(detail.response_body.usage, { input_tokens: 10, output_tokens: 5 })

  // the audit log, read by the admin; then sign out
  const audit = ok(await call('audit log', { method: 'GET', url: '/api/admin/audit-logs?limit=500', headers: admin }), 200, 'audit log')
  const logins = (audit.items as Array<{ action: string, success: boolean, metadata: Record<string, unknown> | null }>).filter((row) => row.action === 'auth.login')
  t.equal(logins.length, 4, 'every login audited')
  t.ok(logins.some((row) => !row.success && row.metadata?.login === 'grace'), 'a known login is kept')
  t.ok(logins.some((row) => !row.success && row.metadata?.login_known === false && !('login' in row.metadata)), 'an unknown one is not')
  ok(await call('logout', { method: 'POST', url: '/api/auth/logout', headers: grace }), 200, 'logout')
  await app.pipeline.readAuditsWritten()

  const dump = await dumpDatabase(app)
  t.ok(dump.tables >= 20 && dump.rows > 20, `dumped ${dump.rows} rows of ${dump.tables} tables`)
  t.ok(dump.text.includes('req-with-secrets') && dump.text.includes('anthropic-ratelimit-tokens-remaining'), 'the usage bodies are in the dump')
  const log = logs.text()
  t.ok(logs.lines.length >= seen.length, `${logs.lines.length} log lines: one at least per call (one line a request)`)

  let hits = 0
  for (const [name, secret] of Object.entries(secrets)) {
    // the whole secret, and its middle (a prefix or suffix cut off, a display widened)
    const needles = [secret, secret.slice(8, -5)]
    const where: string[] = []
    if (needles.some((n) => dump.text.includes(n))) where.push('the database')
    if (needles.some((n) => log.includes(n))) where.push('the log')
    for (const response of seen) if (!response.allowed.has(name) && needles.some((n) => response.text.includes(n))) where.push(`the response to "${response.what}"`)
    hits += where.length
    t.same(where, [], `the ${name} is nowhere in clear`)
  }
  t.equal(hits, 0, 'zero hits')
  t.ok(seen.some((r) => r.allowed.has('user key') && r.text.includes(secrets['user key']!)), 'the scan finds a key where one is shown')
})

t.test('redaction: masked displays, names kept, prose untouched', async (t) => {
  const key = `sk-${randomBase62(48)}`
  t.equal(maskCredential(`Bearer ${key}`), `Bearer ${key.slice(0, 4)}…${key.slice(-4)}`)
  t.equal(maskCredential('short-secret'), '****', 'a short value is masked whole')
  t.equal(maskCredential('Basic dXNlcjpwYXNz'), 'Basic ****')
  t.equal(redactText(`key=${key}.`), `key=${key.slice(0, 4)}…${key.slice(-4)}.`)
  t.equal(redactText('Basic understanding of sk-learn and task-lists'), 'Basic understanding of sk-learn and task-lists', 'prose is left alone')
  t.same(redactHeaders({ Authorization: 'token abc', 'X-Auth-Token': 'x'.repeat(30), Accept: 'text/plain', 'x-ratelimit-limit-tokens': '100' }),
    { Authorization: 'token ****', 'X-Auth-Token': `xxxx…xxxx`, Accept: 'text/plain', 'x-ratelimit-limit-tokens': '100' })
  t.same(redactJson({ password: 'hunter2', max_tokens: 10, nested: [{ client_secret: 'abc', text: `use ${key}` }] }),
    { password: '****', max_tokens: 10, nested: [{ client_secret: '****', text: `use ${key.slice(0, 4)}…${key.slice(-4)}` }] })
})

t.test('redaction is idempotent: what was masked at storage reads back the same', async (t) => {
  const key = `sk-${randomBase62(48)}`
  const headers = { authorization: `Bearer ${key}`, cookie: `a=${key}; b=1`, 'x-api-key': key }
  const once = redactHeaders(headers)
  t.same(redactHeaders(once), once)
  const body = { api_key: key, text: `Bearer ${key}` }
  t.same(redactJson(redactJson(body)), redactJson(body))
})
