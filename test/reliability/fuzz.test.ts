// A property-based fuzz of every operation of the OpenAPI document (app.swagger()).
// Each case builds a valid-shaped request from the operation's schemas, sent by the
// principal the route expects, then mutates it: hostile strings (lone surrogates,
// NUL, overlong, RTL and zero-width, %00, SQL-ish, prototype keys), numbers at and past
// every schema bound and the database's (2^31 − 1, 2^31, 2^53, 2^63, negatives,
// fractions, 1e308, -0), nesting up to 100,000 deep, wrong types, missing and unknown
// fields. Properties: no 5xx; every 4xx carries the error body; and a refusal writes
// nothing. The seed is fixed and printed (TEST_SEED replays another run);
// RELIABILITY_FUZZ_CASES sets the number of cases.
//
// "Writes nothing" is watched by a row trigger on every table but the audit log
// (refusals are audited by design) that copies each INSERT/UPDATE/DELETE into a
// test-only table, read and emptied after every call. The one write a refused call
// may make is a usage batch's receipts (gateway_events) for events that ingestion
// rejects: they are inserted and deleted in the same transaction, so only writes that
// net to zero are allowed (every inserted row deleted again, nothing updated).
// Session tokens (the principals here) are not written on use; management tokens,
// which are (last_used_at), are not used as principals.
import t from 'tap'
import pg from 'pg'
import type { LightMyRequestResponse } from 'fastify'
import { buildTestApp, GATEWAY_TOKEN, signIn } from '../helper.js'
import { mulberry32, testSeed } from '../prng.js'

const SEED = testSeed(t)
const CASES = Number(process.env.RELIABILITY_FUZZ_CASES ?? 2500)

type Rng = () => number
const int = (rng: Rng, n: number) => Math.floor(rng() * n)
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!
const hex = (rng: Rng, n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(rng, 16)]).join('')
const randomUuid = (rng: Rng) => `${hex(rng, 8)}-${hex(rng, 4)}-4${hex(rng, 3)}-${pick(rng, ['8', '9', 'a', 'b'])}${hex(rng, 3)}-${hex(rng, 12)}`
const alnum = (rng: Rng, n: number) => Array.from({ length: n }, () => 'abcdefghijklmnopqrstuvwxyz0123456789'[int(rng, 36)]).join('')

interface Schema {
  type?: string | string[]
  nullable?: boolean
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  enum?: unknown[]
  const?: unknown
  format?: string
  pattern?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  minItems?: number
  maxItems?: number
  uniqueItems?: boolean
  items?: Schema
  properties?: Record<string, Schema>
  required?: string[]
  additionalProperties?: boolean | Schema
  minProperties?: number
}
interface Parameter { in: 'path' | 'query' | 'header', name: string, required?: boolean, schema: Schema }
interface Operation { method: string, path: string, parameters: Parameter[], body?: Schema }

// ----- hostile values -----

const HOSTILE_STRINGS: readonly string[] = [
  '\ud800', '\udfff', 'a\ud800b', '\udc00\ud800', 'x\udbff', '\u0000', 'a\u0000b', 'x'.repeat(10_000), 'y'.repeat(300),
  '\u202eevil\u202c', 'a\u200b\u200c\u200db', '\ufeff', '%00', 'a%00b', "' OR 1=1 --", "'; DROP TABLE users; --", '"\\', '$1', '%s%n',
  '__proto__', 'constructor', 'prototype', '', ' ', '🦄'.repeat(64), 'ü\u0301', '../../etc/passwd', '\r\nx-injected: 1', '*', '%', '_'
]
const DB_NUMBERS: readonly number[] = [
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 63, -(2 ** 63), 2 ** 64,
  -1, 0, -0, 0.5, 1e-9, 1e-10, 1.0000000001, 1e9, 1e9 + 1, 1e15, 1e18, 1e21, 1e308, -1e308, Number.MIN_VALUE
]
const WRONG_TYPES: readonly unknown[] = [null, true, false, 0, 1, 1.5, '', 'x', [], [null], {}, { a: 1 }, ['a', 'a']]

const UNSTORABLE = ['\ud800', '\udfff', '\udc00\ud800', '\udbff', '\u0000'] as const
/** A hostile string; mostly an unstorable piece inside a string of a valid length (so that validation lets it through). */
function hostileString (rng: Rng, schema: Schema | undefined): string {
  if (rng() < 0.3) return pick(rng, HOSTILE_STRINGS)
  const length = Math.max(0, Math.min((schema?.maxLength ?? 20) - 1, Math.max((schema?.minLength ?? 0), 6)))
  const text = alnum(rng, length)
  const at = int(rng, length + 1)
  return text.slice(0, at) + pick(rng, UNSTORABLE) + text.slice(at)
}

/** A number at or just past one of the schema's bounds, or a database bound. */
function hostileNumber (rng: Rng, schema: Schema | undefined): number {
  const bounds = [schema?.minimum, schema?.maximum, schema?.exclusiveMinimum, schema?.exclusiveMaximum].filter((b): b is number => typeof b === 'number')
  if (bounds.length > 0 && rng() < 0.5) {
    const bound = pick(rng, bounds)
    return bound + pick(rng, [-1, 0, 1, -0.5, 0.5, -1e-9, 1e-9])
  }
  return pick(rng, DB_NUMBERS)
}

/** A marker replaced in the JSON text by nesting too deep for JSON.stringify to build. */
const DEEP_MARKER = '\u0001deep-nesting\u0001'
const DEEP_DEPTHS = [33, 65, 1000, 100_000] as const
function deepText (depth: number, rng: Rng): string {
  const [open, close] = pick(rng, [['[', ']'], ['{"a":', '}']] as const)
  return open.repeat(depth) + pick(rng, ['1', '"\\u0000"', '"\\ud800"', 'null']) + close.repeat(depth)
}

// ----- valid-shaped values from a schema -----

interface Fixtures {
  byName: Record<string, string[]>
  strings: Record<string, string[]>
}

interface Leaf { path: Array<string | number>, schema: Schema | undefined }

function branchesOf (schema: Schema): Schema[] | undefined {
  return schema.anyOf ?? schema.oneOf
}

function validValue (rng: Rng, schema: Schema | undefined, name: string, fx: Fixtures, leaves: Leaf[], path: Array<string | number>): unknown {
  if (schema === undefined) return { note: alnum(rng, 6) }
  if (schema.nullable === true && rng() < 0.1) return null
  const branches = branchesOf(schema)
  if (branches !== undefined) {
    const usable = branches.filter((b) => b.type !== 'null')
    return validValue(rng, pick(rng, usable.length > 0 ? usable : branches), name, fx, leaves, path)
  }
  if (schema.allOf !== undefined) return validValue(rng, schema.allOf[0], name, fx, leaves, path)
  if (schema.const !== undefined) return schema.const
  if (schema.enum !== undefined) { leaves.push({ path, schema }); return pick(rng, schema.enum) }
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type
  if (type === 'object' || (type === undefined && schema.properties !== undefined)) {
    const out: Record<string, unknown> = {}
    const required = new Set(schema.required ?? [])
    const props = Object.entries(schema.properties ?? {})
    for (const [key, sub] of props) {
      if (required.has(key) || rng() < 0.5) out[key] = validValue(rng, sub, key, fx, leaves, [...path, key])
    }
    if (Object.keys(out).length < (schema.minProperties ?? 0) && props.length > 0) {
      const [key, sub] = pick(rng, props)
      out[key] = validValue(rng, sub, key, fx, leaves, [...path, key])
    }
    if (props.length === 0 && schema.additionalProperties !== false) out[alnum(rng, 5)] = alnum(rng, 8)
    leaves.push({ path, schema })
    return out
  }
  if (type === 'array') {
    const min = schema.minItems ?? 0
    const count = Math.min(schema.maxItems ?? 3, min + int(rng, 3))
    const items = Array.from({ length: count }, (_, i) => validValue(rng, schema.items, name, fx, leaves, [...path, i]))
    leaves.push({ path, schema })
    return schema.uniqueItems === true && items.every((x) => typeof x === 'string') ? items.map((x, i) => `${x as string}${i}`.slice(0, schema.items?.maxLength ?? 200)) : items
  }
  leaves.push({ path, schema })
  if (type === 'integer' || type === 'number') {
    const lo = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (type === 'integer' ? 1 : 0.5) : 0)
    const hi = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : Math.max(lo, 1000))
    const n = pick(rng, [lo, hi, lo + (hi - lo) * rng(), Math.min(hi, lo + 1), Math.min(hi, Math.max(lo, 10))])
    return type === 'integer' ? Math.max(Math.ceil(lo), Math.min(Math.floor(hi), Math.round(n))) : n
  }
  if (type === 'boolean') return rng() < 0.5
  // strings
  const known = fx.byName[name]
  if (schema.format === 'uuid') return known !== undefined && rng() < 0.8 ? pick(rng, known) : randomUuid(rng)
  if (schema.format === 'date-time') return new Date(Date.now() - int(rng, 30 * 86_400_000)).toISOString()
  if (schema.format === 'date') return new Date(Date.now() - int(rng, 30 * 86_400_000)).toISOString().slice(0, 10)
  if (schema.format === 'email') return `fuzz-${alnum(rng, 8)}@example.com`
  if (schema.format === 'uri') return `https://${alnum(rng, 6)}.example.com/v1`
  const strings = fx.strings[name]
  if (strings !== undefined && rng() < 0.7) return pick(rng, strings)
  const min = schema.minLength ?? 0
  const max = schema.maxLength ?? 40
  return alnum(rng, Math.max(min, Math.min(max, 4 + int(rng, 12))))
}

// ----- a case: an operation, its principal, its valid-shaped request and its mutations -----

interface Case { method: string, url: string, headers: Record<string, string>, payload?: string, kinds: string[] }

/** percent-encodes what encodeURIComponent cannot (a lone surrogate: as the bytes a CESU-8 encoder would send) */
function encode (value: string): string {
  let out = ''
  for (const char of value) {
    const code = char.charCodeAt(0)
    out += char.length === 1 && code >= 0xd800 && code <= 0xdfff
      ? [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('')
      : encodeURIComponent(char)
  }
  return out
}

/** The container at `path`, or undefined where an earlier mutation replaced it with something else. */
function containerAt (root: unknown, path: Array<string | number>): Record<string | number, unknown> | undefined {
  let at = root
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined
    at = (at as Record<string | number, unknown>)[key]
  }
  return at !== null && typeof at === 'object' ? at as Record<string | number, unknown> : undefined
}

function setAt (root: unknown, path: Array<string | number>, value: unknown): unknown {
  if (path.length === 0) return value
  const parent = containerAt(root, path.slice(0, -1))
  if (parent !== undefined) parent[path[path.length - 1]!] = value
  return root
}

function buildCase (rng: Rng, op: Operation, principals: Record<string, Record<string, string>>, fx: Fixtures): Case {
  const kinds: string[] = []
  const leaves: Leaf[] = []
  const pathValues: Record<string, string> = {}
  const query: Record<string, string> = {}
  for (const p of op.parameters) {
    const value = validValue(rng, p.schema, p.name === 'id' ? idName(op.path) : p.name, fx, [], [])
    if (p.in === 'path') pathValues[p.name] = String(value)
    else if (p.in === 'query' && (p.required === true || rng() < 0.5)) query[p.name] = Array.isArray(value) ? value.join(',') : String(value)
  }
  let body: unknown = op.body === undefined ? undefined : validValue(rng, op.body, '', fx, leaves, [])
  let deep: string | undefined

  // mostly one mutation: the rest of the request stays valid, so the mutation is what the app meets
  const mutations = pick(rng, [0, 1, 1, 1, 1, 1, 1, 2, 2, 3])
  for (let m = 0; m < mutations; m++) {
    const where = pick(rng, ['body', 'body', 'body', 'query', 'path'] as const)
    if (where === 'path' && Object.keys(pathValues).length > 0) {
      const name = pick(rng, Object.keys(pathValues))
      pathValues[name] = encode(rng() < 0.8 ? pick(rng, HOSTILE_STRINGS) : String(hostileNumber(rng, undefined)))
      kinds.push('path')
    } else if (where === 'query' && op.parameters.some((p) => p.in === 'query')) {
      const param = pick(rng, op.parameters.filter((p) => p.in === 'query'))
      query[param.name] = rng() < 0.5 ? pick(rng, HOSTILE_STRINGS) : pick(rng, [String(hostileNumber(rng, param.schema)), '-0', '1e400', 'NaN', 'Infinity', '0x10', '1_000'])
      kinds.push('query')
    } else if (body !== undefined && leaves.length > 0) {
      const kind = pick(rng, ['string', 'string', 'string', 'number', 'number', 'deep', 'wrong-type', 'proto', 'unknown', 'drop'] as const)
      // a hostile string or number goes where the schema takes one, so that it passes validation and reaches the database
      const typed = leaves.filter((l) => kind === 'string' ? l.schema?.type === 'string' : kind === 'number' ? l.schema?.type === 'number' || l.schema?.type === 'integer' : true)
      const leaf = pick(rng, typed.length > 0 ? typed : leaves)
      const parent = leaf.path.length === 0 ? undefined : leaf.path.slice(0, -1)
      if (kind === 'string') body = setAt(body, leaf.path, hostileString(rng, leaf.schema))
      else if (kind === 'number') body = setAt(body, leaf.path, hostileNumber(rng, leaf.schema))
      else if (kind === 'wrong-type') body = setAt(body, leaf.path, pick(rng, WRONG_TYPES))
      else if (kind === 'deep' && deep === undefined) {
        deep = deepText(pick(rng, DEEP_DEPTHS), rng)
        body = setAt(body, leaf.path, DEEP_MARKER)
      } else if (kind === 'proto' || kind === 'unknown') {
        const target = containerAt(body, leaf.path)
        if (target !== undefined && !Array.isArray(target)) {
          const key = kind === 'proto' ? pick(rng, ['__proto__', 'constructor', 'prototype']) : pick(rng, ['__fuzz', 'is_admin', '\ud800', 'a\u0000b', '', '$where'])
          Object.defineProperty(target, key, { value: kind === 'proto' ? JSON.parse('{"__proto__":{"isAdmin":true},"prototype":{"x":1}}') : 1, enumerable: true, configurable: true, writable: true })
        }
      } else if (kind === 'drop' && parent !== undefined) {
        const target = containerAt(body, parent)
        if (target !== undefined) delete (target as Record<string | number, unknown>)[leaf.path[leaf.path.length - 1]!]
      }
      kinds.push(`body-${kind}`)
    }
  }

  const principalName = principalFor(op.path)
  // sign-out revokes the token it is sent with: sent by a principal, it would end every later case of that principal
  const wrongPrincipal = op.path !== '/api/auth/logout' && rng() < 0.08
  const headers: Record<string, string> = { ...(wrongPrincipal ? pick(rng, Object.values(principals)) : principals[principalName]) }
  if (wrongPrincipal) kinds.push('other-principal')
  let payload: string | undefined
  if (body !== undefined) {
    payload = JSON.stringify(body)
    if (deep !== undefined) payload = payload.replace(JSON.stringify(DEEP_MARKER), deep)
    headers['content-type'] = 'application/json'
  }
  const url = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => pathValues[name] ?? randomUuid(rng))
  const qs = Object.entries(query).map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')
  return { method: op.method, url: qs === '' ? url : `${url}?${qs}`, headers, ...(payload !== undefined && { payload }), kinds }
}

/** the fixture a path's `id` parameter names */
function idName (path: string): string {
  if (path.startsWith('/api/users/me/api-keys')) return 'own_key_id'
  if (path.startsWith('/api/admin/users/{user_id}/api-keys')) return 'user_key_id'
  if (path.startsWith('/api/admin/users')) return 'user_id'
  if (path.startsWith('/api/admin/api-keys')) return 'standalone_key_id'
  if (path.startsWith('/api/admin/providers')) return 'provider_id'
  if (path.startsWith('/api/admin/model-prices')) return 'price_id'
  return 'unknown_id'
}

function principalFor (path: string): string {
  if (path.startsWith('/api/admin')) return 'admin'
  if (path.startsWith('/api/users/me') || path === '/api/auth/me') return 'user'
  if (path.startsWith('/api/gateway')) return 'gateway'
  if (path.startsWith('/api/key-stats')) return 'apiKey'
  return 'anonymous'
}

/** Why this answer breaks a property, or null. */
function problemWith (res: LightMyRequestResponse): string | null {
  if (res.statusCode >= 500) return `status ${res.statusCode}`
  if (res.statusCode < 400) return null
  let body: { error?: { type?: unknown, message?: unknown }, request_id?: unknown }
  try { body = res.json() } catch { return 'a 4xx body that is not JSON' }
  if (typeof body.error?.type !== 'string' || typeof body.error.message !== 'string') return '4xx without {error: {type, message}}'
  if (typeof body.request_id !== 'string' || body.request_id !== res.headers['x-request-id']) return '4xx without the request_id of x-request-id'
  return null
}

interface Write { tbl: string, op: string, row: string }
/** The writes left once every inserted row deleted again in the same call is taken out. */
function netWrites (writes: Write[]): Write[] {
  const inserted = new Map<string, number>()
  for (const w of writes) if (w.op === 'INSERT') inserted.set(`${w.tbl}|${w.row}`, (inserted.get(`${w.tbl}|${w.row}`) ?? 0) + 1)
  const left: Write[] = []
  for (const w of writes) {
    const key = `${w.tbl}|${w.row}`
    if (w.op === 'DELETE' && (inserted.get(key) ?? 0) > 0) inserted.set(key, inserted.get(key)! - 1)
    else if (w.op !== 'INSERT') left.push(w)
  }
  for (const w of writes) {
    const key = `${w.tbl}|${w.row}`
    if (w.op === 'INSERT' && (inserted.get(key) ?? 0) > 0) { left.push(w); inserted.set(key, inserted.get(key)! - 1) }
  }
  return left
}

t.test(`${CASES} fuzzed requests over every OpenAPI operation: no 5xx, the error body on every 4xx, no write by a refusal (seed ${SEED}; replay with TEST_SEED=${SEED})`, async (t) => {
  const { app, url } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const call = async (method: 'POST' | 'PUT', path: string, payload: object) => {
    const res = await app.inject({ method, url: path, headers: admin.headers, payload })
    if (res.statusCode >= 300) throw new Error(`${method} ${path} → ${res.statusCode} ${res.body}`)
    return res.json()
  }
  // the catalogue the valid-shaped requests refer to; principals are never the targets of the admin routes
  const target = await call('POST', '/api/admin/users', { username: 'fuzz-target', password: 'correct-horse-battery', quota_usd: 100 })
  const userKey = await call('POST', `/api/admin/users/${target.id}/api-keys`, { name: 'target-key' })
  const standalone = await call('POST', '/api/admin/api-keys', { name: 'fuzz-standalone', initial_balance_usd: 5 })
  const statsKey = await call('POST', '/api/admin/api-keys', { name: 'fuzz-key-stats', initial_balance_usd: 5 })
  const ownKey = await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'own' } }).then((r) => r.json())
  const provider = await call('POST', '/api/admin/providers', { name: 'fuzz-provider', billing_type: 'pay_as_you_go' })
  const endpoint = await call('POST', `/api/admin/providers/${provider.id}/endpoints`, { api_format: 'openai:chat', base_url: 'https://api.example.com' })
  const providerKey = await call('POST', `/api/admin/providers/${provider.id}/keys`, { name: 'fuzz-pk', secret: 'sk-provider-secret-fuzz-0123', rate_multiplier: 1000 })
  // the dearest price a schema allows, so a fuzzed completion can reach int8 costs
  const price = await call('POST', '/api/admin/model-prices', { model: 'fuzz-model', tiers: [{ up_to: null, input: 1e6, output: 1e6 }], price_per_request_usd: 1e6, effective_from: '2020-01-01T00:00:00Z' })
  const usage = await app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { events: [{ type: 'complete', request_id: 'fuzz-seed-request', api_key_id: userKey.id, model: 'fuzz-model', status: 'completed', input_tokens: 10, output_tokens: 10 }] } })
  t.equal(usage.statusCode, 200, 'a usage row to read')
  const usageRow = await app.prisma.usage.findFirstOrThrow({ where: { requestId: 'fuzz-seed-request' } })

  const fx: Fixtures = {
    byName: {
      user_id: [target.id], user_key_id: [userKey.id], standalone_key_id: [standalone.id], own_key_id: [ownKey.id],
      api_key_id: [userKey.id, standalone.id, ownKey.id], provider_id: [provider.id], endpoint_id: [endpoint.id], provider_endpoint_id: [endpoint.id],
      key_id: [providerKey.id], provider_api_key_id: [providerKey.id], price_id: [price.id], usage_id: [usageRow.id]
    },
    strings: {
      model: ['fuzz-model'], api_format: ['openai:chat'], key: [statsKey.key], api_key: [statsKey.key], apiKey: [statsKey.key],
      provider: ['fuzz-provider'], timezone: ['UTC', 'Europe/Paris'], email: ['admin', 'nobody'], ids: ['fuzz-seed-request']
    }
  }
  const principals: Record<string, Record<string, string>> = {
    admin: admin.headers, user: user.headers, gateway: { authorization: `Bearer ${GATEWAY_TOKEN}` },
    apiKey: { authorization: `Bearer ${statsKey.key as string}` }, anonymous: {}
  }

  // the write watch: a row trigger on every table but the audit log
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  t.teardown(() => db.end())
  await db.query(`
    CREATE TABLE fuzz_writes (tbl text NOT NULL, op text NOT NULL, row text NOT NULL);
    CREATE FUNCTION fuzz_record_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO fuzz_writes VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD)::text ELSE to_jsonb(NEW)::text END);
      RETURN NULL;
    END $$;`)
  const { rows: tables } = await db.query<{ name: string }>(`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname NOT IN ('audit_logs', 'fuzz_writes', '_prisma_migrations')`)
  for (const { name } of tables) {
    await db.query(`CREATE TRIGGER fuzz_watch AFTER INSERT OR UPDATE OR DELETE ON "${name}" FOR EACH ROW EXECUTE FUNCTION fuzz_record_write()`)
  }
  t.ok(tables.length > 20, `${tables.length} tables watched`)

  const doc = app.swagger() as { paths: Record<string, Record<string, { parameters?: Parameter[], requestBody?: { content?: Record<string, { schema?: Schema }> } }>> }
  const operations: Operation[] = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({
    method: method.toUpperCase(), path, parameters: op.parameters ?? [], body: op.requestBody?.content?.['application/json']?.schema
  })))
  t.ok(operations.length >= 70, `${operations.length} operations in the OpenAPI document`)

  const rng = mulberry32(SEED)
  const failures: string[] = []
  const statuses = new Map<number, number>()
  const kindsSeen = new Map<string, number>()
  for (let n = 0; n < CASES; n++) {
    const op = operations[n % operations.length]!
    const fuzzed = buildCase(rng, op, principals, fx)
    for (const kind of fuzzed.kinds) kindsSeen.set(kind, (kindsSeen.get(kind) ?? 0) + 1)
    const res = await app.inject({ method: fuzzed.method as 'GET', url: fuzzed.url, headers: fuzzed.headers, ...(fuzzed.payload !== undefined && { payload: fuzzed.payload }) })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    const { rows: writes } = await db.query<Write>('DELETE FROM fuzz_writes RETURNING tbl, op, row')
    const describe = () => `#${n} ${fuzzed.method} ${fuzzed.url.slice(0, 120)} [${fuzzed.kinds.join(', ')}]${fuzzed.payload === undefined ? '' : ` body ${JSON.stringify(fuzzed.payload.slice(0, 160))}`} → ${res.statusCode} ${res.body.slice(0, 200)}`
    const problem = problemWith(res)
    if (problem !== null) failures.push(`${problem}: ${describe()}`)
    // a batch whose every event was rejected is a refusal too
    const allRejected = op.path === '/api/gateway/usage' && res.statusCode === 200 && (res.json().results as Array<{ outcome: string }>).every((r) => r.outcome === 'rejected')
    if (res.statusCode >= 400 || allRejected) {
      const left = netWrites(writes)
      if (left.length > 0) failures.push(`a refusal wrote ${left.map((w) => `${w.op} ${w.tbl}`).join(', ')}: ${describe()}`)
    }
  }
  t.comment(`statuses: ${[...statuses].sort(([a], [b]) => a - b).map(([s, c]) => `${s}×${c}`).join(' ')}`)
  t.comment(`mutations: ${[...kindsSeen].sort().map(([k, c]) => `${k}×${c}`).join(' ')}`)
  t.same(failures.slice(0, 25), [], `no 5xx, every 4xx with the error body, no write by a refusal (${failures.length} failures)`)
  const accepted = [...statuses].filter(([s]) => s < 300).reduce((sum, [, c]) => sum + c, 0)
  t.ok(accepted > CASES / 20, `valid-shaped requests get through too (${accepted} answered 2xx)`)
})
