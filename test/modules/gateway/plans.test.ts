// The verify pool plans each statement once per connection (generic plans), with the
// tables' sizes of that moment. Planned while admission_holds, users, api_keys and budgets
// were empty, the reservation's statements must still read them through their indexes:
// a plan that scans a table whole keeps doing so as the table grows (issue 17: a scan of
// admission_holds per key per batch took half of PostgreSQL's time in the bench).
import t from 'tap'
import { gateway } from './fixtures.js'

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, Plans?: PlanNode[] }
const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)]
/** the tables a reservation looks rows up in; a whole scan of any of them grows with the traffic or the catalogue */
const LOOKED_UP = ['admission_holds', 'users', 'api_keys', 'budgets']

t.test('a reservation planned over empty tables reads none of them whole', async (t) => {
  // one verify connection: the statements the reservation sent are prepared on the connection read below
  const g = await gateway(t, { DB_POOL_VERIFY: '1', ADMISSION_DEFAULT_HOLD_USD: '0.01' })
  const key = await g.standaloneKey()
  // a budget, so that its statement runs too; then the planner sees the tables as they are: nearly empty
  await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', time_zone: 'UTC', limit_usd: 1 })
  await g.app.pg.query('ANALYZE admission_holds, users, api_keys, budgets')
  t.equal((await g.verify({ key: key.key, request_id: 'planned' })).statusCode, 200)

  const client = await g.app.pg.connect()
  try {
    const { rows } = await client.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements WHERE statement ~ $1', [LOOKED_UP.join('|')])
    const texts = rows.map((row) => row.statement)
    for (const part of ['FROM api_keys k', 'json_agg', 'LEFT JOIN admission_holds h', 'INSERT INTO admission_holds']) {
      t.ok(texts.some((text) => text.includes(part)), `the reservation's statement with "${part}" was prepared on the verify connection`)
    }
    for (const text of texts) {
      const { rows: [plan] } = await client.query(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${text}`)
      const whole = nodes((plan['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan)
        .filter((node) => node['Node Type'] === 'Seq Scan' && LOOKED_UP.includes(node['Relation Name'] ?? ''))
        .map((node) => node['Relation Name'])
      t.same(whole, [], `no table read whole: ${text.replace(/\s+/g, ' ').slice(0, 60)}…`)
    }
  } finally {
    client.release()
  }
})
