// The verify pool plans each statement once per connection (generic plans), with the
// tables' sizes of that moment. Planned while admission_holds, users, api_keys and budgets
// were empty, the reservation's statements must still read them through their indexes:
// a plan that scans a table whole keeps doing so as the table grows (issue 17: a scan of
// admission_holds per key per batch took half of PostgreSQL's time in the bench). Planned
// over a catalogue of some size, each must look its rows up by a key, and never by a
// bitmap scan, which leaves settled holds' entries for every later read to visit.
import t, { type Test } from 'tap'
import { gateway, type Gateway } from './fixtures.js'

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, 'Index Cond'?: string, Plans?: PlanNode[] }
const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)]
/** the tables a reservation (and a signed-in call's session lookup) looks rows up in; a whole scan of any of them grows with the traffic or the catalogue */
const LOOKED_UP = ['admission_holds', 'users', 'api_keys', 'budgets', 'user_sessions']
const INDEX_SCANS = ['Index Scan', 'Index Only Scan']
/** a lookup: the index is entered at a value of a column (=, or = ANY), not walked over a range or whole */
const looksUp = (node: PlanNode) => INDEX_SCANS.includes(node['Node Type']) && /\w+ = /.test(node['Index Cond'] ?? '')

/** A reservation of a key with a budget on one verify connection, then each prepared statement's generic plan on it. */
async function reservationPlans (t: Test, g: Gateway): Promise<Array<{ text: string, nodes: PlanNode[] }>> {
  const key = await g.standaloneKey()
  await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', time_zone: 'UTC', limit_usd: 1 })
  await g.app.pg.query(`ANALYZE ${LOOKED_UP.join(', ')}`)
  t.equal((await g.verify({ key: key.key, request_id: 'planned' })).statusCode, 200)

  const client = await g.app.pg.connect()
  try {
    const { rows } = await client.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements WHERE statement ~ $1', [LOOKED_UP.join('|')])
    const texts = rows.map((row) => row.statement)
    for (const part of ['FROM api_keys k', 'json_agg', 'FROM admission_holds h', 'INSERT INTO admission_holds']) {
      t.ok(texts.some((text) => text.includes(part)), `the reservation's statement with "${part}" was prepared on the verify connection`)
    }
    const plans = []
    for (const text of texts) {
      const { rows: [plan] } = await client.query(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${text}`)
      plans.push({ text: text.replace(/\s+/g, ' ').slice(0, 60), nodes: nodes((plan['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan) })
    }
    return plans
  } finally {
    client.release()
  }
}

const describe = (node: PlanNode) => `${node['Node Type']} on ${node['Relation Name'] ?? '?'}${node['Index Cond'] === undefined ? '' : ` (${node['Index Cond']})`}`

t.test('a reservation planned over empty tables reads none of them whole, and its holds by a key', async (t) => {
  // one verify connection: the statements the reservation sent are prepared on the connection read below
  const g = await gateway(t, { DB_POOL_VERIFY: '1', ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  for (const { text, nodes } of await reservationPlans(t, g)) {
    const whole = nodes.filter((node) => node['Node Type'] === 'Seq Scan' && LOOKED_UP.includes(node['Relation Name'] ?? ''))
    t.same(whole.map(describe), [], `no table read whole: ${text}…`)
    // its rows come and go by the thousand between two analyses: a range or whole-index walk grows with its dead rows
    const holds = nodes.filter((node) => node['Relation Name'] === 'admission_holds' && node['Node Type'] !== 'ModifyTable' && !looksUp(node))
    t.same(holds.map(describe), [], `admission_holds looked up by a key: ${text}…`)
  }
})

t.test('a reservation planned over a catalogue looks every row up by its key, and never by a bitmap', async (t) => {
  const g = await gateway(t, { DB_POOL_VERIFY: '1', ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  // 2,000 owners with a key and a budget each
  await g.app.pg.query(`INSERT INTO users (id, username, password_hash, role, updated_at) SELECT gen_random_uuid(), 'owner' || i, 'x', 'user', now() FROM generate_series(1, 2000) i`)
  await g.app.pg.query(`INSERT INTO api_keys (id, user_id, name, key_hash, key_prefix, key_encrypted, updated_at)
    SELECT gen_random_uuid(), u.id, 'k', 'hash-' || u.username, 'km_x', 'x', now() FROM users u WHERE u.username LIKE 'owner%'`)
  await g.app.pg.query(`INSERT INTO budgets (user_id, period, time_zone, cost_limit) SELECT u.id, 'day', 'UTC', 1000 FROM users u WHERE u.username LIKE 'owner%'`)
  // each signed in (the admin's calls look their session up on the verify pool)
  await g.app.pg.query(`INSERT INTO user_sessions (user_id, token_hash, expires_at) SELECT u.id, md5(u.username), now() + interval '1 day' FROM users u WHERE u.username LIKE 'owner%'`)
  // and requests in flight: 5 holds of each of 200 keys, taken in time order as a gateway's come
  await g.app.pg.query(`INSERT INTO admission_holds (request_id, api_key_id, user_id, amount, created_at, expires_at)
    SELECT k.key_hash || '-' || n, k.id, k.user_id, 1000, now() + n * interval '1 ms', now() + interval '10 minutes' + n * interval '1 ms'
      FROM (SELECT * FROM api_keys WHERE key_hash LIKE 'hash-owner%' LIMIT 200) k, generate_series(1, 5) n ORDER BY n`)
  for (const { text, nodes } of await reservationPlans(t, g)) {
    t.same(nodes.filter((node) => node['Node Type'].startsWith('Bitmap')).map(describe), [], `no bitmap scan: ${text}…`)
    const scans = nodes.filter((node) => LOOKED_UP.includes(node['Relation Name'] ?? '') && node['Node Type'] !== 'ModifyTable')
    t.same(scans.filter((node) => !looksUp(node)).map(describe), [], `every row looked up by a key: ${text}…`)
  }
})
