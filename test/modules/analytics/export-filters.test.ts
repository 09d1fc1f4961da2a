// The export's filters are the records page's: for each filter, the export's rows are the
// page's rows (every status, names, ids, search, ranges; a user's own), on the seeded
// random data set ingested through the gateway.
import t from 'tap'
import { dataSet } from '../stats/fixtures.js'
import type { Json } from '../gateway/fixtures.js'

t.test('the export has the records page\'s rows for every filter', async (t) => {
  const data = await dataSet(t, { seed: 7, count: 400, hours: 48 })
  const { g, base, hours, users, keys } = data
  const app = g.app
  const range = `start_date=${encodeURIComponent(new Date(base).toISOString())}&end_date=${encodeURIComponent(new Date(base + hours * 3_600_000).toISOString())}`
  const page = async (path: string, query: string, headers: Record<string, string>) => {
    const res = await app.inject({ method: 'GET', url: `${path}?limit=500&${range}&${query}`, headers })
    t.equal(res.statusCode, 200, `${path} ${query}`)
    const body = res.json() as { records: Json[], total: number }
    t.ok(body.records.length < 500, 'one page holds them all')
    return body.records.map((r) => r.id as string)
  }
  const exported = async (path: string, query: string, headers: Record<string, string>) => {
    const res = await app.inject({ method: 'GET', url: `${path}/export?format=ndjson&${range}&${query}`, headers })
    t.equal(res.statusCode, 200, `${path}/export ${query}`)
    return res.body === '' ? [] : res.body.trimEnd().split('\n').map((line) => (JSON.parse(line) as Json).id as string)
  }
  const filters = [
    '', `user_id=${users[0]!.id as string}`, `username=${(users[1]!.username as string).slice(2)}`, 'model=gpt', 'model=mystery', 'provider=alpha', 'provider=doom',
    `api_key_id=${keys[2]!.id as string}`, 'search=claude', 'search=beta+gpt', `search=${users[2]!.username as string}`,
    ...['stream', 'standard', 'error', 'pending', 'streaming', 'completed', 'failed', 'active'].map((status) => `status=${status}`),
    `status=completed&model=claude&user_id=${users[0]!.id as string}`
  ]
  let nonEmpty = 0
  for (const filter of filters) {
    const expected = await page('/api/admin/usage/records', filter, g.admin.headers)
    if (expected.length > 0) nonEmpty++
    t.same(await exported('/api/admin/usage/records', filter, g.admin.headers), expected, `admin: ${filter}`)
  }
  t.ok(nonEmpty >= filters.length - 2, 'the filters match rows')

  // a user's own: their rows, with the same filters
  const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: users[0]!.username, password: 'correct-horse-battery' } })
  const headers = { authorization: `Bearer ${login.json().access_token as string}` }
  for (const filter of ['', 'model=gpt', 'status=error', 'search=alpha', `api_key_id=${keys[0]!.id as string}`]) {
    const expected = await page('/api/users/me/usage/records', filter, headers)
    t.same(await exported('/api/users/me/usage/records', filter, headers), expected, `own: ${filter}`)
  }
})
