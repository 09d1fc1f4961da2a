// The OpenAPI document is generated from the route schemas; these check that it is
// complete: every route in app.routeTable is there with its inputs, a success
// response and an error response, and the docs UI is served.
import t from 'tap'
import type { RouteInfo } from '../../src/app.js'
import { buildTestApp } from '../helper.js'

interface Schema { $ref?: string, type?: string, properties?: Record<string, unknown>, required?: string[] }
interface Parameter { in: string, name: string, required?: boolean, schema?: unknown }
interface Operation {
  summary?: string
  parameters?: Parameter[]
  requestBody?: { content?: Record<string, { schema?: Schema }> }
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>
}
interface Document {
  openapi: string
  info: { title: string, version: string }
  paths: Record<string, Record<string, Operation>>
  components?: { schemas?: Record<string, Schema>, securitySchemes?: Record<string, unknown> }
}

const { app } = await buildTestApp(t)
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
    const success = jsonSchema(responses['200']) ?? jsonSchema(responses['201'])
    t.ok(success !== undefined, `${label(route)} has a JSON schema for 200/201`)
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
