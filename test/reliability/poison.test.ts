// Poison input (issue 14, items 6, 7, 8): text the database cannot store (lone
// surrogates, NUL at any depth), nesting 100,000 deep, token counts whose sum passes
// usage.total_tokens (int4), costs past int8. In a usage batch each poisoned event is
// rejected alone and the good events beside it are recorded; everywhere else the call
// is a 400 with the error body. Never a 500.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { signIn } from '../helper.js'
import { assertConsistent, gateway, GATEWAY, LONG_AGO, type Gateway, type Json } from '../modules/gateway/fixtures.js'

const LONE_HIGH = '\ud800'
const LONE_LOW = '\udc00'

/** JSON text nested `depth` levels deep around `inner` (built as text: JSON.stringify itself would overflow the stack). */
const deepJson = (depth: number, inner = '1') => '{"a":'.repeat(depth) + inner + '}'.repeat(depth)

function isRefusal (t: Test, res: LightMyRequestResponse, status = 400) {
  t.equal(res.statusCode, status, `status ${status}: ${res.body.slice(0, 200)}`)
  const body = res.json() as { error: { type: string, message: string }, request_id: string }
  t.match(body, { error: { type: String, message: String }, request_id: String }, 'the error body')
  return body
}

let counter = 0
const nextId = (what: string) => `${what}-${++counter}`

t.test('poisoned usage events are rejected one by one; the good events of the batch are recorded', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const start = (requestId: string, extra: Json = {}) => ({ type: 'start', request_id: requestId, api_key_id: key.id, model: 'gpt-x', created_at: new Date().toISOString(), ...extra })
  const completion = (requestId: string, extra: Json = {}) => ({
    type: 'complete', request_id: requestId, api_key_id: key.id, model: 'gpt-x', status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5, ...extra
  })

  /** Sends [poison, good] and checks: 200, poison rejected naming the reason, good recorded, no row for the poison. */
  async function poisonBesideGood (t: Test, poison: Json, reason: RegExp) {
    const good = completion(nextId('good'))
    const res = await g.usage([poison, good])
    t.equal(res.statusCode, 200, `the batch is answered 200: ${res.body.slice(0, 300)}`)
    const results = res.json().results as Json[]
    t.match(results[0], { type: poison.type, outcome: 'rejected', error: reason }, 'the poisoned event is rejected with its reason')
    t.match(results[1], { request_id: good.request_id, type: 'complete', outcome: 'recorded' }, 'the good event is recorded')
    t.ok(await g.app.prisma.usage.findFirst({ where: { requestId: good.request_id } }), 'the good event has its row')
    if (typeof poison.request_id === 'string' && (poison.request_id as string & { isWellFormed: () => boolean }).isWellFormed()) {
      t.equal(await g.app.prisma.usage.count({ where: { requestId: poison.request_id } }), 0, 'the poisoned event wrote no row')
      t.equal(await g.app.prisma.gatewayEvent.count({ where: { requestId: poison.request_id } }), 0, 'and no receipt: corrected, it may be sent again')
    }
  }

  t.test('a lone surrogate in model', (t) => poisonBesideGood(t, start(nextId('model'), { model: `gpt${LONE_HIGH}` }), /model .*lone surrogate/))
  t.test('a lone surrogate in api_format', (t) => poisonBesideGood(t, start(nextId('format'), { api_format: `openai:${LONE_LOW}chat` }), /api_format .*lone surrogate/))
  t.test('a lone surrogate in a metadata value', (t) => poisonBesideGood(t, start(nextId('meta'), { metadata: { trace: LONE_HIGH } }), /metadata\.trace .*lone surrogate/))
  t.test('a lone surrogate in a metadata key', (t) => poisonBesideGood(t, start(nextId('metakey'), { metadata: { [`k${LONE_LOW}`]: 1 } }), /metadata has a key that .*lone surrogate/))
  t.test('a lone surrogate in request headers', (t) => poisonBesideGood(t, completion(nextId('headers'), { request_headers: { 'x-trace': `a${LONE_HIGH}b` } }), /request_headers.*lone surrogate/))
  t.test('a lone surrogate in a response body', (t) => poisonBesideGood(t, completion(nextId('body'), { response_body: { content: [{ text: LONE_LOW }] } }), /response_body.*lone surrogate/))
  t.test('a lone surrogate in a completion\'s error_message', (t) => poisonBesideGood(t, completion(nextId('error'), { status: 'failed', error_message: `upstream ${LONE_HIGH}` }), /error_message .*lone surrogate/))
  t.test('a lone surrogate in a candidate\'s error_message', (t) => poisonBesideGood(t, completion(nextId('candidate'), {
    candidates: [{ candidate_index: 0, status: 'failed', status_code: 500, error_message: `boom ${LONE_HIGH}` }]
  }), /candidates\.0\.error_message .*lone surrogate/))
  t.test('a NUL nested deeper than 32 levels', (t) => {
    let nested: Json = { text: 'a\u0000b' }
    for (let i = 0; i < 40; i++) nested = { level: nested }
    return poisonBesideGood(t, completion(nextId('nul'), { request_body: nested }), /NUL/)
  })
  t.test('token counts whose sum passes usage.total_tokens (int4)', async (t) => {
    await poisonBesideGood(t, completion(nextId('tokens'), { input_tokens: 2_147_483_647, output_tokens: 1 }), /token counts add up to 2147483648/)
    await poisonBesideGood(t, completion(nextId('tokens'), { input_tokens: 1_500_000_000, output_tokens: 0, cache_read_input_tokens: 1_000_000_000 }), /token counts add up/)
  })
  t.test('the largest sum that fits is recorded', async (t) => {
    const id = nextId('max-tokens')
    t.match(await g.send([completion(id, { input_tokens: 2_147_483_000, output_tokens: 647 })]), [{ outcome: 'recorded' }])
    t.equal((await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: id } })).totalTokens, 2_147_483_647)
  })

  t.test('metadata nested 100,000 deep: the event is rejected, the batch answered', async (t) => {
    const good = completion(nextId('good'))
    const poisonId = nextId('deep')
    const payload = `{"events":[{"type":"start","request_id":"${poisonId}","api_key_id":"${key.id}","model":"gpt-x","metadata":${deepJson(100_000)}},${JSON.stringify(good)}]}`
    const res = await g.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { ...GATEWAY, 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 200, res.body.slice(0, 300))
    t.match(res.json().results, [{ request_id: poisonId, outcome: 'rejected', error: /nested deeper than/ }, { request_id: good.request_id, outcome: 'recorded' }])
    t.equal(await g.app.prisma.usage.count({ where: { requestId: poisonId } }), 0, 'no row for the deep event')
  })

  t.test('a body that is not a batch at all is a 400', async (t) => {
    for (const payload of [deepJson(100_000), '['.repeat(100_000) + ']'.repeat(100_000), '{"events":"x"}', '{"events":[]}']) {
      isRefusal(t, await g.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { ...GATEWAY, 'content-type': 'application/json' }, payload }))
    }
    isRefusal(t, await g.usage([{ type: 'start', request_id: 'x', api_key_id: key.id, model: 'm' }].map((e) => ({ ...e, [`x${LONE_HIGH}`]: 1 }))))
  })

  // a subtest, so it runs after the ones above: the parent's own code does not wait for them
  t.test('the books balance after the poisoned batches', (t) => assertConsistent(t, g.app))
})

t.test('costs past int8: the event is rejected; totals a batch would carry past int8 refuse the batch with a 400', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const provider = await g.provider('dear')
  const dearKey = await g.providerKey(provider.id, { rate_multiplier: 1000 })
  await g.price({ model: 'dear', tiers: [{ up_to: null, input: 1e6, output: 1e6 }] })
  const completion = (requestId: string, extra: Json = {}) => ({
    type: 'complete', request_id: requestId, api_key_id: key.id, model: 'dear', created_at: LONG_AGO, status: 'completed', input_tokens: 1, output_tokens: 0, ...extra
  })

  // 1 token × USD 1e6 per 1M = USD 1; 2e9 tokens × USD 1e6 per 1M = USD 2e9 = 2e18 nano (fits); × 1000 = 2e21 nano (does not)
  const poisonId = nextId('dear')
  const goodId = nextId('good')
  const res = await g.usage([completion(poisonId, { input_tokens: 2_000_000_000, provider_api_key_id: dearKey.id }), completion(goodId)])
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  t.match(res.json().results, [{ request_id: poisonId, outcome: 'rejected', error: /int8/ }, { request_id: goodId, outcome: 'recorded', cost_usd: 1 }])
  t.equal(await g.app.prisma.usage.count({ where: { requestId: poisonId } }), 0)

  // five requests of 2e18 nano each: every cost fits, the key's total_cost (int8) cannot hold their sum
  const rows = await g.app.prisma.usage.count()
  const big = Array.from({ length: 5 }, () => completion(nextId('sum'), { input_tokens: 2_000_000_000 }))
  isRefusal(t, await g.usage(big))
  t.equal(await g.app.prisma.usage.count(), rows, 'nothing of the refused batch was written')
  await assertConsistent(t, g.app, 'after the refused batch: ')
})

t.test('a request_id with a lone surrogate is rejected, never stored as U+FFFD nor answered duplicate', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const start = (requestId: string) => ({ type: 'start', request_id: requestId, api_key_id: key.id, model: 'gpt-x' })

  const first = await g.send([start(`req-${LONE_HIGH}`), start('req-\ufffd')])
  t.match(first, [{ outcome: 'rejected', error: /request_id .*lone surrogate/ }, { request_id: 'req-\ufffd', outcome: 'recorded' }], 'first delivery: rejected, not duplicate; the real U+FFFD id is its own request')
  t.equal(first[0]!.request_id, `req-${LONE_HIGH}`, 'the result names the id as sent')
  const again = await g.send([start(`req-${LONE_HIGH}`), start(`req-${LONE_LOW}`), start('req-\ufffd')])
  t.match(again, [{ outcome: 'rejected' }, { outcome: 'rejected' }, { outcome: 'duplicate' }], 'two ids differing only in the lone surrogate do not collide: both rejected')
  t.same((await g.app.prisma.usage.findMany({ select: { requestId: true } })).map((r) => r.requestId), ['req-\ufffd'], 'only the well-formed id has a row')
  t.same((await g.app.prisma.gatewayEvent.findMany({ select: { requestId: true } })).map((r) => r.requestId), ['req-\ufffd'], 'and a receipt')
})

t.test('lone surrogates, NUL and deep nesting on the admin, user and auth routes are a 400, nothing written', async (t) => {
  const g: Gateway = await gateway(t)
  const admin = g.admin
  const user = await signIn(g.app, 'user')
  const provider = await g.provider('acme')
  const standalone = await g.standaloneKey()
  const call = (method: 'POST' | 'PUT', url: string, payload: Json | string, headers: Record<string, string> = admin.headers) =>
    g.app.inject({ method, url, headers: { ...headers, 'content-type': 'application/json' }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) })
  const before = { users: await g.app.prisma.user.count(), keys: await g.app.prisma.apiKey.count(), providers: await g.app.prisma.provider.findMany() }

  const cases: Array<[string, () => Promise<LightMyRequestResponse>]> = [
    ['login email', () => call('POST', '/api/auth/login', { email: `admin${LONE_HIGH}`, password: 'whatever-password' }, {})],
    ['login password', () => call('POST', '/api/auth/login', { email: 'admin', password: `pass${LONE_LOW}word` }, {})],
    ['user allowed_models', () => call('POST', '/api/admin/users', { username: 'surrogate', password: 'correct-horse-battery', allowed_models: [`m${LONE_HIGH}`] })],
    ['user username', () => call('POST', '/api/admin/users', { username: `sur${LONE_LOW}`, password: 'correct-horse-battery' })],
    ['key allowed_providers', () => call('POST', '/api/admin/api-keys', { name: 'k', allowed_providers: [LONE_HIGH] })],
    ['key tags', () => call('PUT', `/api/admin/api-keys/${standalone.id}`, { tags: [`t${LONE_LOW}`] })],
    ['key allowed_api_formats', () => call('PUT', `/api/admin/api-keys/${standalone.id}`, { allowed_api_formats: [`f${LONE_HIGH}`] })],
    ['provider config value', () => call('PUT', `/api/admin/providers/${provider.id}`, { config: { region: `eu${LONE_HIGH}` } })],
    ['provider config key', () => call('PUT', `/api/admin/providers/${provider.id}`, { config: { [`r${LONE_LOW}`]: 'eu' } })],
    ['provider config NUL 40 deep', () => call('PUT', `/api/admin/providers/${provider.id}`, `{"config":${deepJson(40, '"a\\u0000b"')}}`)],
    ['provider config 100,000 deep', () => call('PUT', `/api/admin/providers/${provider.id}`, `{"config":${deepJson(100_000)}}`)],
    ['own key name', () => call('POST', '/api/users/me/api-keys', { name: `mine${LONE_HIGH}` }, user.headers)],
    // a URL cannot carry a lone surrogate (percent-decoding gives U+FFFD): a NUL stands for it
    ['query string NUL', () => g.app.inject({ method: 'GET', url: '/api/admin/audit-logs?action=a%00b', headers: admin.headers })]
  ]
  for (const [what, send] of cases) {
    const res = await send()
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${what} → ${res.statusCode} ${res.body.slice(0, 160)}`)
    isRefusal(t, res, res.statusCode)
  }
  t.equal(await g.app.prisma.user.count(), before.users, 'no user created')
  t.equal(await g.app.prisma.apiKey.count(), before.keys, 'no key created')
  t.same(await g.app.prisma.provider.findMany(), before.providers, 'no provider changed')
  const key = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: standalone.id } })
  t.same([key.tags, key.allowedApiFormats], [null, null], 'the key keeps its lists')
})
