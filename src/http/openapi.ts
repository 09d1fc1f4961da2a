// The OpenAPI document's finishing pass, run once over what @fastify/swagger builds from
// the route schemas: shared schemas become components referenced by $ref, parameters a
// caller may omit are not marked required, and every 429 documents its Retry-After. The
// route schemas themselves are untouched, so validation and serialisation do not change.
import type { TSchema } from 'typebox'

/**
 * The schema keyword naming a shared schema's component. A plain keyword rather than an
 * `$id`: Ajv refuses an `$id` compiled twice, and a record is nested in many route schemas.
 */
export const COMPONENT = 'x-component'

/** Marks `schema` as the component `name`: the document references it instead of inlining it. */
export function shared<T extends TSchema> (name: string, schema: T): T {
  // copied with its descriptors: TypeBox's kind is not enumerable, and Type.IsObject (visibility's walk) reads it
  return Object.defineProperties({}, { ...Object.getOwnPropertyDescriptors(schema), [COMPONENT]: { value: name, enumerable: true } }) as T
}

type Node = Record<string, unknown>
const isNode = (value: unknown): value is Node => value !== null && typeof value === 'object'
const REF_PREFIX = '#/components/schemas/'

/** ajv-formats' bounds on formatted strings: no JSON Schema keyword says them, the schemas' descriptions do (IsoDateTime). */
const AJV_ONLY = new Set(['formatMinimum', 'formatMaximum', 'formatExclusiveMinimum', 'formatExclusiveMaximum'])

/** Replaces every marked schema under `value` by a $ref, collecting it (unmarked) into `components`. */
function hoist (value: unknown, components: Record<string, unknown>): unknown {
  if (Array.isArray(value)) return value.map((item) => hoist(item, components))
  if (!isNode(value)) return value
  const out: Node = {}
  for (const [key, child] of Object.entries(value)) if (key !== COMPONENT && !AJV_ONLY.has(key)) out[key] = hoist(child, components)
  const name = value[COMPONENT]
  if (typeof name !== 'string') return out
  const known = components[name]
  // two different schemas under one name would make one of them lie
  if (known !== undefined && JSON.stringify(known) !== JSON.stringify(out)) throw new Error(`OpenAPI: two different schemas are both marked as component "${name}"`)
  components[name] = out
  return { $ref: `${REF_PREFIX}${name}` }
}

/** A body's fields that have a default may be left out: Ajv fills them in (useDefaults). */
function optionalDefaults (schema: unknown): void {
  if (!isNode(schema) || !Array.isArray(schema.required) || !isNode(schema.properties)) return
  const properties = schema.properties
  schema.required = schema.required.filter((name) => !(isNode(properties[name as string]) && 'default' in (properties[name as string] as Node)))
  if ((schema.required as unknown[]).length === 0) delete schema.required
}

const RETRY_AFTER = {
  description: 'seconds to wait before trying again',
  required: true,
  schema: { type: 'integer', minimum: 1 }
}

interface Operation {
  parameters?: Array<{ required?: boolean, schema?: Node }>
  requestBody?: { content?: Record<string, { schema?: unknown }> }
  responses?: Record<string, { headers?: Record<string, unknown> }>
}

/** The finishing pass (@fastify/swagger's transformObject); works on a copy. */
export function finishDocument (document: Record<string, unknown>): Record<string, unknown> {
  const doc = structuredClone(document) as { paths?: Record<string, Record<string, Operation>>, components?: { schemas?: Record<string, unknown> } }
  for (const item of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(item) as Operation[]) {
      // a parameter with a default is one the caller may omit
      for (const parameter of operation.parameters ?? []) if (parameter.schema !== undefined && 'default' in parameter.schema) parameter.required = false
      for (const media of Object.values(operation.requestBody?.content ?? {})) optionalDefaults(media.schema)
      // every 429 (rate limits, the login throttle, the gateway's limits) sends Retry-After (http/errors.ts sendError)
      const tooMany = operation.responses?.['429']
      if (tooMany !== undefined) tooMany.headers = { ...tooMany.headers, 'Retry-After': RETRY_AFTER }
    }
  }
  const components: Record<string, unknown> = {}
  const paths = hoist(doc.paths, components)
  const schemas = hoist(doc.components?.schemas ?? {}, components) as Record<string, unknown>
  return { ...doc, paths, components: { ...doc.components, schemas: { ...schemas, ...components } } }
}
