// Issue 16, AETHER.md §4.3: the records table's fields Aether reads — the provider
// key's name (not the caller's key), the rate multiplier, the user's email and the
// event's metadata — on the admin's records and, where they are the caller's, on a
// user's own. They are joined for the page's rows only: the rows read stay bounded
// however many rows match (EXPLAIN ANALYZE of the page statement, never time).
import pg from 'pg'
import t from 'tap'
import { signIn } from '../../helper.js'
import { type PlanNode, usagePartitions, usageRowsRead } from '../../plans.js'
import { gateway, type Json } from '../gateway/fixtures.js'

const BULK_ROWS = 5000

/** Rows of `relation` a plan read: returned plus filtered out, per loop. */
function rowsRead (node: PlanNode & { 'Relation Name'?: string }, relation: string): number {
  const own = node['Relation Name'] === relation
    ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * (node['Actual Loops'] ?? 0)
    : 0
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child, relation), 0)
}

t.test('records carry api_key_name (the provider key), rate_multiplier, user_email, request_metadata', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const fast = await g.adminCall('POST', `/api/admin/providers/${alpha.id as string}/keys`, { name: 'alpha-fast', secret: 'sk-alpha-fast-0123456789', rate_multiplier: 1.5 })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id, { name: 'ann-laptop' })
  const bobKey = await g.userKey(bob.id, { name: 'bob-ci' })
  const done = { status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5 }
  await g.send([
    {
      type: 'complete', request_id: 'a1', api_key_id: annKey.id, model: 'claude-x', provider_id: alpha.id, provider_api_key_id: fast.id,
      created_at: '2025-03-10T08:00:00Z', metadata: { model_version: 'claude-x-20250301', client: 'cli' }, ...done
    },
    { type: 'complete', request_id: 'b1', api_key_id: bobKey.id, model: 'gpt-y', provider_id: alpha.id, created_at: '2025-03-10T08:01:00Z', ...done }
  ])
  const get = async (url: string, headers = g.admin.headers) => {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    return res.json() as { records: Json[], total: number }
  }

  const all = await get('/api/admin/usage/records')
  t.same(all.records.map((r) => r.request_id), ['b1', 'a1'])
  t.match(all.records[1], {
    username: 'ann',
    user_email: 'ann@example.com',
    api_key: { id: annKey.id, name: 'ann-laptop' },
    api_key_name: 'alpha-fast',
    rate_multiplier: 1.5,
    request_metadata: { model_version: 'claude-x-20250301', client: 'cli' }
  }, "the provider key's name, not ann's key's")
  t.match(all.records[0], { user_email: 'bob@example.com', api_key_name: null, rate_multiplier: 1, request_metadata: null }, 'no provider key: no name, multiplier 1')

  const own = await get('/api/users/me/usage/records', ann.headers)
  t.same(own.records.map((r) => r.request_id), ['a1'], "ann sees her own row only, never bob's")
  t.match(own.records[0], { user_email: 'ann@example.com', request_metadata: { model_version: 'claude-x-20250301' } }, 'her own email and metadata')
  t.notOk(['api_key_name', 'rate_multiplier', 'actual_cost'].some((field) => field in own.records[0]!), "the operator's provider key, multiplier and cost are not hers")
  t.same((await get('/api/users/me/usage/records', bob.headers)).records.map((r) => [r.request_id, r.user_email]), [['b1', 'bob@example.com']])

  const a1 = all.records[1]!
  const detail = await g.app.inject({ method: 'GET', url: `/api/admin/usage/${a1.id as string}`, headers: g.admin.headers })
  t.match(detail.json(), { api_key_name: 'alpha-fast', rate_multiplier: 1.5, user_email: 'ann@example.com', metadata: { model_version: 'claude-x-20250301' } }, 'the detail too')
  const ownDetail = await g.app.inject({ method: 'GET', url: `/api/users/me/usage/${a1.id as string}`, headers: ann.headers })
  t.match(ownDetail.json(), { user_email: 'ann@example.com' })
  t.notOk(['api_key_name', 'rate_multiplier', 'provider_api_key_id', 'actual_total_cost'].some((field) => field in ownDetail.json()), 'the own detail hides them too')

  t.same((await get('/api/admin/usage/records?page=2&sort=desc&limit=10')).records.map((r) => r.request_id), ['b1', 'a1'], "Aether's path ignores parameters it does not know")
  for (const [url, headers, status] of [
    ['/api/admin/usage/records', {}, 401],
    ['/api/admin/usage/records', ann.headers, 403],
    ['/api/users/me/usage/records', {}, 401],
    ['/api/admin/usage/records?limit=0', g.admin.headers, 400]
  ] as const) {
    t.equal((await g.app.inject({ method: 'GET', url, headers })).statusCode, status, `${url} → ${status}`)
  }

  await t.test('the joins read the page\'s rows only', async (t) => {
    const client = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
    await client.connect()
    t.teardown(() => client.end())
    await client.query(`
      INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_api_key_id, provider_name, model, status, status_code,
                         input_tokens, output_tokens, total_tokens, metadata, created_at, finished_at, updated_at)
      SELECT gen_random_uuid(), 'bulk-' || i, $1, $2, $3, $4, 'alpha', 'claude-x', 'completed', 200, 10, 10, 20, jsonb_build_object('model_version', 'v' || i),
             now() - make_interval(secs => i), now() - make_interval(secs => i), now()
        FROM generate_series(1, $5::int) AS i`, [ann.id, annKey.id, alpha.id, fast.id, BULK_ROWS])
    await client.query('ANALYZE usage')
    // the page's statement as the service sends it: the one whose rows carry request_metadata
    const pages: Array<{ text: string, values: unknown[] }> = []
    const pool = g.app.statsPg as unknown as { query: (statement: { text: string, values: unknown[] }) => Promise<{ fields: Array<{ name: string }> }> }
    const query = pool.query.bind(pool)
    pool.query = async (statement) => {
      const result = await query(statement)
      if (typeof statement === 'object' && result.fields?.some((f) => f.name === 'metadata')) pages.push(statement)
      return result
    }
    t.teardown(() => { pool.query = query })
    for (const url of ['/api/admin/usage/records?limit=20', '/api/admin/usage/records?limit=20&model=claude-x', '/api/users/me/usage/records?limit=20']) {
      pages.length = 0
      const body = await get(url, url.includes('/me/') ? ann.headers : g.admin.headers)
      t.equal(body.records.length, 20)
      t.equal(body.records[0]!.request_metadata.model_version, 'v1', 'the newest bulk row')
      t.equal(pages.length, 1, `${url}: one page statement`)
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${pages[0]!.text}`, pages[0]!.values)
      const plan = rows[0]!['QUERY PLAN'][0]!.Plan
      // the page walk (20 and the boundary row at most, and the head row of each other month holding rows) and the join back by its key (20)
      const months = (await usagePartitions(client)).filled.length
      t.ok(usageRowsRead(plan) <= 2 * 20 + 1 + (months - 1), `${url}: read ${usageRowsRead(plan)} usage rows of ${BULK_ROWS + 2} (${months} months hold rows)`)
      t.ok(rowsRead(plan, 'provider_api_keys') <= 20, `${url}: read ${rowsRead(plan, 'provider_api_keys')} provider key rows`)
    }
  })
})
