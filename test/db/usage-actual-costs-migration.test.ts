// Migration 20261212100000_usage_actual_costs_derived on a database holding usage rows that
// store their actual cost components: afterwards the detail view shows the same components,
// derived from the costs and the rate multiplier; a row whose stored component is not its
// cost × its multiplier, rounded half away from zero, stops the migration whole, named.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { buildTestApp, signIn } from '../helper.js'
import { detailsOf, migratedBefore } from './migrated-before.js'

const MIGRATION = '20261212100000_usage_actual_costs_derived'

/** A row of the old form: its costs (input, output, cache writes, cache reads, request; nano-USD), multiplier and stored actual components. */
interface OldRow { requestId: string, status: string, costs: number[], multiplier: string, actual: number[] }

const ROWS: OldRow[] = [
  // × 1.5: 5,400,000 and so on, exact
  { requestId: 'times-1.5', status: 'completed', costs: [3_600_000, 12_000_000, 15_750_000, 1_500_000, 1_000_000], multiplier: '1.5', actual: [5_400_000, 18_000_000, 23_625_000, 2_250_000, 1_500_000] },
  // × 0.5 of odd costs: halves rounded away from zero (3 → 1.5 → 2; 5 → 2.5 → 3); 7 × 0.5 = 3.5 → 4
  { requestId: 'halves', status: 'failed', costs: [3, 5, 7, 0, 0], multiplier: '0.5', actual: [2, 3, 4, 0, 0] },
  // a free tier's row: the multiplier recorded is 0, so is every actual component
  { requestId: 'free', status: 'completed', costs: [4_000_000, 1_500_000, 0, 0, 0], multiplier: '0', actual: [0, 0, 0, 0, 0] },
  // × 1.333333 (six digits): 1,000,001 × 1.333333 = 1,333,334.333333 → 1,333,334
  { requestId: 'six-digits', status: 'cancelled', costs: [1_000_001, 0, 0, 0, 0], multiplier: '1.333333', actual: [1_333_334, 0, 0, 0, 0] },
  { requestId: 'pending', status: 'pending', costs: [0, 0, 0, 0, 0], multiplier: '1', actual: [0, 0, 0, 0, 0] }
]

async function before (t: Test, rows: OldRow[]): Promise<{ url: string, client: pg.Client }> {
  const url = await migratedBefore(t, MIGRATION)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  await insertOld(client, rows)
  return { url, client }
}

async function insertOld (client: pg.Client, rows: OldRow[]): Promise<void> {
  for (const r of rows) {
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)
    await client.query(`INSERT INTO usage (request_id, model, status, input_cost, output_cost, cache_creation_cost, cache_read_cost, request_cost, total_cost,
        rate_multiplier, actual_input_cost, actual_output_cost, actual_cache_creation_cost, actual_cache_read_cost, actual_request_cost, actual_total_cost)
      VALUES ($1, 'm', $2::usage_status, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [r.requestId, r.status, ...r.costs, sum(r.costs), r.multiplier, ...r.actual, sum(r.actual)])
  }
}

t.test(`${MIGRATION}: every old row's detail shows the same actual cost components after it, derived`, async (t) => {
  const { url, client } = await before(t, ROWS)
  const later = (await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > MIGRATION).sort()
  t.same(await applyMigrations(url), [MIGRATION, ...later], 'the migration applied')
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  const left = (await client.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'usage' AND column_name LIKE 'actual%'`)).rows
  t.same(left, [{ column_name: 'actual_total_cost' }], 'the total stays, the components are gone')

  const { app } = await buildTestApp(t, { url })
  const admin = await signIn(app, 'admin')
  const details = await detailsOf(t, app, admin.headers, ROWS.map((row) => row.requestId))
  for (const row of ROWS) {
    const d = details.get(row.requestId)!
    t.same([d.actual_input_cost, d.actual_output_cost, d.actual_cache_creation_cost, d.actual_cache_read_cost, d.actual_request_cost],
      row.actual.map((nano) => nano / 1e9), `${row.requestId}: the components it stored`)
  }
})

t.test(`${MIGRATION}: a stored component that is not its cost × its multiplier stops the migration, named, and nothing changes`, async (t) => {
  const { url, client } = await before(t, ROWS)
  const migration = await readFile(join(MIGRATIONS_DIR, MIGRATION, 'migration.sql'), 'utf8')
  const cases: Array<[string, OldRow]> = [
    ['rounded down where half goes away from zero', { requestId: 'half-down', status: 'completed', costs: [3, 0, 0, 0, 0], multiplier: '0.5', actual: [1, 0, 0, 0, 0] }],
    ['a request cost left unscaled', { requestId: 'unscaled', status: 'completed', costs: [0, 0, 0, 0, 1_000_000], multiplier: '1.5', actual: [0, 0, 0, 0, 1_000_000] }],
    ['a free tier charged', { requestId: 'charged', status: 'completed', costs: [0, 10, 0, 0, 0], multiplier: '0', actual: [0, 10, 0, 0, 0] }]
  ]
  // each case in a transaction rolled back after (the applier runs the migration in one transaction too)
  for (const [what, row] of cases) {
    await client.query('BEGIN')
    await insertOld(client, [row])
    await t.rejects(client.query(migration), new RegExp(`^usage row ${row.requestId}: its actual cost components differ`), what)
    await client.query('ROLLBACK')
  }
  await insertOld(client, [cases[0]![1]])
  await t.rejects(applyMigrations(url), new RegExp(`migration ${MIGRATION} failed: usage row half-down: `))
  const kept = (await client.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'usage' AND column_name LIKE 'actual%'`)).rows[0]
  t.same(kept, { n: 6 }, 'rolled back whole: the six columns kept')
})
