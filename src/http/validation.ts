// Two Ajv instances: bodies are validated strictly (no type coercion, unknown fields
// refused), while querystrings and params, which are always strings on the wire, are
// coerced to the schema's types.
import { Ajv, type Options } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

// ajv-formats is CommonJS; under NodeNext its default export is the module object
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

const common: Options = { allErrors: false, removeAdditional: false, useDefaults: true, strict: false }

// Stricter than ajv-formats where PostgreSQL or Date would refuse what it accepts:
// a uuid is the bare 36-character form (no urn:uuid: prefix); a date-time must be a
// real instant Date can represent (no leap second :60, no year 0000).
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

export function isDateTime (value: string): boolean {
  const match = DATE_TIME.exec(value)
  if (match === null) return false
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return false
  if (day < 1 || day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return false
  return !Number.isNaN(new Date(value).getTime())
}

function makeAjv (coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ ...common, coerceTypes })
  addFormats(ajv)
  ajv.addFormat('uuid', UUID)
  // compare: IsoDateTime's formatMinimum / formatExclusiveMaximum bound instants, not strings
  ajv.addFormat('date-time', { type: 'string', validate: isDateTime, compare: (a: string, b: string) => Math.sign(Date.parse(a) - Date.parse(b)) })
  return ajv
}

/** Finds a NUL character anywhere in a parsed input: PostgreSQL cannot store one in text. */
export function containsNul (value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000')
  if (value === null || typeof value !== 'object' || depth > 32) return false
  return Object.entries(value).some(([key, item]) => key.includes('\u0000') || containsNul(item, depth + 1))
}

export function validatorCompiler (): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false)
  const coercing = makeAjv('array')
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object)
}
