// The OpenAPI document's finishing pass and the operationId rule, on small literal
// documents: what each step does, and what it refuses.
import t from 'tap'
import Type from 'typebox'
import { COMPONENT, finishDocument, shared } from '../../src/http/openapi.js'
import { operationIdOf } from '../../src/http/pipeline.js'

const json = (schema: unknown) => ({ content: { 'application/json': { schema } } })

t.test('operationIdOf: the action in camelCase', async (t) => {
  t.equal(operationIdOf('api_keys.list'), 'apiKeysList')
  t.equal(operationIdOf('users.me.preferences.update'), 'usersMePreferencesUpdate')
  t.equal(operationIdOf('get.admin.users.:id'), 'getAdminUsersId')
  t.equal(operationIdOf('get.'), 'get')
})

t.test('shared marks a schema without touching its validation keywords', async (t) => {
  const record = shared('Thing', Type.Object({ id: Type.String() }))
  t.equal((record as unknown as Record<string, unknown>)[COMPONENT], 'Thing')
  t.same(record.required, ['id'])
  t.ok(Type.IsObject(record), 'still a TypeBox object to TypeBox (its hidden kind kept)')
})

t.test('a marked schema becomes one component, referenced wherever it was', async (t) => {
  const thing = { type: 'object', properties: { id: { type: 'string' } }, [COMPONENT]: 'Thing' }
  const doc = finishDocument({
    openapi: '3.1.0',
    paths: { '/a': { get: { responses: { 200: json({ type: 'array', items: thing }) } } }, '/b': { get: { responses: { 200: json(thing) } } } }
  }) as { paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: unknown }> }> } }>, components: { schemas: Record<string, unknown> } }
  t.same(doc.components.schemas, { Thing: { type: 'object', properties: { id: { type: 'string' } } } })
  t.same(doc.paths['/a']!.get.responses['200']!.content['application/json']!.schema, { type: 'array', items: { $ref: '#/components/schemas/Thing' } })
  t.same(doc.paths['/b']!.get.responses['200']!.content['application/json']!.schema, { $ref: '#/components/schemas/Thing' })
})

t.test('two different schemas marked with one name are refused, naming it', async (t) => {
  const one = { type: 'object', properties: { id: { type: 'string' } }, [COMPONENT]: 'Thing' }
  const other = { type: 'object', properties: { id: { type: 'integer' } }, [COMPONENT]: 'Thing' }
  t.throws(() => finishDocument({ paths: { '/a': { get: { responses: { 200: json(one), 201: json(other) } } } } }), /two different schemas are both marked as component "Thing"/)
})

t.test('defaults make parameters and body fields optional; the input document is left as it was', async (t) => {
  const input = {
    paths: {
      '/a': {
        post: {
          parameters: [{ in: 'query', name: 'limit', required: true, schema: { type: 'integer', default: 100 } }, { in: 'query', name: 'q', required: true, schema: { type: 'string' } }],
          requestBody: json({ type: 'object', required: ['hard'], properties: { hard: { type: 'boolean', default: true } } }),
          responses: { 200: json({ type: 'object', required: ['n'], properties: { n: { type: 'integer', default: 0 } } }) }
        }
      }
    }
  }
  const before = structuredClone(input)
  const doc = finishDocument(input) as typeof input
  const post = doc.paths['/a'].post as unknown as {
    parameters: Array<{ name: string, required: boolean }>
    requestBody: { content: Record<string, { schema: Record<string, unknown> }> }
    responses: Record<string, { content: Record<string, { schema: { required: string[] } }> }>
  }
  t.same(post.parameters.map((p) => [p.name, p.required]), [['limit', false], ['q', true]])
  t.notOk('required' in post.requestBody.content['application/json']!.schema, 'no body field left required')
  t.same(post.responses['200']!.content['application/json']!.schema.required, ['n'], 'answers keep their required fields')
  t.same(input, before, 'the input is unchanged')
})

t.test('every 429 gets Retry-After beside the headers it had', async (t) => {
  const doc = finishDocument({ paths: { '/a': { get: { responses: { 200: {}, 429: { headers: { 'X-RateLimit-Limit': { schema: { type: 'integer' } } } } } } } } }) as { paths: { '/a': { get: { responses: Record<string, { headers?: Record<string, unknown> }> } } } }
  const responses = doc.paths['/a'].get.responses
  t.same(Object.keys(responses['429']!.headers ?? {}).sort(), ['Retry-After', 'X-RateLimit-Limit'])
  t.match(responses['429']!.headers?.['Retry-After'], { required: true, schema: { type: 'integer', minimum: 1 } })
  t.notOk(responses['200']!.headers, 'other statuses get none')
})

t.test('ajv-formats\' bounds are left out of the document (the descriptions say them)', async (t) => {
  const doc = finishDocument({ paths: { '/a': { get: { parameters: [{ in: 'query', name: 'from', schema: { type: 'string', format: 'date-time', formatMinimum: '2000-01-01T00:00:00Z', formatExclusiveMaximum: '3000-01-01T00:00:00Z', description: 'from 2000' } }] } } } }) as { paths: { '/a': { get: { parameters: Array<{ schema: unknown }> } } } }
  t.same(doc.paths['/a'].get.parameters[0]!.schema, { type: 'string', format: 'date-time', description: 'from 2000' })
})
