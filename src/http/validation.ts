// Two Ajv instances: bodies are validated strictly (no type coercion, unknown fields
// refused), while querystrings and params, which are always strings on the wire, are
// coerced to the schema's types.
import { Ajv, type Options } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import { UUID_PATTERN } from '../lib/crypto.js'

// ajv-formats is CommonJS; under NodeNext its default export is the module object
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

const common: Options = { allErrors: false, removeAdditional: false, useDefaults: true, strict: false }

// Stricter than ajv-formats where PostgreSQL or Date would refuse what it accepts:
// a uuid is the bare 36-character form (no urn:uuid: prefix); a date-time must be a
// real instant Date can represent (no leap second :60, no year 0000).
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
  ajv.addFormat('uuid', UUID_PATTERN)
  // compare: IsoDateTime's formatMinimum / formatExclusiveMaximum bound instants, not strings
  ajv.addFormat('date-time', { type: 'string', validate: isDateTime, compare: (a: string, b: string) => Math.sign(Date.parse(a) - Date.parse(b)) })
  return ajv
}

/** Deepest JSON nesting accepted anywhere; deeper input is refused before anything recurses into it (JSON.stringify, jsonb). */
export const MAX_JSON_DEPTH = 64

// ES2024's String methods (Node 20 has them; the ES2022 lib does not declare them)
type WellFormed = string & { isWellFormed: () => boolean, toWellFormed: () => string }

/** A key as it may appear in an error message, audit row or log: no NUL, no lone surrogate. */
const printable = (key: string) => (key as WellFormed).toWellFormed().replaceAll('\u0000', '\\u0000')

export interface Unstorable { path: string, reason: string }

/** Why a string cannot be stored as PostgreSQL text or jsonb, or null when it can. */
export function textProblem (text: string): string | null {
  if (text.includes('\u0000')) return 'contains a NUL character'
  // the driver would store U+FFFD for a lone surrogate (a different string), and jsonb refuses its escape
  if (!(text as WellFormed).isWellFormed()) return 'contains a lone surrogate (not well-formed UTF-16)'
  return null
}

/**
 * The first string (value or key) in a parsed input that the database cannot store, or
 * the first place nested deeper than `maxDepth`. Walks with its own stack, so input
 * nested 100,000 deep is refused without overflowing the call stack.
 */
export function findUnstorable (value: unknown, root: string, maxDepth = MAX_JSON_DEPTH): Unstorable | null {
  interface Node { value: unknown, depth: number, key: string, parent: Node | null }
  // paths are built only for a refusal: a large usage batch is walked on every ingestion
  const pathOf = (node: Node): string => {
    const keys: string[] = []
    for (let at: Node | null = node; at !== null; at = at.parent) keys.push(at.parent === null ? root : printable(at.key))
    return keys.reverse().join('.')
  }
  const stack: Node[] = [{ value, depth: 0, key: root, parent: null }]
  while (stack.length > 0) {
    const node = stack.pop()!
    if (typeof node.value === 'string') {
      const reason = textProblem(node.value)
      if (reason !== null) return { path: pathOf(node), reason }
      continue
    }
    if (node.value === null || typeof node.value !== 'object') continue
    if (node.depth >= maxDepth) return { path: pathOf(node), reason: `is nested deeper than ${maxDepth} levels` }
    for (const key in node.value) {
      if (!Object.hasOwn(node.value, key)) continue
      const reason = textProblem(key)
      if (reason !== null) return { path: pathOf(node), reason: `has a key that ${reason}` }
      stack.push({ value: (node.value as Record<string, unknown>)[key], depth: node.depth + 1, key, parent: node })
    }
  }
  return null
}

export function validatorCompiler (): FastifySchemaCompiler<unknown> {
  const strict = makeAjv(false)
  const coercing = makeAjv('array')
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object)
}
