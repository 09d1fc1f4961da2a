// 1,000 malformed requests spread over app.routeTable: whatever the input, the app
// answers below 500, and every 4xx carries the error body with a request_id. The
// generator is seeded (mulberry32) with a fixed default; the seed is in the test name and
// TEST_SEED=<n> runs (and replays) another. Bodies are invalid by construction and ids are random, so
// nothing real is created, changed or deleted.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import type { KeymeterApp, RouteInfo } from '../../src/app.js'
import { buildTestApp, signIn } from '../helper.js'
import { mulberry32, testSeed } from '../prng.js'

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 1000)
// a fixed default, so every run tries the same requests and a failure is seen again on the next run
const seed = testSeed(t)

type Rng = () => number
const int = (rng: Rng, n: number) => Math.floor(rng() * n)
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)] as T
const hex = (rng: Rng, n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(rng, 16)]).join('')
const uuid = (rng: Rng) => `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-${pick(rng, ['8', '9', 'a', 'b'])}${hex(rng, 3)}-${hex(rng, 12)}`
const junkText = (rng: Rng, n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + int(rng, 95))).join('')

interface Fuzzed {
  method: string
  url: string
  headers: Record<string, string>
  payload?: string
  kinds: string[]
}

interface JsonSchema {
  type?: string | string[]
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  const?: unknown
  enum?: unknown[]
  properties?: Record<string, JsonSchema>
  additionalProperties?: boolean | JsonSchema
}

const jsonType = (value: unknown) => value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value
/** The JSON types a schema accepts, or null when it does not say. */
function acceptedTypes (schema: JsonSchema | undefined): Set<string> | null {
  if (schema === undefined) return null
  if (schema.type !== undefined) return new Set([schema.type].flat())
  if (schema.const !== undefined) return new Set([jsonType(schema.const)])
  if (schema.enum !== undefined) return new Set(schema.enum.map(jsonType))
  const branches = schema.anyOf ?? schema.oneOf
  if (branches === undefined) return null
  const all = new Set<string>()
  for (const branch of branches) {
    const types = acceptedTypes(branch)
    if (types === null) return null
    for (const type of types) all.add(type)
  }
  return all
}
/** A value of a JSON type the schema does not accept, or undefined when none can be told. */
function wrongValue (rng: Rng, schema: JsonSchema | undefined): unknown {
  const accepted = acceptedTypes(schema)
  if (accepted === null) return undefined
  const candidates: unknown[] = [['nested', { junk: [null, { deeper: [1, 'x'] }] }], { nested: { junk: [1, 2, 3] } }, 'junk', 12.5, 7, true, null, 'x'.repeat(5000)]
  const wrong = candidates.filter((value) => {
    const type = jsonType(value)
    return !(accepted.has(type) || (type === 'integer' && accepted.has('number')))
  })
  return wrong.length === 0 ? undefined : pick(rng, wrong)
}

// ----- the pieces a malformed request is made of -----

const MALFORMED_JSON = [
  '{', '{"a":', '[1,2', 'nul', 'tru', '{"a":1,}', "{'a':1}", '{"a" 1}', '{"a":undefined}', '{"a":NaN}', '01',
  '{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}',
  '\u0000', '{"a":1}{"b":2}', '"unterminated', '{"a":"\\x41"}', '\uFEFF{}', ']', '{}}'
]
const WRONG_BODIES: unknown[] = [
  [], [{}], [1, 2, 3], 0, -1, 1e308, 'a string', '', true, false, null,
  { 0: 1 }, [[[[['deep']]]]], { a: { b: { c: { d: [null, { e: 'junk' }] } } } }
]
const CONTENT_TYPES = [
  'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=----fuzz', 'application/xml',
  'application/octet-stream', 'application/jsonp', 'application/vnd.api+json', 'text/json', 'image/png', 'json'
]
const BAD_QUERY_VALUES: string[] = [
  '-1', '0', '-0', '501', '100000', '1e9', '99999999999999999999999', '1e300', 'abc', '', '1.5',
  'NaN', 'Infinity', '1e400', '0x10', 'true', 'maybe', 'null', '[]', '{}', '%zz', '%', '%E0%A4%A', encodeURIComponent('🦄ü✓'),
  'x'.repeat(2000), '%00', 'a%00b', encodeURIComponent("' OR 1=1 --"), 'not-a-uuid',
  '2024-13-01T00:00:00Z', '2024-02-30T00:00:00Z', '2024-01-01T25:00:00Z', '2024-01-01T00:00:00', '2024-01-01',
  'yesterday', '1700000000', '2024-01-01T00:00:00%2B99:99', '2024-01-01T00:00:00z',
  '2024-06-30T23:59:60Z', '0000-01-01T00:00:00Z',
  'urn:uuid:00000000-0000-4000-8000-000000000000'
]
const BAD_PARAMS: string[] = [
  'not-a-uuid', '-1', '0', 'null', 'undefined', '..', '%2e%2e', '%2F..%2Fetc%2Fpasswd', '%00', 'a%00b',
  encodeURIComponent('🦄ü✓'), encodeURIComponent('<script>'), '00000000000000000000000000000000', '{00000000-0000-4000-8000-000000000000}',
  '00000000-0000-4000-8000-00000000000g', 'x'.repeat(100), 'x'.repeat(101), 'x'.repeat(256), 'x'.repeat(257), '9'.repeat(1000),
  '%zz', '%E0%A4%A', '%',
  'urn:uuid:00000000-0000-4000-8000-000000000000'
]

const isMutating = (method: string) => method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS'
const schemaOf = (route: RouteInfo, part: 'body' | 'params' | 'querystring') => (route.schema as Record<string, JsonSchema | undefined> | undefined)?.[part]

/** One malformed request for the route. */
function fuzzRequest (rng: Rng, route: RouteInfo, adminHeaders: Record<string, string>): Fuzzed {
  const kinds: string[] = []
  const headers: Record<string, string> = {}
  const bodySchema = schemaOf(route, 'body')
  const paramsSchema = schemaOf(route, 'params')
  const querySchema = schemaOf(route, 'querystring')

  // path params: a random (so nowhere existing) uuid, or junk
  const url = route.url.replace(/:(\w+)/g, () => {
    if (rng() < 0.35) return uuid(rng)
    kinds.push('bad-param')
    return pick(rng, BAD_PARAMS)
  })

  // query: junk values for known names, unknown names, repeats
  const query: string[] = []
  const names = Object.keys(querySchema?.properties ?? {})
  if (rng() < (names.length > 0 ? 0.7 : 0.25)) {
    kinds.push('bad-query')
    const count = 1 + int(rng, 3)
    for (let i = 0; i < count; i++) {
      const name = names.length > 0 && rng() < 0.8 ? pick(rng, names) : pick(rng, ['unknown', 'limit', 'offset', 'skip', '__proto__', 'x%00', '🦄'])
      query.push(`${encodeURIComponent(name)}=${pick(rng, BAD_QUERY_VALUES)}`)
    }
    if (rng() < 0.15) query.push(query[0] ?? 'limit=1') // a repeated parameter
  }

  // body: invalid by construction whenever the route reads one
  let payload: string | undefined
  const wantsBody = bodySchema !== undefined || rng() < 0.3
  if (wantsBody) {
    const choice = int(rng, 6)
    if (choice === 0) {
      kinds.push('malformed-json')
      payload = rng() < 0.3 ? junkText(rng, 1 + int(rng, 200)) : pick(rng, MALFORMED_JSON)
      headers['content-type'] = 'application/json'
    } else if (choice === 1) {
      kinds.push('wrong-content-type')
      payload = pick(rng, ['{}', 'a=1&b=2', '<x/>', junkText(rng, 50), '{"name":"fuzz"}'])
      headers['content-type'] = pick(rng, CONTENT_TYPES)
    } else if (choice === 2) {
      kinds.push('wrong-body-type')
      payload = JSON.stringify(pick(rng, WRONG_BODIES))
      headers['content-type'] = 'application/json'
    } else if (choice === 3) {
      kinds.push('huge-string')
      const size = rng() < 0.05 ? 3 * 1024 * 1024 : 1000 + int(rng, 300_000) // now and then beyond the 2 MiB limit
      const huge = pick(rng, ['x', 'é', '🦄', '\\u0000']).repeat(Math.ceil(size / 2))
      const unknownAllowed = bodySchema === undefined || bodySchema.additionalProperties === false
      payload = rng() < 0.5 || !unknownAllowed ? `"${huge}"` : `{"__fuzz_huge":"${huge}"}`
      headers['content-type'] = 'application/json'
    } else {
      // unknown fields or wrongly typed known fields, when the schema lets us be sure the body is invalid
      const props = Object.entries(bodySchema?.properties ?? {})
      const typed = props.map(([name, schema]) => [name, wrongValue(rng, schema)] as const).filter(([, value]) => value !== undefined)
      if (choice === 4 && bodySchema?.additionalProperties === false) {
        kinds.push('unknown-field')
        const extra = pick(rng, ['__fuzz', 'isAdmin', 'role_override', '$where', '', ' ', '🦄', 'a'.repeat(300)])
        payload = JSON.stringify({ [extra]: pick(rng, WRONG_BODIES) })
      } else if (typed.length > 0) {
        kinds.push('wrong-field-type')
        const [name, value] = pick(rng, typed)
        payload = JSON.stringify({ [name]: value })
      } else {
        kinds.push('wrong-body-type')
        payload = JSON.stringify(pick(rng, WRONG_BODIES))
      }
      headers['content-type'] = 'application/json'
    }
  }

  // credentials: the admin for half; never for a mutation that takes no input (e.g. sign-out)
  const inputless = bodySchema === undefined && paramsSchema === undefined && querySchema === undefined
  if (rng() < 0.5 && !(isMutating(route.method) && inputless)) {
    Object.assign(headers, adminHeaders)
    kinds.push('admin')
  } else if (rng() < 0.2) {
    headers.authorization = pick(rng, ['Bearer ', 'Bearer kms_fuzz', `Bearer kmm_${hex(rng, 40)}`, 'Basic Zm9vOmJhcg==', 'Bearer a b c'])
    kinds.push('junk-auth')
  }

  return { method: route.method, url: query.length > 0 ? `${url}?${query.join('&')}` : url, headers, ...(payload !== undefined && { payload }), kinds }
}

interface Failure { n: number, request: string, status: number, body: string, problem: string }

/** Why this answer is wrong, or null when it is fine. */
function problemWith (res: LightMyRequestResponse): string | null {
  if (res.statusCode >= 500) return `status ${res.statusCode}`
  if (res.statusCode < 400) return null
  let body: { error?: { type?: unknown, message?: unknown }, request_id?: unknown }
  try {
    body = res.json()
  } catch {
    return 'a 4xx body that is not JSON'
  }
  if (typeof body.error?.type !== 'string' || body.error.type === '') return '4xx without error.type'
  if (typeof body.error.message !== 'string') return '4xx without error.message'
  if (typeof body.request_id !== 'string' || body.request_id === '') return '4xx without request_id'
  if (body.request_id !== res.headers['x-request-id']) return '4xx whose request_id is not the x-request-id header'
  return null
}

async function snapshot (app: KeymeterApp) {
  const [users, keys, tokens, lastUser, lastKey] = await Promise.all([
    app.prisma.user.count(),
    app.prisma.apiKey.count(),
    app.prisma.managementToken.count(),
    app.prisma.user.aggregate({ _max: { updatedAt: true } }),
    app.prisma.apiKey.aggregate({ _max: { updatedAt: true } })
  ])
  return { users, keys, tokens, lastUserUpdate: lastUser._max.updatedAt?.toISOString(), lastKeyUpdate: lastKey._max.updatedAt?.toISOString() }
}

t.test(`${REQUESTS} malformed requests across every route answer < 500 with the error body (seed ${seed}; replay with TEST_SEED=${seed})`, async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const routes = app.routeTable
  t.ok(routes.length > 5, `${routes.length} routes to fuzz`)
  const before = await snapshot(app)
  const rng = mulberry32(seed)
  const failures: Failure[] = []
  const statuses = new Map<number, number>()
  const kindsSeen = new Map<string, number>()
  for (let n = 0; n < REQUESTS; n++) {
    const route = routes[n % routes.length]! // round-robin: every route gets its share
    const fuzzed = fuzzRequest(rng, route, admin.headers)
    for (const kind of fuzzed.kinds) kindsSeen.set(kind, (kindsSeen.get(kind) ?? 0) + 1)
    const res = await app.inject({ method: fuzzed.method as 'GET', url: fuzzed.url, headers: fuzzed.headers, ...(fuzzed.payload !== undefined && { payload: fuzzed.payload }) })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    const problem = problemWith(res)
    if (problem !== null) {
      failures.push({
        n,
        request: `${fuzzed.method} ${fuzzed.url.slice(0, 160)} [${fuzzed.kinds.join(', ')}]${fuzzed.payload === undefined ? '' : ` body ${JSON.stringify(fuzzed.payload.slice(0, 80))}`}`,
        status: res.statusCode,
        body: res.body.slice(0, 200),
        problem
      })
    }
  }
  t.comment(`statuses: ${[...statuses].sort(([a], [b]) => a - b).map(([s, c]) => `${s}×${c}`).join(' ')}`)
  t.comment(`kinds: ${[...kindsSeen].map(([k, c]) => `${k}×${c}`).join(' ')}`)

  t.same(failures, [], 'no 5xx, and every 4xx has {error: {type, message}, request_id} matching x-request-id')

  t.ok(kindsSeen.get('admin')! > REQUESTS / 3, 'a good share of the requests carried the admin token')
  t.ok(statuses.get(400)! > 0 && (statuses.get(401) ?? 0) > 0, 'both validation refusals and credential refusals were seen')
  t.same(await snapshot(app), before, 'nothing was created, changed or deleted')
})

// ----- explicit cases on POST /api/admin/users as an admin -----

function isErrorBody (t: Test, res: LightMyRequestResponse, status: number, type: string) {
  t.equal(res.statusCode, status, `status ${status}`)
  const body = res.json() as { error: { type: string, message: string, field?: string }, request_id: string }
  t.match(body, { error: { type, message: String }, request_id: String }, `error body of type ${type}`)
  t.equal(body.request_id, res.headers['x-request-id'], 'request_id is the x-request-id header')
  t.equal((body as { detail?: string }).detail, body.error.message, 'detail repeats the message (Aether\'s dashboard reads it)')
  return body
}

t.test('POST /api/admin/users as an admin, with bad input', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const users = await app.prisma.user.count()
  const post = (payload: string, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/api/admin/users', headers: { ...admin.headers, 'content-type': contentType }, payload })

  t.test('malformed JSON → 400 with the error body', async (t) => {
    for (const payload of ['{"username": "bob", "password": ', '{bad json}', "{'username':'bob'}"]) {
      const body = isErrorBody(t, await post(payload), 400, 'invalid_request')
      t.match(body.error.message, /JSON/, 'the message says the JSON is bad')
    }
  })

  t.test('a wrongly typed field → 400 validation_error with error.field body.username', async (t) => {
    const body = isErrorBody(t, await post(JSON.stringify({ username: 5, password: 'long-enough-password' })), 400, 'validation_error')
    t.equal(body.error.field, 'body.username')
    t.match(body.error.message, /^body\.username /, 'the message starts with the field')
  })

  t.test('a wrongly typed nested field names its path', async (t) => {
    const body = isErrorBody(t, await post(JSON.stringify({ username: 'bob', password: 'long-enough-password', allowed_models: ['ok', 7] })), 400, 'validation_error')
    t.equal(body.error.field, 'body.allowed_models.1')
  })

  t.test('an unknown field → 400 naming the field', async (t) => {
    const body = isErrorBody(t, await post(JSON.stringify({ username: 'bob', password: 'long-enough-password', is_superuser: true })), 400, 'validation_error')
    t.equal(body.error.field, 'body.is_superuser')
    t.match(body.error.message, /unknown field/)
  })

  t.test('a missing required field → 400 naming the field', async (t) => {
    const body = isErrorBody(t, await post(JSON.stringify({ username: 'bob' })), 400, 'validation_error')
    t.equal(body.error.field, 'body.password')
  })

  t.test('not JSON at all → 415', async (t) => {
    isErrorBody(t, await post('username=bob&password=long-enough-password', 'application/x-www-form-urlencoded'), 415, 'unsupported_media_type')
  })

  t.test('nothing was written', async (t) => {
    t.equal(await app.prisma.user.count(), users, 'the user count is unchanged')
    t.equal(await app.prisma.user.count({ where: { username: 'bob' } }), 0, 'no bob')
  })
})

t.test('POST /api/admin/users with a body over BODY_LIMIT_BYTES → 400 body_too_large, nothing written, refusal audited', async (t) => {
  const { app } = await buildTestApp(t, { env: { BODY_LIMIT_BYTES: '2048' } })
  const admin = await signIn(app, 'admin')
  const users = await app.prisma.user.count()
  // a body that would be valid but for its size
  const payload = JSON.stringify({ username: 'big', password: 'long-enough-password', allowed_models: Array.from({ length: 40 }, (_, i) => `model-${i}-${'m'.repeat(60)}`) })
  t.ok(Buffer.byteLength(payload) > 2048, `the body is ${Buffer.byteLength(payload)} bytes`)
  const res = await app.inject({ method: 'POST', url: '/api/admin/users', headers: { ...admin.headers, 'content-type': 'application/json' }, payload })
  const body = isErrorBody(t, res, 400, 'body_too_large')
  t.equal(await app.prisma.user.count(), users, 'the user count is unchanged')

  const small = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'small', password: 'long-enough-password' } })
  t.equal(small.statusCode, 201, 'a body under the limit is accepted by the same app')

  const audit = await app.inject({ method: 'GET', url: '/api/admin/audit-logs?success=false&limit=500', headers: admin.headers })
  const row = (audit.json() as { items: Array<{ request_id: string }> }).items.find((r) => r.request_id === body.request_id)
  t.match(row, { status_code: 400, success: false, path: '/api/admin/users', method: 'POST' }, 'the oversized call is audited')
})

// ----- inputs that once gave a 5xx or a bare framework body, one check each -----

t.test('inputs that once broke the app answer 4xx with the error body', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const check = (t: Test, res: LightMyRequestResponse, what: string) => {
    t.equal(problemWith(res), null, `${what} → ${res.statusCode} ${res.body.slice(0, 120)}`)
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${what} is refused with a 4xx`)
  }
  const get = (url: string) => app.inject({ method: 'GET', url, headers: admin.headers })
  const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, headers: admin.headers, payload: payload as object })
  const users = await app.prisma.user.count()
  const tokens = await app.prisma.managementToken.count()

  t.test('a path param longer than the router allows', async (t) => {
    check(t, await get(`/api/admin/users/${'a'.repeat(1000)}`), 'GET /api/admin/users/<1000 chars>')
    check(t, await app.inject({ method: 'DELETE', url: `/api/users/me/management-tokens/${'a'.repeat(1000)}` }), 'anonymous DELETE with a 1000-char id')
  })
  t.test('a badly percent-encoded path', async (t) => {
    check(t, await get('/api/admin/users/%zz'), 'GET /api/admin/users/%zz')
    check(t, await app.inject({ method: 'GET', url: '/api/users/me/%E0%A4%A' }), 'GET /api/users/me/%E0%A4%A (anonymous)')
  })
  t.test('dates that pass a loose date-time format but not new Date()', async (t) => {
    check(t, await get('/api/admin/audit-logs?start_date=2024-06-30T23:59:60Z'), 'audit start_date leap second')
    check(t, await get('/api/admin/audit-logs?end_date=0000-01-01T00:00:00Z'), 'audit end_date year 0000')
    check(t, await post('/api/users/me/management-tokens', { name: 'leap', expires_at: '2099-12-31T23:59:60Z' }), 'management token expires_at leap second')
  })
  t.test('huge or infinite skip / offset', async (t) => {
    check(t, await get('/api/admin/users?skip=1e20'), 'users skip=1e20')
    check(t, await get('/api/admin/users?skip=Infinity'), 'users skip=Infinity')
    check(t, await get('/api/admin/audit-logs?offset=1e300'), 'audit offset=1e300')
  })
  t.test('urn:uuid: ids', async (t) => {
    check(t, await get('/api/admin/users/urn:uuid:00000000-0000-4000-8000-000000000000'), 'GET user by urn:uuid')
    check(t, await get('/api/admin/audit-logs?user_id=urn:uuid:00000000-0000-4000-8000-000000000000'), 'audit user_id=urn:uuid')
  })
  t.test('NUL bytes in strings that would reach PostgreSQL', async (t) => {
    check(t, await get('/api/admin/audit-logs?action=%00'), 'audit action=%00')
    check(t, await post('/api/users/me/management-tokens', { name: 'a\u0000b' }), 'management token name with NUL')
    check(t, await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'a\u0000b', password: 'x' } }), 'anonymous login with NUL in the email')
    check(t, await post('/api/admin/users', { username: 'nul', password: 'long-enough-password', allowed_models: ['a\u0000b'] }), 'NUL in a jsonb list')
  })
  t.test('a NUL in a free-text path param', async (t) => {
    const routes = app.routeTable.filter((r) => Object.values((r.schema?.params as JsonSchema | undefined)?.properties ?? {}).some((p) => (p as { format?: string }).format === undefined))
    t.comment(`${routes.length} routes with a free-text param`)
    for (const route of routes) {
      const url = route.url.replace(/:(\w+)/g, 'a%00b')
      check(t, await app.inject({ method: route.method as 'GET', url, headers: admin.headers, ...(['POST', 'PUT', 'PATCH'].includes(route.method) && { payload: { __fuzz: 1 } }) }), `${route.method} ${route.url} with a%00b`)
    }
  })
  t.test('nothing was written', async (t) => {
    t.equal(await app.prisma.user.count(), users, 'no user')
    t.equal(await app.prisma.managementToken.count(), tokens, 'no management token')
  })
})
