// Issue 14, item 2: every date the API accepts is an instant in the years 2000–2999
// (UTC), checked by the one IsoDateTime schema, so a date outside is a 400 naming the
// field; ranges and day lists compare instants (numbers), never ISO strings, which
// sort wrongly past year 9999 and looped a key's stats forever.
import t from 'tap'
import { datesBetween } from '../../src/lib/time.js'
import { createDatabase } from '../helper.js'
import { gateway, LONG_AGO } from '../modules/gateway/fixtures.js'
import { spawnServer } from './input-server.js'

const OUTSIDE = [
  '9999-12-31T23:59:59Z',
  '3000-01-01T00:00:00Z',
  '1999-12-31T23:59:59Z',
  '0999-12-31T00:00:00Z',
  // an instant before 2000 although its local year is 2000: compared as instants
  '2000-01-01T00:30:00+01:00'
]

t.test('GET a key\'s stats ending 9999-12-31 answers 400 at once and the server keeps serving', async (t) => {
  const url = await createDatabase(t)
  const server = await spawnServer(t, url)
  await server.listening()
  const headers = await server.admin()
  const key = await (await fetch(`${server.base}/api/admin/api-keys`, {
    method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'far-future' })
  })).json() as { id: string }
  // a hang (the server's loop) fails here within 15 s instead of stalling the suite
  const res = await fetch(`${server.base}/api/admin/api-keys/${key.id}/stats?end_date=9999-12-31T23:59:59Z`, { headers, signal: AbortSignal.timeout(15_000) })
  t.equal(res.status, 400)
  const body = await res.json() as { error: { type: string, field: string } }
  t.equal(body.error.type, 'validation_error')
  t.equal(body.error.field, 'querystring.end_date')
  const health = await fetch(`${server.base}/health`, { signal: AbortSignal.timeout(5_000) })
  t.equal(health.status, 200, 'the server still answers')
  const stats = await fetch(`${server.base}/api/admin/api-keys/${key.id}/stats?end_date=2999-12-31T23:59:59Z&timezone=Pacific/Kiritimati`, { headers, signal: AbortSignal.timeout(15_000) })
  t.equal(stats.status, 200, 'the last accepted instant, in a zone where it is already year 3000')
  const days = (await stats.json() as { daily_stats: Array<{ date: string }> }).daily_stats.map((d) => d.date)
  t.equal(days.length, 31)
  t.equal(days.at(-1), '3000-01-01')
})

t.test('every date input refuses an instant outside 2000–2999 with a 400 naming the field', async (t) => {
  const g = await gateway(t)
  const { app, admin } = g
  const key = await g.standaloneKey()
  const user = await g.user()
  const provider = await g.provider('dated')
  const providerKey = await g.providerKey(provider.id)
  const price = await g.price({ model: 'dated-model', tiers: [{ up_to: null, input: 1, output: 2 }] })
  const token = (await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: admin.headers, payload: { name: 'dated' } }))

  t.equal(token.statusCode, 201)
  const query = (path: string, field: string) => (date: string) => ({ method: 'GET' as const, url: `${path}${path.includes('?') ? '&' : '?'}${field}=${encodeURIComponent(date)}`, field: `querystring.${field}` })
  const body = (method: 'POST' | 'PUT', url: string, field: string, rest: object = {}) => (date: string) => ({ method, url, payload: { ...rest, [field]: date }, field: `body.${field}` })
  const inputs = [
    ...['start_date', 'end_date'].flatMap((f) => [
      query(`/api/admin/api-keys/${key.id}/stats`, f),
      query('/api/admin/usage/stats', f),
      query('/api/admin/usage/aggregation/stats?group_by=model', f),
      query('/api/admin/usage/records', f),
      query('/api/users/me/usage/stats', f),
      query('/api/users/me/usage/records', f),
      query('/api/admin/audit-logs', f)
    ]),
    body('POST', '/api/admin/api-keys', 'expires_at', { name: 'k' }),
    body('PUT', `/api/admin/api-keys/${key.id}`, 'expires_at'),
    body('POST', `/api/admin/users/${user.id}/api-keys`, 'expires_at', { name: 'k' }),
    body('PUT', `/api/admin/users/${user.id}/api-keys/${key.id}`, 'expires_at'),
    body('POST', '/api/users/me/management-tokens', 'expires_at', { name: 't' }),
    body('POST', `/api/admin/providers/${provider.id}/keys`, 'expires_at', { name: 'p', secret: 'sk-provider-secret-dated-abcdef' }),
    body('PUT', `/api/admin/providers/${provider.id}/keys/${providerKey.id}`, 'expires_at'),
    body('POST', '/api/admin/model-prices', 'effective_from', { model: 'other-model', tiers: [{ up_to: null, input: 1, output: 2 }] }),
    body('PUT', `/api/admin/model-prices/${price.id}`, 'effective_from')
  ]
  for (const input of inputs) {
    for (const date of OUTSIDE) {
      const { field, ...request } = input(date)
      const res = await app.inject({ ...request, headers: admin.headers })
      t.equal(res.statusCode, 400, `${request.method} ${request.url} ${field}=${date}`)
      t.match(res.json(), { error: { type: 'validation_error', field, message: /should be (>=|<) (2000|3000)-01-01T00:00:00Z$/ }, request_id: String })
    }
  }
  t.equal((await app.prisma.apiKey.count()), 1, 'no key was created or changed')
  t.equal((await app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })).expiresAt, null)

  // the gateway's event times: the batch is refused whole, nothing recorded
  const start = { type: 'start', request_id: 'dated-1', api_key_id: key.id, model: 'dated-model' }
  for (const date of OUTSIDE) {
    for (const event of [
      { ...start, created_at: date },
      { type: 'complete', request_id: 'dated-1', api_key_id: key.id, model: 'dated-model', status: 'completed', input_tokens: 1, output_tokens: 1, finished_at: date },
      { type: 'complete', request_id: 'dated-1', api_key_id: key.id, model: 'dated-model', status: 'completed', input_tokens: 1, output_tokens: 1, candidates: [{ candidate_index: 0, status: 'success', started_at: date }] }
    ]) {
      const res = await g.usage([event])
      t.equal(res.statusCode, 400, `usage event ${JSON.stringify(event)}`)
      t.match(res.json(), { error: { type: 'validation_error', field: /^body\.events/ } })
    }
  }
  t.equal(await app.prisma.usage.count(), 0, 'no usage recorded')

  // the bounds themselves are accepted (as instants, whatever the offset)
  t.equal((await g.usage([{ ...start, created_at: LONG_AGO }])).statusCode, 200)
  for (const [date, status] of [['2000-01-01T00:00:00Z', 200], ['3000-01-01T00:30:00+01:00', 200], ['2999-12-31T23:59:59.999Z', 200]] as const) {
    const res = await app.inject({ method: 'GET', url: `/api/admin/audit-logs?end_date=${encodeURIComponent(date)}`, headers: admin.headers })
    t.equal(res.statusCode, status, `audit end_date=${date}`)
  }
  const far = await app.inject({ method: 'PUT', url: `/api/admin/api-keys/${key.id}`, headers: admin.headers, payload: { expires_at: '2999-12-31T23:59:59Z' } })
  t.equal(far.statusCode, 200)
  t.equal(far.json().expires_at, '2999-12-31T23:59:59.000Z')
  const early = await app.inject({ method: 'GET', url: '/api/admin/usage/stats?end_date=2000-01-02T00:00:00Z', headers: admin.headers })
  t.equal(early.statusCode, 200, 'a default start before 2000 is cut at the bound')
})

t.test('datesBetween counts days as numbers, bounded', async (t) => {
  t.same(datesBetween('9999-12-30', '9999-12-31'), ['9999-12-30', '9999-12-31'], 'the last days of year 9999 end')
  t.same(datesBetween('2024-02-28', '2024-03-01'), ['2024-02-28', '2024-02-29', '2024-03-01'])
  t.same(datesBetween('2024-03-02', '2024-03-01'), [])
  t.throws(() => datesBetween('2000-01-01', '2999-12-31'), /more than 400 days/)
  t.throws(() => datesBetween('2024-01-01', '10000-01-01'), /not a date range/)
})
