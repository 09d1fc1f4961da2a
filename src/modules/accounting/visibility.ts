// Which fields of a usage figure are the operator's, and who sees them: what the
// providers cost the operator (actual_*: cost × the provider key's rate multiplier), that
// multiplier, the provider key that served a request (on a usage record Aether's
// api_key_name is the provider key's name, not the caller's key) and the savings
// against that cost. Admins see them; anyone else reading usage gets the figure without
// them. Every read a regular user can call declares its answer through `viewerSchema`
// and sends it through `visibleTo`, so no route decides this for itself.
import Type, { type TSchema } from 'typebox'
import { COMPONENT } from '../../http/openapi.js'

const OPERATOR_NAMES = new Set(['rate_multiplier', 'api_key_name', 'provider_api_key_id', 'cost_savings'])

/** The rule: a field of a usage figure is the operator's when it is named so. */
export function isOperatorField (name: string): boolean {
  return /(^|_)actual(_|$)/.test(name) || OPERATOR_NAMES.has(name)
}

export interface Viewer { role: string }

/** Admins see the operator's cost, on their own usage too. */
export const seesOperatorCost = (viewer: Viewer): boolean => viewer.role === 'admin'

/** A schema's own options (description, additionalProperties, …) without the keys `drop` rebuilds. */
function optionsOf (schema: TSchema, drop: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(schema).filter(([key]) => !drop.includes(key)))
}

/** The same schema, its description saying who sees it (the copy keeps TypeBox's hidden kind). */
function adminsOnly (schema: TSchema): TSchema {
  const copy = Object.defineProperties({}, Object.getOwnPropertyDescriptors(schema)) as TSchema & { description?: string }
  copy.description = copy.description === undefined ? 'admins only' : `admins only: ${copy.description}`
  return copy
}

function mapSchema (schema: TSchema): TSchema {
  if (Type.IsObject(schema)) {
    const properties = Object.fromEntries(Object.entries(schema.properties).map(([name, inner]) =>
      [name, isOperatorField(name) ? Type.Optional(adminsOnly(inner)) : Type.IsOptional(inner) ? Type.Optional(mapSchema(inner)) : mapSchema(inner)]))
    // no longer the shared record it may have been: the API document shows it as it is
    return Type.Object(properties, optionsOf(schema, ['type', 'properties', 'required', COMPONENT]))
  }
  if (Type.IsArray(schema)) return Type.Array(mapSchema(schema.items), optionsOf(schema, ['type', 'items']))
  if (Type.IsUnion(schema)) return Type.Union(schema.anyOf.map(mapSchema), optionsOf(schema, ['anyOf']))
  return schema
}

/**
 * The schema a path any user can call declares: the operator's fields, at any depth of
 * the declared structure, optional and described as admins only (typed as the original,
 * whose full figure the handler builds and `visibleTo` trims).
 */
export function viewerSchema<S extends TSchema> (schema: S): S {
  return mapSchema(schema) as S
}

/** The value without the operator's fields, walking only the structure `schema` declares (opaque JSON such as bodies is left whole). */
function trim (schema: TSchema, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value
  if (Type.IsObject(schema) && !Array.isArray(value)) {
    const out: Record<string, unknown> = {}
    for (const [name, inner] of Object.entries(value)) {
      if (isOperatorField(name)) continue
      const declared = schema.properties[name]
      out[name] = declared === undefined ? inner : trim(declared, inner)
    }
    return out
  }
  if (Type.IsArray(schema) && Array.isArray(value)) return value.map((item) => trim(schema.items, item))
  // a nullable object or an alternative of shapes: the operator's fields go from whichever alternative declares them
  if (Type.IsUnion(schema)) return schema.anyOf.reduce<unknown>((trimmed, alternative) => trim(alternative, trimmed), value)
  return value
}

/** The answer as `viewer` may see it: whole for an admin, without the operator's fields for anyone else. */
export function visibleTo<T> (viewer: Viewer, schema: TSchema, value: T): T {
  return seesOperatorCost(viewer) ? value : trim(schema, value) as T
}
