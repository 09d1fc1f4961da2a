// A user sets the allow-lists of their own keys (POST and PUT /api/users/me/api-keys),
// validated as an admin's are, applied by verify and key-stats; limits stay an admin's,
// another user's key is a 404, and every change is audited.
import t from 'tap'
import { signIn } from '../../helper.js'
import { gateway, UNKNOWN_UUID } from '../gateway/fixtures.js'

t.test('a user creates and updates their key\'s allow-lists; verify applies them', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  const provider = await g.provider('own-upstream')
  const own = (method: 'POST' | 'PUT', url: string, payload: object) => g.app.inject({ method, url: `/api/users/me/api-keys${url}`, headers: user.headers, payload })

  const created = await own('POST', '', { name: 'ci', allowed_ips: ['10.0.0.0/8'], allowed_user_agents: ['ci-runner'], allowed_models: ['m1'], allowed_providers: ['own-upstream'], allowed_api_formats: ['openai:chat'] })
  t.equal(created.statusCode, 201, created.body)
  const key = created.json()
  t.match(key, { allowed_ips: ['10.0.0.0/8'], allowed_user_agents: ['ci-runner'], allowed_models: ['m1'], allowed_providers: [provider.id], allowed_provider_names: ['own-upstream'], allowed_api_formats: ['openai:chat'] }, 'stored, the provider by its id')

  const verify = (body: object) => g.verify({ key: key.key, ...body })
  const allowed = { client_ip: '10.1.1.1', user_agent: 'ci-runner/2', model: 'm1', provider: 'own-upstream', api_format: 'openai:chat' }
  t.equal((await verify(allowed)).statusCode, 200, 'inside every list')
  t.equal((await verify({ ...allowed, client_ip: '192.0.2.1' })).json().error.type, 'ip_not_allowed')
  t.equal((await verify({ ...allowed, user_agent: 'curl' })).json().error.type, 'client_not_allowed')
  t.equal((await verify({ ...allowed, model: 'm2' })).json().error.type, 'model_not_allowed')

  // PUT is partial: null or [] allows all again, the rest stays
  const updated = await own('PUT', `/${key.id as string}`, { allowed_ips: ['2001:db8::/32', '192.0.2.0/24'], allowed_user_agents: null, allowed_models: [] })
  t.equal(updated.statusCode, 200, updated.body)
  t.match(updated.json(), { id: key.id, name: 'ci', allowed_ips: ['2001:db8::/32', '192.0.2.0/24'], allowed_user_agents: null, allowed_models: null, allowed_api_formats: ['openai:chat'] })
  const stored = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.same([stored.allowedIps, stored.allowedUserAgents, stored.allowedModels], [['2001:db8::/32', '192.0.2.0/24'], null, null], 'cleared lists stored as NULL')
  t.equal((await verify({ ...allowed, client_ip: '192.0.2.1', user_agent: 'curl', model: 'm2' })).statusCode, 200, 'the new lists apply at once')
  t.equal((await verify({ ...allowed, client_ip: '10.1.1.1' })).json().error.type, 'ip_not_allowed', 'the old range no longer does')
  const renamed = await own('PUT', `/${key.id as string}`, { name: 'ci-2' })
  t.match(renamed.json(), { name: 'ci-2', allowed_ips: ['2001:db8::/32', '192.0.2.0/24'] }, 'a rename keeps the lists')

  // key-stats applies them too
  const stats = await g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: { authorization: `Bearer ${key.key as string}` }, payload: {}, remoteAddress: '10.1.1.1' })
  t.equal(stats.json().error.type, 'ip_not_allowed')

  await g.app.pipeline.readAuditsWritten()
  const audit = await g.app.prisma.auditLog.findMany({ where: { action: 'own_api_keys.update' }, orderBy: { createdAt: 'asc' } })
  t.equal(audit.length, 2)
  t.match(audit[0]!, { userId: user.id, success: true, metadata: { key_id: key.id, fields: ['allowed_ips', 'allowed_user_agents', 'allowed_models'] } })
})

t.test('the same validation as an admin\'s; limits stay an admin\'s; another user\'s key is a 404', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  const other = await signIn(g.app, 'user')
  const mine = (await g.app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'mine' } })).json()
  const theirs = (await g.app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: other.headers, payload: { name: 'theirs', allowed_ips: ['10.0.0.1'] } })).json()
  const put = (id: string, payload: object, headers: Record<string, string> = user.headers) => g.app.inject({ method: 'PUT', url: `/api/users/me/api-keys/${id}`, headers, payload })
  const post = (payload: object) => g.app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'x', ...payload } })
  const tooManyIps = Array.from({ length: 101 }, (_v, i) => `10.0.${Math.floor(i / 250)}.${i % 250}`)
  const refusals: Array<[string, object, number, string, string?]> = [
    ['a bad CIDR', { allowed_ips: ['10.0.0.0/33'] }, 400, 'invalid_input', 'body.allowed_ips'],
    ['not an address', { allowed_ips: ['example.com'] }, 400, 'invalid_input', 'body.allowed_ips'],
    ['101 addresses', { allowed_ips: tooManyIps }, 400, 'validation_error', 'body.allowed_ips'],
    ['a repeated address', { allowed_ips: ['10.0.0.1', '10.0.0.1'] }, 400, 'validation_error', 'body.allowed_ips'],
    ['51 User-Agents', { allowed_user_agents: Array.from({ length: 51 }, (_v, i) => `ua-${i}`) }, 400, 'validation_error', 'body.allowed_user_agents'],
    ['an empty User-Agent', { allowed_user_agents: [''] }, 400, 'validation_error', 'body.allowed_user_agents.0'],
    ['an unknown provider', { allowed_providers: ['nobody'] }, 400, 'invalid_input', 'body.allowed_providers'],
    ['a rate limit', { rate_limit: 5 }, 400, 'validation_error', 'body.rate_limit'],
    ['a daily cost limit', { daily_cost_limit_usd: 1 }, 400, 'validation_error', 'body.daily_cost_limit_usd'],
    ['an expiry', { expire_days: 1 }, 400, 'validation_error', 'body.expire_days'],
    ['is_active (PATCH toggles)', { is_active: false }, 400, 'validation_error', 'body.is_active']
  ]
  for (const [what, payload, status, type, field] of refusals) {
    for (const [door, res] of [['PUT', await put(mine.id, payload)], ['POST', await post(payload)]] as const) {
      t.equal(res.statusCode, status, `${door} ${what}: ${status}`)
      t.match(res.json().error, { type, ...(field !== undefined && { field }) }, `${door} ${what}: ${type}`)
    }
  }
  const empty = await put(mine.id, {})
  t.equal(empty.statusCode, 400, 'an empty update is refused')
  t.equal(empty.json().error.type, 'validation_error')
  for (const id of [theirs.id, UNKNOWN_UUID]) {
    const res = await put(id, { allowed_ips: null })
    t.equal(res.statusCode, 404, 'not yours: 404')
    t.equal(res.json().error.type, 'not_found')
  }
  t.equal((await put(mine.id, { allowed_ips: null }, {})).statusCode, 401, 'signed out')
  const storedTheirs = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: theirs.id } })
  t.same(storedTheirs.allowedIps, ['10.0.0.1'], 'the other user\'s key is untouched')
  const storedMine = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: mine.id } })
  t.same([storedMine.allowedIps, storedMine.rateLimit, storedMine.dailyCostLimit], [null, null, null], 'no refused update changed the key')
  t.equal(await g.app.prisma.apiKey.count({ where: { name: 'x' } }), 0, 'no refused create made a key')
  await g.app.pipeline.readAuditsWritten()
  const refused = await g.app.prisma.auditLog.count({ where: { action: 'own_api_keys.update', success: false } })
  t.ok(refused >= 3, `the refused updates are audited (${refused})`)
})
