// The OpenAPI document is generated from the route schemas; these check that it is
// complete: every route in app.routeTable is there with its inputs, a success
// response and an error response, and the docs UI is served.
import t from 'tap'
import type { RouteInfo } from '../../src/app.js'
import { buildTestApp, GATEWAY_TOKEN, signIn } from '../helper.js'

interface Schema { $ref?: string, type?: string, properties?: Record<string, Schema & { default?: unknown, enum?: string[] }>, required?: string[] }
interface Parameter { in: string, name: string, required?: boolean, schema?: { default?: unknown } }
interface Operation {
  summary?: string
  description?: string
  operationId?: string
  security?: Array<Record<string, string[]>>
  parameters?: Parameter[]
  requestBody?: { content?: Record<string, { schema?: Schema }> }
  responses?: Record<string, { content?: Record<string, { schema?: Schema }>, headers?: Record<string, { required?: boolean, schema?: { type?: string } }> }>
}
interface Document {
  openapi: string
  info: { title: string, version: string }
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Schema>, securitySchemes?: Record<string, unknown> }
}

const { app } = await buildTestApp(t)
const admin = await signIn(app, 'admin')
const res = await app.inject({ method: 'GET', url: '/openapi.json' })
const doc = res.json() as Document
const documented = app.routeTable.filter((r) => !(r.url === '/docs' || r.url.startsWith('/docs/') || r.url === '/openapi.json'))
const openapiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}')
const keysOf = (schema: unknown) => Object.keys((schema as Schema | undefined)?.properties ?? {}).sort()
const resolve = (schema: Schema | undefined): Schema | undefined => {
  if (schema?.$ref === undefined) return schema
  const name = schema.$ref.replace('#/components/schemas/', '')
  return resolve(doc.components?.schemas?.[name])
}
const jsonSchema = (entry: { content?: Record<string, { schema?: Schema }> } | undefined) => resolve(entry?.content?.['application/json']?.schema)
const operation = (route: RouteInfo) => doc.paths[openapiPath(route.url)]?.[route.method.toLowerCase()]
const label = (route: RouteInfo) => `${route.method} ${route.url}`

t.test('GET /openapi.json is 200 and looks like OpenAPI 3', async (t) => {
  t.equal(doc.openapi, '3.1.0', 'OpenAPI 3.1, whose schemas are JSON Schema 2020-12 like the routes\' own')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  t.match(doc.openapi, /^3\.\d+\.\d+$/, `openapi ${doc.openapi}`)
  t.match(doc.info, { title: 'keymeter', version: String })
  t.type(doc.paths, 'object')
  t.ok(Object.keys(doc.paths).length > 0, 'has paths')
  t.ok(Object.keys(doc.components?.securitySchemes ?? {}).length > 0, 'declares its security schemes')
  for (const [path, methods] of Object.entries(doc.paths)) {
    t.ok(path.startsWith('/') && !/:\w/.test(path), `${path} uses {param} syntax`)
    for (const [method, op] of Object.entries(methods)) t.ok(op.responses !== undefined && Object.keys(op.responses).length > 0, `${method} ${path} has responses`)
  }
})

t.test('the route table has routes to check', async (t) => {
  t.ok(documented.length > 5, `${documented.length} routes`)
})

t.test('every route in app.routeTable is in the document with a summary', async (t) => {
  for (const route of documented) {
    const op = operation(route)
    t.ok(op, `${label(route)} is under paths["${openapiPath(route.url)}"].${route.method.toLowerCase()}`)
    t.ok(typeof op?.summary === 'string' && op.summary !== '', `${label(route)} has a summary`)
  }
})

t.test('every documented operation is a route (nothing stale, nothing hidden leaks)', async (t) => {
  const known = new Set(documented.map((r) => `${r.method.toLowerCase()} ${openapiPath(r.url)}`))
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const method of Object.keys(methods)) t.ok(known.has(`${method} ${path}`), `${method} ${path} is a route in app.routeTable`)
  }
  t.notOk(doc.paths['/openapi.json'], '/openapi.json itself is not documented')
  t.notOk(Object.keys(doc.paths).some((p) => p.startsWith('/docs')), 'the docs UI is not documented')
})

t.test('every route documents a 200 or 201 response schema', async (t) => {
  for (const route of documented) {
    const responses = operation(route)?.responses ?? {}
    // a file (the usage export: CSV or NDJSON) documents each of its media types instead
    const file = Object.entries(responses['200']?.content ?? {}).filter(([type]) => type !== 'application/json')
    const success = jsonSchema(responses['200']) ?? jsonSchema(responses['201']) ?? (file.length > 0 && file.every(([, media]) => resolve(media.schema) !== undefined) ? file : undefined)
    t.ok(success !== undefined, `${label(route)} has a JSON schema for 200/201, or one per media type of a file`)
  }
})

t.test('every route that can refuse documents a 4xx with the error body', async (t) => {
  for (const route of documented) {
    const input = route.schema?.body !== undefined || route.schema?.params !== undefined || route.schema?.querystring !== undefined
    // a route with no input that serves anyone (liveness, readiness) has no 4xx of its own to document
    if (!input) {
      const anonymous = await app.inject({ method: route.method as 'GET', url: route.url })
      if (anonymous.statusCode < 400) {
        t.comment(`${label(route)} takes no input and answers anonymously (${anonymous.statusCode}): no 4xx required`)
        continue
      }
      t.ok(Object.keys(operation(route)?.responses ?? {}).includes(String(anonymous.statusCode)), `${label(route)} documents the ${anonymous.statusCode} it gives a stranger`)
    }
    const responses = operation(route)?.responses ?? {}
    const errors = Object.keys(responses).filter((status) => /^4\d\d$/.test(status))
    t.ok(errors.length > 0, `${label(route)} documents at least one 4xx (${errors.join(', ')})`)
    for (const status of errors) {
      const schema = jsonSchema(responses[status])
      t.same(keysOf(schema), ['detail', 'error', 'request_id'], `${label(route)} ${status} is the error body`)
    }
  }
})

t.test('every route with a body schema documents its requestBody', async (t) => {
  const withBody = documented.filter((r) => r.schema?.body !== undefined)
  t.ok(withBody.length > 0, `${withBody.length} routes take a body`)
  for (const route of withBody) {
    const schema = jsonSchema(operation(route)?.requestBody)
    t.ok(schema, `${label(route)} has requestBody.content["application/json"].schema`)
    t.same(keysOf(schema), keysOf(route.schema?.body), `${label(route)} documents the same body fields`)
  }
})

t.test('every route with params documents them as required path parameters', async (t) => {
  const withParams = documented.filter((r) => r.schema?.params !== undefined)
  t.ok(withParams.length > 0, `${withParams.length} routes take params`)
  for (const route of withParams) {
    const path = (operation(route)?.parameters ?? []).filter((p) => p.in === 'path')
    t.same(path.map((p) => p.name).sort(), keysOf(route.schema?.params), `${label(route)} path parameters`)
    t.ok(path.every((p) => p.required === true), `${label(route)} path parameters are required`)
    const inUrl = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]).sort()
    t.same(inUrl, keysOf(route.schema?.params), `${label(route)} params schema matches the url`)
  }
})

t.test('every route with a querystring schema documents its query parameters', async (t) => {
  const withQuery = documented.filter((r) => r.schema?.querystring !== undefined)
  t.ok(withQuery.length > 0, `${withQuery.length} routes take a querystring`)
  for (const route of withQuery) {
    const query = (operation(route)?.parameters ?? []).filter((p) => p.in === 'query')
    t.same(query.map((p) => p.name).sort(), keysOf(route.schema?.querystring), `${label(route)} query parameters`)
    t.ok(query.every((p) => p.schema !== undefined), `${label(route)} query parameters have schemas`)
  }
})

t.test('GET /docs and /docs/ serve the HTML UI', async (t) => {
  for (const url of ['/docs', '/docs/']) {
    const page = await app.inject({ method: 'GET', url })
    t.equal(page.statusCode, 200, `${url} is 200`)
    t.match(page.headers['content-type'], /text\/html/, `${url} is HTML`)
    t.match(page.body, /<html/i)
    t.match(page.body, /swagger/i, `${url} is the Swagger UI`)
  }
})

const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, op })))
/** the operation's description without the paragraph the pipeline adds (who may call, the audit action) */
const ownDescription = (op: Operation | undefined) => (op?.description ?? '').split(/\n*Caller: /)[0]!.trim()

t.test('every operation has a unique, readable operationId', async (t) => {
  t.ok(operations.length > 80, `${operations.length} operations`)
  const seen = new Map<string, string>()
  for (const { name, op } of operations) {
    t.match(op.operationId, /^[a-z][A-Za-z0-9]+$/, `${name} has a camelCase operationId (${op.operationId})`)
    t.notOk(seen.has(op.operationId!), `${name}: operationId ${op.operationId} is not also ${seen.get(op.operationId!)}'s`)
    seen.set(op.operationId!, name)
  }
  // from the route's audited action, stable as the audit log's names are
  t.equal(doc.paths['/api/admin/api-keys']?.get?.operationId, 'apiKeysList')
  t.equal(doc.paths['/api/gateway/keys/verify']?.post?.operationId, 'gatewayVerify')
  t.equal(doc.paths['/api/auth/login']?.post?.operationId, 'authLogin')
  t.equal(doc.paths['/health']?.get?.operationId, 'getHealth')
})

t.test('every route declares a description of its own', async (t) => {
  for (const route of documented) {
    const own = ownDescription(operation(route))
    t.ok(own !== '', `${label(route)} has a description (if not: add \`description\` beside the summary in its route's schema)`)
    t.not(own, operation(route)?.summary, `${label(route)}'s description adds to its summary`)
  }
})

t.test('every operation states its security: what the route accepts, or [] for a public one', async (t) => {
  const schemes = doc.components?.securitySchemes ?? {}
  for (const { name, op } of operations) {
    t.ok(Array.isArray(op.security), `${name} has security`)
    for (const requirement of op.security ?? []) for (const scheme of Object.keys(requirement)) t.ok(scheme in schemes, `${name}: scheme ${scheme} is declared`)
  }
  const security = (path: string, method: string) => doc.paths[path]?.[method]?.security
  t.same(security('/api/admin/api-keys', 'get'), [{ bearer: [] }, { session: [] }], 'admin: bearer token or session cookie')
  t.same(security('/api/users/me/api-keys', 'get'), [{ bearer: [] }, { session: [] }], 'user: bearer token or session cookie')
  t.same(security('/api/gateway/keys/verify', 'post'), [{ gateway: [] }], 'gateway: GATEWAY_TOKEN')
  t.same(security('/api/key-stats/user-stats', 'post'), [{ apiKey: [] }], 'key holders: their API key')
  t.same(security('/api/auth/login', 'post'), [], 'sign-in is public')
  t.same(security('/health', 'get'), [], 'liveness is public')
})

t.test('the documented security is what the route enforces: a stranger is refused exactly where some is required', async (t) => {
  for (const { name, op } of operations) {
    const [method, path] = name.split(' ') as [string, string]
    const url = path.replace(/\{model\}/g, 'gpt-4o').replace(/\{\w+\}/g, '00000000-0000-4000-8000-000000000000')
    const res = await app.inject({ method: method as 'GET', url })
    if ((op.security ?? []).length > 0) t.equal(res.statusCode, 401, `${name} requires a credential: a stranger gets 401`)
    else t.not(res.statusCode, 401, `${name} is public: a stranger is not refused for want of a credential (${res.statusCode})`)
  }
})

t.test('"Authorize" in /docs takes bearer tokens: the schemes are HTTP bearer, and /docs serves this document', async (t) => {
  const schemes = doc.components?.securitySchemes as Record<string, { type: string, scheme?: string, in?: string, name?: string }>
  for (const name of ['bearer', 'gateway', 'apiKey']) t.match(schemes[name], { type: 'http', scheme: 'bearer' }, `${name} is an HTTP bearer scheme`)
  t.match(schemes.session, { type: 'apiKey', in: 'cookie', name: 'km_session' })
  const served = await app.inject({ method: 'GET', url: '/docs/json' })
  t.same(served.json(), doc, 'the UI loads the same document')
})

t.test('shared schemas are components referenced by $ref, not inlined', async (t) => {
  const schemas = doc.components?.schemas ?? {}
  for (const name of ['ErrorBody', 'KeyRecord', 'UserRecord', 'UsageRecord', 'VerifyRefusal']) t.ok(schemas[name], `components.schemas.${name}`)
  let errors = 0
  for (const { name, op } of operations) {
    for (const [status, response] of Object.entries(op.responses ?? {})) {
      if (!/^4\d\d$/.test(status)) continue
      errors++
      t.match(response.content?.['application/json']?.schema?.$ref, /^#\/components\/schemas\/(ErrorBody|VerifyRefusal)$/, `${name} ${status} references the error body`)
    }
  }
  t.ok(errors > 300, `${errors} error responses, none inlined`)
  const text = JSON.stringify(doc.paths)
  t.ok(text.includes('"$ref":"#/components/schemas/KeyRecord"'), 'keys are referenced')
  t.ok(text.includes('"$ref":"#/components/schemas/UserRecord"'), 'users are referenced')
  t.ok(text.includes('"$ref":"#/components/schemas/UsageRecord"'), 'usage records are referenced')
  t.notOk(text.includes('x-component'), 'no marker left in the document')
  // the documented component is the record the routes answer with
  t.same(keysOf(schemas.KeyRecord), keysOf(jsonSchema(doc.paths['/api/admin/api-keys/{id}']?.put?.responses?.['200'])))
})

t.test('error types are enums: the pipeline\'s, and verify\'s refusals', async (t) => {
  const typeEnum = (name: string) => ((doc.components?.schemas?.[name]?.properties?.error as Schema | undefined)?.properties?.type?.enum ?? [])
  const general = typeEnum('ErrorBody')
  for (const type of ['validation_error', 'invalid_request', 'unauthorized', 'forbidden', 'not_found', 'conflict', 'too_many_requests', 'login_throttled', 'not_standalone', 'database_unavailable', 'internal_error']) t.ok(general.includes(type), `ErrorBody's types include ${type}`)
  const verify = typeEnum('VerifyRefusal')
  for (const type of ['key_invalid', 'key_disabled', 'key_expired', 'user_disabled', 'model_not_allowed', 'provider_not_allowed', 'api_format_not_allowed', 'rate_limited', 'token_limited', 'concurrency_limited', 'balance_exhausted', 'daily_cost_limit', 'total_cost_limit', 'request_conflict', 'validation_error', 'unauthorized']) t.ok(verify.includes(type), `VerifyRefusal's types include ${type}`)
  t.notOk(general.includes('key_invalid'), 'verify\'s refusals are verify\'s own')
  // the types real refusals carry are documented
  const refusals = [
    [await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { key: 'sk-not-a-key' } }), verify],
    [await app.inject({ method: 'GET', url: '/api/admin/api-keys' }), general],
    [await app.inject({ method: 'GET', url: '/api/admin/api-keys/not-a-uuid', headers: admin.headers }), general],
    [await app.inject({ method: 'GET', url: '/api/admin/api-keys/00000000-0000-4000-8000-000000000000', headers: admin.headers }), general]
  ] as const
  t.same(refusals.map(([res]) => res.statusCode), [401, 401, 400, 404])
  for (const [res, types] of refusals) {
    const type = (res.json() as { error: { type: string } }).error.type
    t.ok(types.includes(type), `${type} (${res.statusCode}) is documented`)
  }
})

t.test('every 429 documents its Retry-After header', async (t) => {
  let count = 0
  for (const { name, op } of operations) {
    const tooMany = op.responses?.['429']
    if (tooMany === undefined) continue
    count++
    t.match(tooMany.headers?.['Retry-After'], { required: true, schema: { type: 'integer' } }, `${name} 429 documents Retry-After`)
  }
  t.ok(count > 80, `${count} operations can answer 429`)
})

t.test('no parameter or body field is both required and defaulted', async (t) => {
  let defaulted = 0
  for (const { name, op } of operations) {
    for (const parameter of op.parameters ?? []) {
      if (parameter.schema?.default === undefined) continue
      defaulted++
      t.not(parameter.required, true, `${name} ${parameter.in} ${parameter.name} has a default: the caller may omit it`)
    }
    const body = op.requestBody?.content?.['application/json']?.schema
    for (const field of body?.required ?? []) t.equal(body?.properties?.[field]?.default, undefined, `${name} body.${field} is required without a default`)
  }
  t.ok(defaulted > 20, `${defaulted} defaulted parameters`)
  t.match(doc.paths['/api/admin/api-keys']?.get?.parameters?.find((p) => p.name === 'limit'), { required: false, schema: { default: 100 } })
})

t.test('X-Total-Count is documented exactly on the answers that send it', async (t) => {
  let sent = 0
  for (const route of documented.filter((r) => r.method === 'GET' && !r.url.includes(':'))) {
    const answer = await app.inject({ method: 'GET', url: route.url, headers: admin.headers })
    if (answer.statusCode !== 200) continue
    const header = operation(route)?.responses?.['200']?.headers?.['X-Total-Count']
    if (answer.headers['x-total-count'] === undefined) {
      t.notOk(header, `${label(route)} sends no total and documents none`)
      continue
    }
    sent++
    t.match(header, { schema: { type: 'integer', minimum: 0 } }, `${label(route)} documents the X-Total-Count it sends`)
  }
  // the users, providers and own keys pages
  t.equal(sent, 3)
})
