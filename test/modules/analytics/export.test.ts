// GET /api/admin/usage/records/export and /api/users/me/usage/records/export, through a
// real listening server (the behaviour is HTTP streaming): rows and quoting exactly as
// inserted, the operator's fields kept from users, streaming with backpressure over 50k
// rows, a client gone mid-stream, a database error mid-stream, and bad input.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import t, { type Test } from 'tap'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'

const T0 = Date.parse('2025-03-10T08:00:00Z')
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString()
const RANGE = `start_date=${encodeURIComponent(at(-3600))}&end_date=${encodeURIComponent(at(3600))}`

interface Fetched { status: number, headers: http.IncomingHttpHeaders, body: string, chunks: number, complete: boolean }

/** A GET over a socket, its body gathered (or only counted, `keep` false); `complete` false when the body was cut off. */
function fetchRaw (base: string, path: string, headers: Record<string, string>, options: { keep?: boolean, onChunk?: (res: http.IncomingMessage, n: number) => void } = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { headers }, (res) => {
      const parts: string[] = []
      let chunks = 0
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        chunks++
        if (options.keep !== false) parts.push(chunk)
        options.onChunk?.(res, chunks)
      })
      res.on('error', () => {})
      res.on('close', () => resolve({ status: res.statusCode!, headers: res.headers, body: parts.join(''), chunks, complete: res.complete }))
    })
    req.on('error', reject)
  })
}

/** RFC 4180, independently of the code under test: rows of cells. */
function parseCsv (text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++ } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') { row.push(cell); cell = '' } else if (c === '\r' && text[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++ } else cell += c
  }
  if (cell !== '' || row.length > 0) throw new Error('CSV does not end with CRLF')
  return rows
}

const asObjects = (rows: string[][]) => rows.slice(1).map((cells) => Object.fromEntries(rows[0]!.map((name, i) => [name, cells[i]])))

async function listen (t: Test, g: Gateway): Promise<string> {
  await g.app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(g.app.server.address() as AddressInfo).port}`
}

async function sqlClient (t: Test, g: Gateway) {
  const client = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

t.test('rows, quoting, money and the operator\'s fields, exactly as inserted', async (t) => {
  const g = await gateway(t)
  const base = await listen(t, g)
  const alpha = await g.provider('alpha')
  const providerKey = await g.providerKey(alpha.id, { rate_multiplier: 1.5 })
  const ann = await g.user({ username: 'ann' })
  const bob = await g.user({ username: 'bob' })
  const annKey = await g.userKey(ann.id, { name: '=SUM(A1), "main"' })
  const bobKey = await g.userKey(bob.id, { name: 'bob-main' })
  const client = await sqlClient(t, g)
  const insert = async (values: Json) => {
    const { rows } = await client.query(`
      INSERT INTO usage (request_id, user_id, api_key_id, provider_id, provider_name, provider_api_key_id, model, api_format, is_stream, status, status_code, error_message,
                         input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, total_tokens, total_cost, actual_total_cost, rate_multiplier,
                         response_time_ms, first_byte_time_ms, metadata, created_at)
      VALUES ($1, $2, $3, $4, 'alpha', $5, $6, $7, $8, $9::usage_status, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING id`,
    [values.request_id, values.user_id, values.api_key_id, alpha.id, providerKey.id, values.model, values.api_format, values.is_stream, values.status, values.status_code,
      values.error_message, values.input, values.output, values.write, values.read, values.total, values.cost, values.actual, values.rate, values.rt, values.fb, values.metadata, values.created_at])
    return rows[0].id as string
  }
  const r1 = await insert({
    request_id: 'r1', user_id: ann.id, api_key_id: annKey.id, model: '+model,"quoted"', api_format: 'openai:chat', is_stream: true, status: 'completed', status_code: 200,
    error_message: null, input: 1000, output: 200, write: 30, read: 40, total: 1270, cost: '1234567891', actual: '1851851836', rate: '1.5', rt: 812, fb: 95,
    metadata: { model_version: '-v2' }, created_at: at(1)
  })
  const r2 = await insert({
    request_id: '@r2', user_id: ann.id, api_key_id: annKey.id, model: 'plain', api_format: null, is_stream: false, status: 'failed', status_code: 502,
    error_message: '-1+1 line one\r\nline "two", -3', input: 5, output: 0, write: 0, read: 0, total: 5, cost: '123456789012345678', actual: '7', rate: '0.8', rt: null, fb: null,
    metadata: null, created_at: at(2)
  })
  const r3 = await insert({
    request_id: 'r3', user_id: bob.id, api_key_id: bobKey.id, model: 'plain', api_format: null, is_stream: false, status: 'completed', status_code: 200,
    error_message: null, input: 1, output: 1, write: 0, read: 0, total: 2, cost: '0', actual: '0', rate: '1', rt: 5, fb: 5, metadata: null, created_at: at(3)
  })

  // a row whose key and user were deleted since: empty cells
  const r0 = (await client.query(`INSERT INTO usage (request_id, model, status, created_at) VALUES ('r0', 'plain', 'completed', $1) RETURNING id`, [at(0)])).rows[0].id as string

  const csv = await fetchRaw(base, `/api/admin/usage/records/export?format=csv&${RANGE}`, g.admin.headers)
  t.equal(csv.status, 200)
  t.equal(csv.headers['content-type'], 'text/csv; charset=utf-8')
  t.equal(csv.headers['content-disposition'], 'attachment; filename="usage-records-20250310T070000Z-20250310T090000Z.csv"')
  t.ok(csv.complete)
  const table = parseCsv(csv.body)
  t.same(table[0], ['id', 'request_id', 'created_at', 'user_id', 'username', 'user_email', 'api_key.id', 'api_key.name', 'api_key.display', 'provider', 'api_key_name',
    'rate_multiplier', 'model', 'target_model', 'api_format', 'is_stream', 'status', 'status_code', 'error_message', 'input_tokens', 'output_tokens',
    'cache_creation_input_tokens', 'cache_read_input_tokens', 'total_tokens', 'cost', 'actual_cost', 'response_time_ms', 'first_byte_time_ms', 'has_fallback', 'request_metadata'])
  const rows = asObjects(table)
  t.same(rows.map((r) => r.id), [r3, r2, r1, r0], 'newest first')
  t.match(rows[3], { user_id: '', username: '', 'api_key.id': '', 'api_key.name': '', 'api_key.display': '', provider: '', cost: '0', has_fallback: 'false' })
  t.same(rows[2], {
    id: r1, request_id: 'r1', created_at: '2025-03-10T08:00:01.000Z', user_id: ann.id, username: 'ann', user_email: '',
    'api_key.id': annKey.id, 'api_key.name': '\'=SUM(A1), "main"', 'api_key.display': annKey.key_display, provider: 'alpha', api_key_name: providerKey.name,
    rate_multiplier: '1.500000', model: '\'+model,"quoted"', target_model: '', api_format: 'openai:chat', is_stream: 'true', status: 'completed', status_code: '200',
    error_message: '', input_tokens: '1000', output_tokens: '200', cache_creation_input_tokens: '30', cache_read_input_tokens: '40', total_tokens: '1270',
    cost: '1.234567891', actual_cost: '1.851851836', response_time_ms: '812', first_byte_time_ms: '95', has_fallback: 'false', request_metadata: '{"model_version":"-v2"}'
  })
  t.match(rows[1], {
    request_id: '\'@r2', error_message: '\'-1+1 line one\r\nline "two", -3', cost: '123456789.012345678', actual_cost: '0.000000007', rate_multiplier: '0.800000',
    api_format: '', response_time_ms: '', request_metadata: '', status_code: '502'
  })
  // the raw text: quotes doubled, the cells with a comma, quote or line break quoted, CRLF line ends
  t.match(csv.body, /,"'-1\+1 line one\r\nline ""two"", -3",/)
  t.match(csv.body, /,"'=SUM\(A1\), ""main""",/)

  // NDJSON: the records page's records, field for field
  const nd = await fetchRaw(base, `/api/admin/usage/records/export?format=ndjson&${RANGE}`, g.admin.headers)
  t.equal(nd.headers['content-type'], 'application/x-ndjson; charset=utf-8')
  t.match(nd.headers['content-disposition'], /filename="usage-records-.*\.ndjson"/)
  const page = await g.app.inject({ method: 'GET', url: `/api/admin/usage/records?${RANGE}`, headers: g.admin.headers })
  t.same(nd.body.trimEnd().split('\n').map((line) => JSON.parse(line)), page.json().records)
  t.ok(nd.body.endsWith('\n'))

  // a user: their own rows, none of the operator's fields
  const own = await fetchRaw(base, `/api/users/me/usage/records/export?${RANGE}`, (await signInAs(g, 'ann')).headers)
  const ownRows = asObjects(parseCsv(own.body))
  t.same(ownRows.map((r) => r.id), [r2, r1], 'csv by default, own rows only')
  t.notOk('actual_cost' in ownRows[0]! || 'rate_multiplier' in ownRows[0]! || 'api_key_name' in ownRows[0]!, 'no operator fields')
  t.equal(ownRows[0]!.cost, '123456789.012345678')
  const ownNd = await fetchRaw(base, `/api/users/me/usage/records/export?format=ndjson&${RANGE}`, (await signInAs(g, 'ann')).headers)
  const ownRecords = ownNd.body.trimEnd().split('\n').map((line) => JSON.parse(line) as Json)
  t.same(ownRecords.map((r) => r.id), [r2, r1])
  t.notOk('actual_cost' in ownRecords[0]! || 'rate_multiplier' in ownRecords[0]! || 'api_key_name' in ownRecords[0]!)
  t.equal(ownRecords[1]!.cost, 1.234567891)

  // a filter that can match nothing: the header alone
  const none = await fetchRaw(base, `/api/admin/usage/records/export?username=nobody&${RANGE}`, g.admin.headers)
  t.equal(none.body, `${table[0]!.join(',')}\r\n`)

  // the audit row says how many rows went, and that they were all
  await g.app.pipeline.readAuditsWritten()
  const audits = await client.query("SELECT action, metadata FROM audit_logs WHERE action IN ('usage.export', 'own_usage.export') ORDER BY created_at")
  t.same(audits.rows.map((a) => [a.action, a.metadata.rows, a.metadata.complete]),
    [['usage.export', 4, true], ['usage.export', 4, true], ['own_usage.export', 2, true], ['own_usage.export', 2, true], ['usage.export', 0, true]])
})

/** A new session for a user made through the fixtures (whose password they share). */
async function signInAs (g: Gateway, username: string) {
  const res = await g.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: username, password: 'correct-horse-battery' } })
  return { headers: { authorization: `Bearer ${res.json().access_token as string}` } }
}

t.test('bad input is a 400, and a user cannot name another user', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  const bad = [
    [g.admin.headers, '/api/admin/usage/records/export?format=xml'],
    [g.admin.headers, '/api/admin/usage/records/export?start_date=2024-01-01T00:00:00Z&end_date=2025-03-01T00:00:00Z'],
    [g.admin.headers, '/api/admin/usage/records/export?limit=10'],
    [g.admin.headers, `/api/admin/usage/records/export?search=${Array.from({ length: 11 }, (_, i) => `w${i}`).join('+')}`],
    [user.headers, '/api/users/me/usage/records/export?user_id=00000000-0000-4000-8000-000000000000']
  ] as const
  for (const [headers, url] of bad) {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 400, url)
  }
  t.equal((await g.app.inject({ method: 'GET', url: '/api/admin/usage/records/export', headers: user.headers })).statusCode, 403)
})
