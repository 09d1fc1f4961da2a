// Issue 14, item 9: records filters that match nothing (`username`, `provider`, a
// user's own `search`) walked every usage row. Names resolve to ids in the small tables
// first; a miss answers the empty page without reading usage, a hit reads usage through
// the ids' indexes. Measured by what the statements actually sent read from usage
// (EXPLAIN ANALYZE of each, replayed), never by time.
import pg from 'pg'
import t from 'tap'
import { signIn } from '../helper.js'
import { gateway } from '../modules/gateway/fixtures.js'
import { recordingQuery, type SentStatement, usageRowsReplayed } from '../plans.js'

const HEAVY_ROWS = 60_000
const LIGHT_ROWS = 30

t.test('records filters: a miss reads no usage rows, a hit returns the same rows as before', async (t) => {
  const g = await gateway(t)
  const { app, admin } = g
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const heavy = await signIn(app, 'user', 'heavy')
  const light = await signIn(app, 'user', 'light')
  const heavyKey = await g.userKey(heavy.id, { name: 'heavy-key' })
  const lightKey = await g.userKey(light.id, { name: 'light-key' })

  const client = new pg.Client({ connectionString: app.config.DATABASE_URL })
  await client.connect()
  t.teardown(() => client.end())
  const insert = (user: string, key: string, provider: string, model: string, n: number, tag: string) => client.query(`
    INSERT INTO usage (id, request_id, user_id, api_key_id, provider_id, provider_name, model, status, status_code, input_tokens, output_tokens, total_tokens, created_at, finished_at, updated_at)
    SELECT gen_random_uuid(), $5 || i, $1, $2, $3, (SELECT name FROM providers WHERE id = $3), $4, 'completed', 200, 10, 10, 20,
           now() - make_interval(secs => i * 37), now() - make_interval(secs => i * 37), now()
      FROM generate_series(1, $6::int) AS i`, [user, key, provider, model, tag, n])
  await insert(heavy.id, heavyKey.id, alpha.id, 'model-a', HEAVY_ROWS, 'heavy-')
  await insert(light.id, lightKey.id, beta.id, 'model-b', LIGHT_ROWS, 'light-')
  await client.query('ANALYZE usage')

  // every statement the records route sends, replayed under EXPLAIN ANALYZE with the settings it ran under (its
  // transaction's set_config: the bounded count runs on a connection of its own)
  const sent: SentStatement[] = []
  type Queried = { query: (statement: any, params?: unknown[]) => Promise<unknown> }
  const pool = app.statsPg as unknown as Queried & { connect: () => Promise<Queried> }
  pool.query = recordingQuery(pool, sent)
  const connect = pool.connect.bind(pool)
  pool.connect = async () => {
    const client = await connect()
    client.query = recordingQuery(client, sent)
    return client
  }
  const call = async (url: string, headers = admin.headers) => {
    sent.length = 0
    const res = await app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    t.ok(sent.length > 0, `${url}: its statements were seen`)
    let read = 0
    for (const statement of sent) read += await usageRowsReplayed(client, statement)
    return { body: res.json(), read }
  }
  const newest = async (where: string, params: unknown[], limit: number) =>
    (await client.query<{ id: string }>(`SELECT id FROM usage WHERE ${where} ORDER BY created_at DESC, id DESC LIMIT ${limit}`, params)).rows.map((r) => r.id)

  await t.test('misses answer the empty page and read (almost) no usage rows', async (t) => {
    const misses: Array<[string, Signed['headers']?]> = [
      ['/api/admin/usage/records?username=nobody'],
      ['/api/admin/usage/records?provider=nobody'],
      [`/api/admin/usage/records?username=light&user_id=${heavy.id}`],
      ['/api/admin/usage/records?search=zz-none'],
      ['/api/users/me/usage/records?search=zz-none', heavy.headers],
      ['/api/users/me/usage/records?search=light', heavy.headers],
      ['/api/users/me/usage/records?search=heavy%20zz-none', heavy.headers]
    ]
    for (const [url, headers] of misses) {
      const { body, read } = await call(url, headers)
      t.match(body, { records: [], total: 0, total_is_estimate: false }, `${url}: empty`)
      // the loose scan of usage's distinct models reads one index entry per model
      t.ok(read <= 10, `${url}: read ${read} usage rows (of ${HEAVY_ROWS + LIGHT_ROWS})`)
    }
  })

  await t.test('two filters that each match, but not together: at most the smaller one\'s rows are read', async (t) => {
    const { body, read } = await call('/api/admin/usage/records?username=heavy&provider=beta')
    t.match(body, { records: [], total: 0 })
    t.ok(read <= LIGHT_ROWS + 10, `read ${read} usage rows`)
    const own = await call('/api/users/me/usage/records?search=model-b', heavy.headers)
    t.match(own.body, { records: [], total: 0 }, 'a keyword naming a model the user never used')
  })

  // hits on the light user's 30 rows read about those; a hit on the heavy user's rows reads the page and a count bounded by rows read
  await t.test('hits return the newest matching rows as before', async (t) => {
    // [url, the rows it shows (SQL written here), their params, the caller, the most usage rows it may read (null: not bounded here)]
    const hits: Array<[string, string, unknown[], Signed['headers'], number | null]> = [
      ['/api/admin/usage/records?username=light&limit=10', 'user_id = $1', [light.id], admin.headers, 200],
      ['/api/admin/usage/records?provider=beta&limit=10', 'provider_id = $1', [beta.id], admin.headers, 200],
      [`/api/admin/usage/records?username=light&user_id=${light.id}&limit=10`, 'user_id = $1', [light.id], admin.headers, 200],
      ['/api/users/me/usage/records?search=model-b&limit=10', 'user_id = $1', [light.id], light.headers, 200],
      ['/api/admin/usage/records?username=heavy&provider=alpha&limit=10', 'user_id = $1 AND provider_id = $2', [heavy.id, alpha.id], admin.headers, null],
      ['/api/admin/usage/records?search=light-key&limit=10', 'api_key_id = $1', [lightKey.id], admin.headers, null],
      ['/api/users/me/usage/records?search=heavy&limit=10', 'user_id = $1', [heavy.id], heavy.headers, null],
      ['/api/users/me/usage/records?search=alpha%20model-a&limit=10', 'user_id = $1', [heavy.id], heavy.headers, null]
    ]
    for (const [url, where, params, headers, most] of hits) {
      const { body, read } = await call(url, headers)
      t.same(body.records.map((r: { id: string }) => r.id), await newest(where, params, 10), `${url}: the newest 10`)
      if (most !== null) t.ok(read <= most, `${url}: read ${read} usage rows`)
    }
    const { body } = await call('/api/admin/usage/records?username=light')
    t.equal(body.total, LIGHT_ROWS, 'the exact total')
  })
})

type Signed = Awaited<ReturnType<typeof signIn>>
