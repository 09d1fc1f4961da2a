// POST /api/gateway/keys/verify: one test per refusal (status, error type, and
// Retry-After for 429s), the order the checks run in, and the allowed answer.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { hashApiKey } from '../../../src/lib/keyring.js'
import { encrypt } from '../../../src/lib/crypto.js'
import { gateway, GATEWAY, type Gateway, type Json } from './fixtures.js'

const PAST = '2020-01-01T00:00:00Z'

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string) {
  t.equal(res.statusCode, status, `${status} ${type}`)
  t.match(res.json(), { error: { type, message: String }, request_id: String }, `error.type ${type}`)
  if (status === 429) {
    const retry = Number(res.headers['retry-after'])
    t.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `retry-after ${String(res.headers['retry-after'])} is 1..60 s`)
  } else {
    t.equal(res.headers['retry-after'], undefined, 'no retry-after')
  }
}

/** a price for `m` at USD 3 / 15 per 1M tokens: 1000 input tokens cost USD 0.003 */
async function priced (g: Gateway) {
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
}

/** a finished request on a key costing USD 0.003 (1000 input tokens × 3 USD / 1M) */
async function spend (g: Gateway, key: Json, requestId: string, createdAt?: string) {
  const [result] = await g.send([{
    type: 'complete', request_id: requestId, api_key_id: key.id, model: 'm', status: 'completed', status_code: 200,
    input_tokens: 1000, output_tokens: 0, ...(createdAt !== undefined && { created_at: createdAt })
  }])
  if (result?.outcome !== 'recorded' || result.cost_usd !== 0.003) throw new Error(`spend: ${JSON.stringify(result)}`)
}

const start = (key: Json, requestId: string) => ({ type: 'start', request_id: requestId, api_key_id: key.id, model: 'm', api_format: 'openai:chat' })

t.test('the allowed answer', async (t) => {
  const g = await gateway(t)
  const anthropic = await g.provider('anthropic')
  const key = await g.standaloneKey({
    initial_balance_usd: 2.5, rate_limit: 100, concurrent_limit: 5, daily_cost_limit_usd: 10, total_cost_limit_usd: 20,
    allowed_models: ['m'], allowed_providers: ['anthropic'], allowed_api_formats: ['claude:messages']
  })
  const res = await g.verify({ key: key.key, model: 'm', provider: 'anthropic', api_format: 'claude:messages' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    allowed: true,
    key_id: key.id,
    user_id: g.admin.id,
    limits: {
      rate_limit: 100, token_limit: null, rate_window_seconds: 60, concurrent_limit: 5, daily_cost_limit_usd: 10, total_cost_limit_usd: 20,
      allowed_models: ['m'], allowed_providers: [anthropic.id], allowed_api_formats: ['claude:messages']
    },
    remaining_balance_usd: 2.5
  })

  const user = await g.user()
  const plain = await g.userKey(user.id)
  const open = await g.verify({ key: plain.key })
  t.equal(open.statusCode, 200)
  t.same(open.json(), {
    allowed: true,
    key_id: plain.id,
    user_id: user.id,
    limits: { rate_limit: null, token_limit: null, rate_window_seconds: 60, concurrent_limit: null, daily_cost_limit_usd: null, total_cost_limit_usd: null, allowed_models: null, allowed_providers: null, allowed_api_formats: null },
    remaining_balance_usd: null
  }, 'a key without limits: everything null, balance unlimited')

  // the remaining balance goes down as the key is used
  await priced(g)
  await spend(g, key, 'r-allowed-1')
  t.equal((await g.verify({ key: key.key })).json().remaining_balance_usd, 2.497, '2.5 − 0.003')
})

t.test('gateway authentication: only GATEWAY_TOKEN', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const cases: Array<[string, Record<string, string>]> = [
    ['no credentials', {}],
    ['a wrong token', { authorization: 'Bearer not-the-gateway-token-0123' }],
    ['an admin session token', g.admin.headers],
    ['the API key itself', { authorization: `Bearer ${key.key as string}` }],
    ['the gateway token without Bearer', { authorization: GATEWAY.authorization.slice(7) }]
  ]
  for (const [name, headers] of cases) {
    for (const url of ['/api/gateway/keys/verify', '/api/gateway/usage']) {
      const payload = url.endsWith('verify') ? { key: key.key } : { events: [{ type: 'start', request_id: 'x', api_key_id: key.id, model: 'm' }] }
      const res = await g.app.inject({ method: 'POST', url, headers, payload })
      t.equal(res.statusCode, 401, `${name}: ${url} → 401`)
      t.equal(res.json().error.type, 'unauthorized')
    }
  }
  t.equal(await g.app.prisma.usage.count(), 0, 'nothing recorded')
  // several comma-separated tokens are all accepted
  const multi = await gateway(t, { GATEWAY_TOKEN: 'first-gateway-token-0123456789,second-gateway-token-0123456789' })
  const multiKey = await multi.standaloneKey()
  for (const token of ['first-gateway-token-0123456789', 'second-gateway-token-0123456789']) {
    const res = await multi.app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: { authorization: `Bearer ${token}` }, payload: { key: multiKey.key } })
    t.equal(res.statusCode, 200, `token ${token.split('-')[0]!} accepted`)
  }
})

t.test('key_invalid: unknown, malformed, and no hash match', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const real = key.key as string
  const flip = (c: string) => c === 'a' ? 'b' : 'a'
  const cases: Array<[string, string]> = [
    ['an unknown well-formed key', 'sk-' + 'A'.repeat(48)],
    ['the real key with its last character changed (no hash match)', real.slice(0, -1) + flip(real.slice(-1))],
    ['the real key with its case swapped (no hash match)', 'sk-' + [...real.slice(3)].map((c) => c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()).join('')],
    ['malformed: not an sk- key', 'hello'],
    ['malformed: one character short', real.slice(0, -1)],
    ['malformed: one character long', real + 'x'],
    ['malformed: the real key with a trailing space', real + ' '],
    ['malformed: wrong prefix', 'pk-' + real.slice(3)],
    ['malformed: a non-base62 character', real.slice(0, -1) + '_']
  ]
  for (const [name, candidate] of cases) {
    t.test(name, async (t) => refused(t, await g.verify({ key: candidate, model: 'm' }), 401, 'key_invalid'))
  }
  // a row whose hash is that of a malformed string: the hash matches, the format does not
  const malformed = 'sk-too-short'
  await g.app.prisma.apiKey.create({
    data: { userId: g.admin.id, name: 'odd', keyHash: hashApiKey(g.app.keyring, malformed), keyPrefix: 'sk-too…hort', keyEncrypted: encrypt(g.app.keyring.apiKeyCipher, malformed) }
  })
  refused(t, await g.verify({ key: malformed }), 401, 'key_invalid')
  t.equal((await g.verify({ key: real })).statusCode, 200, 'the real key still works')
  const empty = await g.verify({ key: '' })
  t.equal(empty.statusCode, 400, 'an empty key is invalid input')
})

t.test('key_disabled', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}`)
  refused(t, await g.verify({ key: key.key }), 401, 'key_disabled')
  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}`)
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'enabled again')
  await g.adminCall('DELETE', `/api/admin/api-keys/${key.id as string}?hard=false`)
  refused(t, await g.verify({ key: key.key }), 401, 'key_disabled')
  // a plain DELETE deletes (Aether's behaviour): the key is then unknown
  await g.adminCall('DELETE', `/api/admin/api-keys/${key.id as string}`)
  refused(t, await g.verify({ key: key.key }), 401, 'key_invalid')
})

t.test('key_expired', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ expires_at: PAST })
  refused(t, await g.verify({ key: key.key }), 401, 'key_expired')
  const soon = await g.standaloneKey({ expires_at: new Date(Date.now() + 60_000).toISOString() })
  t.equal((await g.verify({ key: soon.key })).statusCode, 200, 'not expired yet')
})

t.test('user_disabled: the owner deactivated through the admin API', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  t.equal((await g.verify({ key: key.key })).statusCode, 200)
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { is_active: false })
  refused(t, await g.verify({ key: key.key }), 401, 'user_disabled')
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { is_active: true })
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'active again')
  // a deleted user: their keys are disabled too, so the key check answers first
  await g.adminCall('DELETE', `/api/admin/users/${user.id as string}`)
  refused(t, await g.verify({ key: key.key }), 401, 'key_disabled')
})

t.test('model / provider / api_format not allowed: key lists', async (t) => {
  const g = await gateway(t)
  await g.provider('anthropic')
  const key = await g.standaloneKey({ allowed_models: ['m', 'n'], allowed_providers: ['anthropic'], allowed_api_formats: ['claude:messages'] })
  refused(t, await g.verify({ key: key.key, model: 'gpt-4o' }), 403, 'model_not_allowed')
  refused(t, await g.verify({ key: key.key, model: 'm', provider: 'openai' }), 403, 'provider_not_allowed')
  refused(t, await g.verify({ key: key.key, model: 'm', provider: 'anthropic', api_format: 'openai:chat' }), 403, 'api_format_not_allowed')
  t.equal((await g.verify({ key: key.key, model: 'n', provider: 'anthropic', api_format: 'claude:messages' })).statusCode, 200, 'all allowed')
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'nothing asked → nothing refused')
  refused(t, await g.verify({ key: key.key, model: 'M' }), 403, 'model_not_allowed')
  // model is checked before provider, provider before format
  refused(t, await g.verify({ key: key.key, model: 'x', provider: 'x', api_format: 'x' }), 403, 'model_not_allowed')
  refused(t, await g.verify({ key: key.key, model: 'm', provider: 'x', api_format: 'x' }), 403, 'provider_not_allowed')
  // an empty list set later means "all"
  await g.adminCall('PUT', `/api/admin/api-keys/${key.id as string}`, { allowed_models: [] })
  t.equal((await g.verify({ key: key.key, model: 'gpt-4o' })).statusCode, 200, '[] allows every model')
})

t.test('model / provider / api_format not allowed: the owner\'s user-level lists', async (t) => {
  const g = await gateway(t)
  await g.provider('anthropic')
  const user = await g.user({ allowed_models: ['m'], allowed_providers: ['anthropic'], allowed_api_formats: ['claude:messages'] })
  const key = await g.userKey(user.id)
  refused(t, await g.verify({ key: key.key, model: 'gpt-4o' }), 403, 'model_not_allowed')
  refused(t, await g.verify({ key: key.key, provider: 'openai' }), 403, 'provider_not_allowed')
  refused(t, await g.verify({ key: key.key, api_format: 'openai:chat' }), 403, 'api_format_not_allowed')
  t.equal((await g.verify({ key: key.key, model: 'm', provider: 'anthropic', api_format: 'claude:messages' })).statusCode, 200)
  // the key's own list cannot widen the user's
  const wide = await g.userKey(user.id, { allowed_models: ['m', 'gpt-4o'] })
  refused(t, await g.verify({ key: wide.key, model: 'gpt-4o' }), 403, 'model_not_allowed')
  // the user's lists cleared (null) or emptied ([]) allow everything again
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { allowed_models: null, allowed_providers: [], allowed_api_formats: [] })
  t.equal((await g.verify({ key: key.key, model: 'gpt-4o', provider: 'openai', api_format: 'openai:chat' })).statusCode, 200, 'user lists cleared')
})

t.test('provider lists hold names or, as Aether\'s forms write them, provider ids: verify takes either for the gateway\'s provider name', async (t) => {
  const g = await gateway(t)
  const anthropic = await g.provider('anthropic')
  const openai = await g.provider('openai')
  const gone = await g.provider('gone')
  const user = await g.user({ allowed_providers: [anthropic.id, 'openai'] })
  const key = await g.userKey(user.id)
  t.equal((await g.verify({ key: key.key, provider: 'anthropic' })).statusCode, 200, 'the user\'s list names it by id')
  t.equal((await g.verify({ key: key.key, provider: 'openai' })).statusCode, 200, 'and by name beside it')
  refused(t, await g.verify({ key: key.key, provider: 'gone' }), 403, 'provider_not_allowed')

  const narrow = await g.userKey(user.id, { allowed_providers: [openai.id.toUpperCase()] })
  t.equal((await g.verify({ key: narrow.key, provider: 'openai' })).statusCode, 200, 'the key\'s own list by id (any case)')
  refused(t, await g.verify({ key: narrow.key, provider: 'anthropic' }), 403, 'provider_not_allowed')
  const answer = (await g.verify({ key: narrow.key, provider: 'openai' })).json()
  t.same(answer.limits.allowed_providers, [openai.id], 'the list is answered as stored: the id, written in lower case')

  const orphan = await g.standaloneKey({ allowed_providers: [gone.id] })
  t.equal((await g.verify({ key: orphan.key, provider: 'gone' })).statusCode, 200)
  await g.adminCall('DELETE', `/api/admin/providers/${gone.id as string}`)
  refused(t, await g.verify({ key: orphan.key, provider: 'gone' }), 403, 'provider_not_allowed')
})

t.test('rate_limited: the key\'s requests in the last 60 s', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ rate_limit: 2 })
  const other = await g.standaloneKey({ rate_limit: 2 })
  t.equal((await g.verify({ key: key.key })).statusCode, 200)
  // a request from 2 minutes ago is outside the window
  await g.send([{ ...start(key, 'old'), created_at: new Date(Date.now() - 120_000).toISOString() }])
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'an old request does not count')
  await g.send([start(key, 'r1')])
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'one in the window')
  await g.send([start(key, 'r2')])
  const res = await g.verify({ key: key.key })
  refused(t, res, 429, 'rate_limited')
  t.ok(Number(res.headers['retry-after']) >= 55, 'the window resets in about a minute')
  t.equal((await g.verify({ key: other.key })).statusCode, 200, 'another key is not affected')
  // finished requests count too: the window is about requests made, not in flight
  await g.send([{ type: 'complete', request_id: 'r1', status: 'completed', input_tokens: 1, output_tokens: 1 }, { type: 'complete', request_id: 'r2', status: 'completed', input_tokens: 1, output_tokens: 1 }])
  refused(t, await g.verify({ key: key.key }), 429, 'rate_limited')
})

t.test('concurrency_limited: pending and streaming requests', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ concurrent_limit: 1 })
  t.equal((await g.verify({ key: key.key })).statusCode, 200)
  await g.send([start(key, 'c1')])
  const res = await g.verify({ key: key.key })
  refused(t, res, 429, 'concurrency_limited')
  await g.send([{ type: 'stream', request_id: 'c1', first_byte_time_ms: 10 }])
  refused(t, await g.verify({ key: key.key }), 429, 'concurrency_limited')
  await g.send([{ type: 'complete', request_id: 'c1', status: 'completed', input_tokens: 1, output_tokens: 1 }])
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'finished: free again')
  // a pending request older than PENDING_TIMEOUT_MINUTES no longer counts
  await g.send([{ ...start(key, 'stale'), created_at: new Date(Date.now() - 11 * 60_000).toISOString() }])
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'a stale pending request does not hold the slot')
})

t.test('balance_exhausted: a standalone key\'s balance, and a user\'s quota', async (t) => {
  const g = await gateway(t)
  await priced(g)
  const key = await g.standaloneKey({ initial_balance_usd: 0.001 })
  t.equal((await g.verify({ key: key.key })).json().remaining_balance_usd, 0.001)
  await spend(g, key, 'b1') // 0.003 > 0.001
  refused(t, await g.verify({ key: key.key }), 402, 'balance_exhausted')
  const row = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(row.balanceUsed, 3_000_000n, 'balance_used = the completion\'s cost')
  // a top-up brings it back
  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}/balance`, { amount_usd: 1 })
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'topped up')

  // exactly used up is used up
  const exact = await g.standaloneKey({ initial_balance_usd: 0.003 })
  await spend(g, exact, 'b2')
  refused(t, await g.verify({ key: exact.key }), 402, 'balance_exhausted')

  const user = await g.user({ quota_usd: 0.005 })
  const userKey = await g.userKey(user.id)
  await spend(g, userKey, 'q1')
  t.equal((await g.verify({ key: userKey.key })).statusCode, 200, '0.003 of 0.005 used')
  const second = await g.userKey(user.id)
  await spend(g, second, 'q2')
  t.equal((await g.app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).used, 6_000_000n, 'the user is charged by both keys')
  refused(t, await g.verify({ key: userKey.key }), 402, 'balance_exhausted')
  refused(t, await g.verify({ key: second.key }), 402, 'balance_exhausted')
})

t.test('daily_cost_limit: today\'s cost only', async (t) => {
  const g = await gateway(t)
  await priced(g)
  const key = await g.standaloneKey({ daily_cost_limit_usd: 0.005 })
  // two days ago does not count against today
  await spend(g, key, 'd0', new Date(Date.now() - 2 * 86_400_000).toISOString())
  await spend(g, key, 'd00', new Date(Date.now() - 2 * 86_400_000).toISOString())
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'yesterday\'s spend is not today\'s')
  await spend(g, key, 'd1')
  t.equal((await g.verify({ key: key.key })).statusCode, 200, '0.003 of 0.005 today')
  await spend(g, key, 'd2')
  refused(t, await g.verify({ key: key.key }), 402, 'daily_cost_limit')
})

t.test('daily_cost_limit: days cut at midnight in APP_TIMEZONE, a half-hour zone included', async (t) => {
  const g = await gateway(t, { APP_TIMEZONE: 'Asia/Kolkata' })
  await priced(g)
  // Kolkata is UTC+05:30 all year: its midnight falls at hh:30 UTC, inside an hour bucket
  const offset = 5.5 * 3_600_000
  const midnight = Math.floor((Date.now() + offset) / 86_400_000) * 86_400_000 - offset
  const key = await g.standaloneKey({ daily_cost_limit_usd: 0.005 })
  await spend(g, key, 'k-yesterday', new Date(midnight - 10 * 60_000).toISOString()) // 23:50 yesterday, same UTC hour as today's first half hour
  await spend(g, key, 'k-today-1', new Date(midnight + 10 * 60_000).toISOString()) // 00:10 today
  t.equal((await g.verify({ key: key.key })).statusCode, 200, '0.003 today: the 23:50 request belongs to yesterday')
  await spend(g, key, 'k-today-2', new Date(midnight + 45 * 60_000).toISOString()) // 00:45 today, the next UTC hour
  refused(t, await g.verify({ key: key.key }), 402, 'daily_cost_limit')
})

t.test('total_cost_limit', async (t) => {
  const g = await gateway(t)
  await priced(g)
  const key = await g.standaloneKey({ total_cost_limit_usd: 0.005 })
  await spend(g, key, 't1', new Date(Date.now() - 3 * 86_400_000).toISOString())
  t.equal((await g.verify({ key: key.key })).statusCode, 200)
  await spend(g, key, 't2')
  refused(t, await g.verify({ key: key.key }), 402, 'total_cost_limit')
})

t.test('order: expired before rate limit, disabled before expired, 403 before 402, 401 before 403', async (t) => {
  const g = await gateway(t)
  await priced(g)

  const limited = await g.standaloneKey({ rate_limit: 1 })
  await g.send([start(limited, 'o1')])
  refused(t, await g.verify({ key: limited.key }), 429, 'rate_limited')
  await g.adminCall('PUT', `/api/admin/api-keys/${limited.id as string}`, { expires_at: PAST })
  refused(t, await g.verify({ key: limited.key }), 401, 'key_expired')

  const both = await g.standaloneKey({ expires_at: PAST })
  await g.adminCall('PUT', `/api/admin/api-keys/${both.id as string}`, { is_active: false })
  refused(t, await g.verify({ key: both.key }), 401, 'key_disabled')

  const poor = await g.standaloneKey({ initial_balance_usd: 0.001, allowed_models: ['m'] })
  await spend(g, poor, 'o2')
  refused(t, await g.verify({ key: poor.key, model: 'm' }), 402, 'balance_exhausted')
  refused(t, await g.verify({ key: poor.key, model: 'other' }), 403, 'model_not_allowed')

  // a disabled owner with a key outside its allowed models: 401 first
  const user = await g.user({ allowed_models: ['m'] })
  const key = await g.userKey(user.id)
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { is_active: false })
  refused(t, await g.verify({ key: key.key, model: 'other' }), 401, 'user_disabled')

  // rate limit (429) before concurrency (429) before balance (402)
  const busy = await g.standaloneKey({ rate_limit: 1, concurrent_limit: 1, initial_balance_usd: 0.001 })
  await spend(g, busy, 'o3', new Date(Date.now() - 120_000).toISOString())
  await g.send([start(busy, 'o4')])
  refused(t, await g.verify({ key: busy.key }), 429, 'rate_limited')
  const busy2 = await g.standaloneKey({ concurrent_limit: 1, initial_balance_usd: 0.001 })
  await spend(g, busy2, 'o5')
  await g.send([start(busy2, 'o6')])
  refused(t, await g.verify({ key: busy2.key }), 429, 'concurrency_limited')
  // balance (402) before daily limit before total limit
  const spent = await g.standaloneKey({ initial_balance_usd: 0.001, daily_cost_limit_usd: 0.001, total_cost_limit_usd: 0.001 })
  await spend(g, spent, 'o7')
  refused(t, await g.verify({ key: spent.key }), 402, 'balance_exhausted')
  const spent2 = await g.standaloneKey({ daily_cost_limit_usd: 0.001, total_cost_limit_usd: 0.001 })
  await spend(g, spent2, 'o8')
  refused(t, await g.verify({ key: spent2.key }), 402, 'daily_cost_limit')
})

t.test('verify refuses malformed bodies with 400', async (t) => {
  const g = await gateway(t)
  for (const payload of [{}, { key: 5 }, { key: 'sk-x', extra: 1 }, { key: 'sk-x', model: '' }]) {
    const res = await g.verify(payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().error.type, 'validation_error')
  }
})
