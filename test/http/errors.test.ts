// errorReply (src/http/errors.ts) is the one mapping from anything thrown to the
// status and error body a client sees; these pin it down, then check the two
// answers the app gives outside any route: unknown paths (404) and probing (429).
import t, { type Test } from 'tap'
import { Errors, errorReply } from '../../src/http/errors.js'
import { buildTestApp, signIn } from '../helper.js'

const snake = (code: string) => code.replace(/^KM_/, '').toLowerCase()

t.test('every coded KM error maps to its own status and snake_case type, keeping its message', async (t) => {
  const entries = Object.entries(Errors)
  t.ok(entries.length > 0, 'there are coded errors')
  for (const [name, ErrorClass] of entries) {
    const error = new ErrorClass(`message of ${name}`)
    t.match(error.code, /^KM_[A-Z_]+$/, `${name} has a KM_ code`)
    t.same(errorReply(error), { status: error.statusCode, type: snake(error.code), message: `message of ${name}` }, `${name} → ${error.statusCode} ${snake(error.code)}`)
  }
})

t.test('the coded errors have the statuses and types the API documents', async (t) => {
  const expected: Array<[keyof typeof Errors, number, string]> = [
    ['InvalidInput', 400, 'invalid_input'],
    ['Unauthorized', 401, 'unauthorized'],
    ['Forbidden', 403, 'forbidden'],
    ['NotFound', 404, 'not_found'],
    ['Conflict', 409, 'conflict'],
    ['LimitReached', 409, 'limit_reached'],
    ['TooManyRequests', 429, 'too_many_requests'],
    ['LoginThrottled', 429, 'login_throttled']
  ]
  for (const [name, status, type] of expected) {
    t.match(errorReply(new Errors[name]('x')), { status, type, message: 'x' }, `${name} → ${status} ${type}`)
  }
})

t.test('a coded error carries its retryAfter into the reply', async (t) => {
  const throttled = Object.assign(new Errors.TooManyRequests('slow down'), { retryAfter: 42 })
  t.same(errorReply(throttled), { status: 429, type: 'too_many_requests', message: 'slow down', retryAfter: 42 })
  t.notOk('retryAfter' in errorReply(new Errors.NotFound('gone')), 'no retryAfter when the error has none')
})

t.test('Prisma P2002 (unique violation) → 409 conflict naming the field', async (t) => {
  const classic = Object.assign(new Error('Unique constraint failed'), { code: 'P2002', meta: { target: ['username'] } })
  t.same(errorReply(classic), { status: 409, type: 'conflict', message: 'already exists: username' })
  const adapter = Object.assign(new Error('Unique constraint failed'), {
    code: 'P2002', meta: { driverAdapterError: { cause: { constraint: { fields: ['email'] } } } }
  })
  t.same(errorReply(adapter), { status: 409, type: 'conflict', message: 'already exists: email' }, 'driver-adapter shaped meta')
  const bare = Object.assign(new Error('Unique constraint failed on secret_column'), { code: 'P2002' })
  t.same(errorReply(bare), { status: 409, type: 'conflict', message: 'already exists: unique field' }, 'no meta: a generic name, not the driver message')
})

t.test('Prisma P2025 (record not found) → 404 not_found', async (t) => {
  const error = Object.assign(new Error('An operation failed because it depends on one or more records that were required but not found.'), { code: 'P2025' })
  t.same(errorReply(error), { status: 404, type: 'not_found', message: 'not found' })
})

t.test('a plain Error → 500 internal_error that says nothing of its internals', async (t) => {
  const error = new Error('parse failure password=hunter2 at /srv/app/src/db.ts:12')
  const reply = errorReply(error)
  t.same(reply, { status: 500, type: 'internal_error', message: 'internal server error' })
  t.notMatch(JSON.stringify(reply), /parse|hunter2|db\.ts/, 'no message or path leaks')
})

t.test('the database away → 503 database_unavailable, saturated → 503 database_busy, both with Retry-After and nothing of the cause', async (t) => {
  const unavailable = { status: 503, type: 'database_unavailable', message: 'the database is unavailable; retry shortly', retryAfter: 1 }
  const busy = { status: 503, type: 'database_busy', message: 'the database is saturated; retry shortly', retryAfter: 1 }
  const cases: Array<[unknown, object]> = [
    [new Error('connect ECONNREFUSED 10.1.2.3:5432 password=hunter2'), unavailable],
    [Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01', severity: 'FATAL' }), unavailable],
    [Object.assign(new Error('the database system is starting up'), { code: '57P03' }), unavailable],
    [Object.assign(new Error('x'), { code: '08006' }), unavailable],
    [new Error('Connection terminated unexpectedly'), unavailable],
    [new Error('Client has encountered a connection error and is not queryable'), unavailable],
    [Object.assign(new Error('x'), { code: 'P1001' }), unavailable],
    // Prisma's driver-adapter wrapper: the PostgreSQL code is inside
    [Object.assign(new Error('Raw query failed'), { code: 'P2010', meta: { driverAdapterError: { cause: { kind: 'postgres', originalCode: '57P01' } } } }), unavailable],
    [Object.assign(new Error('x'), { cause: { kind: 'DatabaseNotReachable' } }), unavailable],
    [new Error('timeout exceeded when trying to connect'), busy],
    [Object.assign(new Error('Transaction API error: Unable to start a transaction in the given time.'), { code: 'P2028' }), busy],
    [Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }), busy],
    [Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), busy],
    // lost races that a retry may win: a serialization failure (a standby's recovery conflict is one) and a deadlock
    [Object.assign(new Error('canceling statement due to conflict with recovery'), { code: '40001' }), busy],
    [Object.assign(new Error('deadlock detected'), { code: '40P01' }), busy]
  ]
  for (const [thrown, wanted] of cases) t.same(errorReply(thrown), wanted, (thrown as Error).message)
})

t.test('anything else thrown (null, a string, an unknown code, a 5xx status) → internal_error', async (t) => {
  for (const thrown of [null, undefined, 'boom', 42, {}, Object.assign(new Error('x'), { code: 'P9999' })]) {
    t.same(errorReply(thrown), { status: 500, type: 'internal_error', message: 'internal server error' }, `thrown ${JSON.stringify(thrown) ?? String(thrown)}`)
  }
  t.same(errorReply(Object.assign(new Error('upstream down'), { statusCode: 503 })), { status: 503, type: 'internal_error', message: 'internal server error' }, 'a 5xx keeps its status, not its message')
})

t.test('FST_ERR_CTP_BODY_TOO_LARGE → 400 body_too_large', async (t) => {
  const error = Object.assign(new Error('Request body is too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 })
  t.same(errorReply(error), { status: 400, type: 'body_too_large', message: 'request body is larger than the limit' })
})

t.test('FST_ERR_CTP_INVALID_MEDIA_TYPE → 415 unsupported_media_type', async (t) => {
  const error = Object.assign(new Error('Unsupported Media Type: text/plain'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 })
  t.same(errorReply(error), { status: 415, type: 'unsupported_media_type', message: 'send application/json' })
})

t.test('other framework 4xx errors keep their status with a generic type', async (t) => {
  const badJson = Object.assign(new Error("Body is not valid JSON but content-type is set to 'application/json'"), { code: 'FST_ERR_CTP_INVALID_JSON_BODY', statusCode: 400 })
  t.match(errorReply(badJson), { status: 400, type: 'invalid_request', message: /not valid JSON/ })
  t.match(errorReply(Object.assign(new Error('nope'), { statusCode: 405 })), { status: 405, type: 'method_not_allowed' })
  t.match(errorReply(Object.assign(new Error('teapot'), { statusCode: 418 })), { status: 418, type: 'client_error' })
})

t.test('a validation error array → 400 validation_error naming the field', async (t) => {
  const wrongType = { validation: [{ instancePath: '/username', message: 'must be string', params: { type: 'string' } }], validationContext: 'body' }
  t.same(errorReply(wrongType), { status: 400, type: 'validation_error', message: 'body.username must be string', field: 'body.username' })

  const missing = { validation: [{ instancePath: '', message: "must have required property 'password'", params: { missingProperty: 'password' } }], validationContext: 'body' }
  t.match(errorReply(missing), { status: 400, type: 'validation_error', field: 'body.password' }, 'a missing property is named')

  const unknown = { validation: [{ instancePath: '', message: 'must NOT have additional properties', params: { additionalProperty: 'colour' } }], validationContext: 'body' }
  t.same(errorReply(unknown), { status: 400, type: 'validation_error', message: 'body.colour unknown field', field: 'body.colour' }, 'an unknown field is named')

  const nested = { validation: [{ instancePath: '/allowed_models/3', message: 'must NOT have more than 200 characters', params: {} }], validationContext: 'body' }
  t.match(errorReply(nested), { field: 'body.allowed_models.3' }, 'a nested path is dotted')

  const query = { validation: [{ instancePath: '/limit', message: 'must be <= 500', params: {} }], validationContext: 'querystring' }
  t.match(errorReply(query), { status: 400, field: 'querystring.limit', message: 'querystring.limit must be <= 500' }, 'the context is the prefix')

  const noContext = { validation: [{ instancePath: '/name', message: 'must be string' }] }
  t.match(errorReply(noContext), { field: 'body.name' }, 'the context defaults to body')

  t.match(errorReply({ validation: [] }), { status: 400, type: 'validation_error', field: 'body' }, 'an empty list still answers 400')
})

function isErrorBody (t: Test, body: unknown, type: string, requestId: unknown) {
  t.match(body, { error: { type, message: String }, request_id: String })
  t.equal((body as { request_id: string }).request_id, requestId, 'request_id matches the x-request-id header')
  const { error, detail } = body as { error: { message: string }, detail?: string }
  t.equal(detail, error.message, 'detail repeats the message (Aether\'s dashboard reads it)')
}

t.test('GET /no/such/route → 404 with the error body', async (t) => {
  const { app } = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1' })
  t.equal(res.statusCode, 404)
  t.match(res.headers['content-type'], /application\/json/)
  isErrorBody(t, res.json(), 'not_found', res.headers['x-request-id'])
  t.equal(res.json().error.message, 'no route GET /no/such/route', 'the message names the path without the query')
  const wrongMethod = await app.inject({ method: 'PATCH', url: '/health' })
  t.equal(wrongMethod.statusCode, 404, 'a known path with an unknown method is 404 too')
  isErrorBody(t, wrongMethod.json(), 'not_found', wrongMethod.headers['x-request-id'])
})

t.test('130 requests to unknown paths from one address → the later ones are 429 with Retry-After', async (t) => {
  const { app } = await buildTestApp(t)
  const statuses: number[] = []
  let last: Awaited<ReturnType<typeof app.inject>> | undefined
  for (let i = 0; i < 130; i++) {
    last = await app.inject({ method: 'GET', url: `/probe/${i}`, remoteAddress: '203.0.113.7' })
    statuses.push(last.statusCode)
    if (last.statusCode === 429) {
      isErrorBody(t, last.json(), 'too_many_requests', last.headers['x-request-id'])
      const retryAfter = Number(last.headers['retry-after'])
      t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After is whole seconds within the window (${String(last.headers['retry-after'])})`)
    }
  }
  const firstRefusal = statuses.indexOf(429)
  t.ok(firstRefusal > 0, 'the address is refused at some point')
  t.ok(statuses.slice(0, firstRefusal).every((s) => s === 404), 'every answer before the first 429 is a 404')
  t.ok(statuses.slice(firstRefusal).every((s) => s === 429), 'once refused, the address stays refused')
  t.ok(statuses.slice(-10).every((s) => s === 429), 'the last ten are 429')

  const other = await app.inject({ method: 'GET', url: '/probe/other', remoteAddress: '198.51.100.9' })
  t.equal(other.statusCode, 404, 'another address is not affected')
  const known = await app.inject({ method: 'GET', url: '/health', remoteAddress: '203.0.113.7' })
  t.equal(known.statusCode, 200, 'the refused address can still call real routes')
})

t.test('a JSON body that is empty is no body: a bodyless PATCH passes, a route that needs a body answers 400; bad JSON stays a 400', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const json = { ...admin.headers, 'content-type': 'application/json' }
  const created = await app.inject({ method: 'POST', url: '/api/admin/users', headers: json, payload: { username: 'nobody', email: 'nobody@example.com', password: 'long-enough-1' } })
  t.equal(created.statusCode, 201, created.body)
  const id = (created.json() as { id: string }).id
  // Aether's quota reset: PATCH, no body, the client's default JSON content type
  const reset = await app.inject({ method: 'PATCH', url: `/api/admin/users/${id}/quota`, headers: json, payload: '' })
  t.equal(reset.statusCode, 200, reset.body)
  const noBody = await app.inject({ method: 'POST', url: '/api/admin/users', headers: json, payload: '' })
  t.equal(noBody.statusCode, 400, 'a create with no body is refused')
  t.match(noBody.json(), { error: { type: 'validation_error' }, detail: String }, noBody.body)
  const malformed = await app.inject({ method: 'POST', url: '/api/admin/users', headers: json, payload: '{"username":' })
  t.equal(malformed.statusCode, 400, 'malformed JSON is a 400')
  const poisoned = await app.inject({ method: 'POST', url: '/api/admin/users', headers: json, payload: '{"__proto__":{"role":"admin"},"username":"x"}' })
  t.equal(poisoned.statusCode, 400, 'a __proto__ key is still refused by the default parser')
})
