// Issue 16: the records' username, model and provider filters are the dashboard's filter
// boxes: a substring, case-insensitive, LIKE's wildcards matched literally. Names are
// matched in the small tables (and usage's distinct models), then usage is read through
// its id indexes: several matched ids are each walked newest first, so the page reads
// about a page per id whatever the table holds (EXPLAIN ANALYZE, never time).
import pg from 'pg'
import t from 'tap'
import { signIn } from '../../helper.js'
import { type PlanNode, usagePartitions, usageRowsRead } from '../../plans.js'
import { gateway, type Json } from '../gateway/fixtures.js'

const T0 = Date.parse('2025-03-10T08:00:00Z')
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString()
const BULK_ROWS = 4000

t.test('records: username, model and provider filters match substrings, case-insensitively', async (t) => {
  const g = await gateway(t)
  const alphaOne = await g.provider('Alpha-One')
  const alphabet = await g.provider('alphabet')
  const beta = await g.provider('beta')
  const ann = await signIn(g.app, 'user', 'Ann')
  const joanna = await signIn(g.app, 'user', 'joanna')
  const bob = await signIn(g.app, 'user', 'bob')
  const [annKey, joKey, bobKey] = [await g.userKey(ann.id), await g.userKey(joanna.id), await g.userKey(bob.id)]
  const done = { status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5 }
  const row = (requestId: string, key: Json, model: string, provider: Json, minute: number) =>
    ({ type: 'complete', request_id: requestId, api_key_id: key.id, model, provider_id: provider.id, created_at: at(minute), ...done })
  await g.send([
    row('r1', annKey, 'claude-sonnet-4', alphaOne, 1),
    row('r2', joKey, 'claude-sonnet-4-5', alphabet, 2),
    row('r3', bobKey, 'gpt_4%x\\y', beta, 3),
    row('r4', annKey, 'gpt14ax', beta, 4),
    row('r5', joKey, 'CLAUDE-SONNET-4', alphaOne, 5),
    row('r6', bobKey, 'claude-sonnet-4', alphabet, 6)
  ])
  const list = async (query: string, headers = g.admin.headers) => {
    const path = headers === g.admin.headers ? '/api/admin/usage/records' : '/api/users/me/usage/records'
    const res = await g.app.inject({ method: 'GET', url: `${path}?${query}`, headers })
    t.equal(res.statusCode, 200, query)
    return res.json() as { records: Json[], total: number, total_is_estimate: boolean }
  }
  const ids = async (query: string, headers = g.admin.headers) => {
    const page = await list(query, headers)
    t.equal(page.total, page.records.length, `${query}: total`)
    return page.records.map((r) => r.request_id as string)
  }

  const cases: Array<[string, string[]]> = [
    ['username=ann', ['r5', 'r4', 'r2', 'r1']], // Ann and joanna
    ['username=ANNA', ['r5', 'r2']],
    ['username=Ann&user_id=' + joanna.id, ['r5', 'r2']],
    ['username=ann&user_id=' + bob.id, []],
    ['username=zed', []],
    ['model=SONNET', ['r6', 'r5', 'r2', 'r1']],
    ['model=sonnet-4-5', ['r2']],
    ['model=claude-sonnet-4', ['r6', 'r5', 'r2', 'r1']],
    ['provider=ALPHA', ['r6', 'r5', 'r2', 'r1']],
    ['provider=a-o', ['r5', 'r1']],
    ['provider=bet', ['r6', 'r4', 'r3', 'r2']], // beta and alphabet
    ['username=ann&model=sonnet&provider=alphab', ['r2']],
    ['username=o&model=claude', ['r6', 'r5', 'r2']], // bob and joanna: the fan-out with another list
    // LIKE's metacharacters are themselves
    [`model=${encodeURIComponent('_')}`, ['r3']],
    [`model=${encodeURIComponent('%')}`, ['r3']],
    [`model=${encodeURIComponent('\\')}`, ['r3']],
    [`model=${encodeURIComponent('4%x')}`, ['r3']],
    [`model=${encodeURIComponent('gpt_4')}`, ['r3']],
    [`username=${encodeURIComponent('%')}`, []],
    [`provider=${encodeURIComponent('_')}`, []]
  ]
  for (const [query, expected] of cases) t.same(await ids(query), expected, query)

  t.same((await list('model=sonnet&limit=2&offset=1')).records.map((r) => r.request_id), ['r5', 'r2'], 'a later page of several models')
  t.match(await list('model=sonnet&limit=2&offset=1'), { total: 4, total_is_estimate: false })

  // a user's own records: the same boxes, over their rows only
  t.same(await ids('model=sonnet', joanna.headers), ['r5', 'r2'], "joanna's own sonnet rows, not bob's or Ann's")
  t.same(await ids('provider=alpha', bob.headers), ['r6'])
  t.same(await ids('model=gpt', joanna.headers), [])

  await t.test('several matched ids: each read newest first, a page at most each', async (t) => {
    const client = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
    await client.connect()
    t.teardown(() => client.end())
    const insert = (user: string, key: string, provider: string, model: string, step: number) => client.query(`
      INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_name, model, status, status_code, input_tokens, output_tokens, total_tokens, created_at, finished_at, updated_at)
      SELECT gen_random_uuid(), $1::text || '-' || $4 || '-' || i, $1::uuid, $2::uuid, $3::uuid, 'p', $4, 'completed', 200, 10, 10, 20,
             now() - make_interval(secs => i * $6), now() - make_interval(secs => i * $6), now()
        FROM generate_series(1, $5::int) AS i`, [user, key, provider, model, BULK_ROWS, step])
    // bob's rows are the newest and most numerous: a walk of usage (created_at) would read them all before Ann's and joanna's
    await insert(bob.id, bobKey.id, beta.id, 'gpt14ax', 1)
    await insert(bob.id, bobKey.id, beta.id, 'gpt14ax-b', 1)
    await insert(ann.id, annKey.id, alphaOne.id, 'claude-sonnet-4', 30)
    await insert(joanna.id, joKey.id, alphabet.id, 'claude-sonnet-4-5', 31)
    await client.query('ANALYZE usage')
    const pages: Array<{ text: string, values: unknown[] }> = []
    const pool = g.app.statsPg as unknown as { query: (statement: { text: string, values: unknown[] }) => Promise<{ fields: Array<{ name: string }> }> }
    const query = pool.query.bind(pool)
    pool.query = async (statement) => {
      const result = await query(statement)
      if (typeof statement === 'object' && result.fields?.some((f) => f.name === 'request_metadata' || f.name === 'metadata')) pages.push(statement)
      return result
    }
    t.teardown(() => { pool.query = query })
    const newest = async (where: string, params: unknown[], limit: number) => (await client.query<{ request_id: string }>(`
      SELECT u.request_id FROM usage u LEFT JOIN users us ON us.id = u.user_id LEFT JOIN providers p ON p.id = u.provider_id
       WHERE ${where} ORDER BY u.created_at DESC, u.id DESC LIMIT ${limit}`, params)).rows.map((r) => r.request_id)
    const checks: Array<[string, string, unknown[]]> = [
      ['username=ANN&limit=10', 'lower(us.username) LIKE $1', ['%ann%']],
      ['model=sonnet&limit=10', 'lower(u.model) LIKE $1', ['%sonnet%']],
      ['provider=alpha&limit=10&offset=10', 'lower(p.name) LIKE $1', ['%alpha%']],
      ['model=gpt14&limit=10', 'u.model LIKE $1', ['gpt14%']]
    ]
    for (const [url, where, params] of checks) {
      pages.length = 0
      const page = await list(url)
      const offset = Number(/offset=(\d+)/.exec(url)?.[1] ?? 0)
      t.same(page.records.map((r) => r.request_id), (await newest(where, params, 10 + offset)).slice(offset), `${url}: the newest matches`)
      t.equal(pages.length, 1, `${url}: one page statement`)
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${pages[0]!.text}`, pages[0]!.values)
      const read = usageRowsRead(rows[0]!['QUERY PLAN'][0]!.Plan)
      // two ids (three models for sonnet), each walked for limit + offset rows (and one past), then the page joined back by id;
      // a walk over monthly partitions also reads the head row of each other month holding rows (three walks at most)
      const months = (await usagePartitions(client)).filled.length
      t.ok(read <= 2 * (10 + offset + 2) + 10 + 3 * (months - 1), `${url}: read ${read} usage rows of ${4 * BULK_ROWS + 6} (${months} months hold rows)`)
    }
  })
})
