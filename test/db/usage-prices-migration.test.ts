// Migration 20261212090000_usage_prices_by_reference on a database holding usage rows of the
// old form (each with its unit prices and pricing source copied): afterwards every row's
// detail shows the same prices and source, now from its tier in price_snapshot_tiers; a row
// whose copy disagrees with its tier stops the migration whole, named.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { buildTestApp, signIn } from '../helper.js'
import { detailsOf, migratedBefore } from './migrated-before.js'

const MIGRATION = '20261212090000_usage_prices_by_reference'
const [P1, P2] = ['00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000c2']
const ALPHA = '00000000-0000-4000-8000-00000000a1fa'
const B = 1_000_000_000 // nano-USD per USD
const n = (usd: number) => Math.round(usd * B)

// P1, global: up to 1000 tokens of context, then above; P2, alpha's own, one tier and a per-request price (deleted before the migration)
const P1_TIERS = [
  { up_to: 1000, input: n(3), output: n(15), cache_write_5m: n(3.75), cache_write_1h: n(6), cache_read: n(0.3) },
  { up_to: null, input: n(6), output: n(22.5), cache_write_5m: n(7.5), cache_write_1h: n(12), cache_read: n(0.6) }
]
const P2_TIERS = [{ up_to: null, input: n(2), output: n(8), cache_write_5m: n(2.5), cache_write_1h: n(4), cache_read: 123_456_789 }]

/** The copy ingestion wrote: input, output, 5m write, 1h write, read, per request (nano-USD), and the source. */
type Copy = [number | null, number | null, number | null, number | null, number | null, number | null, string | null]
const copyOf = (tier: typeof P1_TIERS[number], perRequest: number | null): Copy =>
  [tier.input, tier.output, tier.cache_write_5m, tier.cache_write_1h, tier.cache_read, perRequest, 'model_price']
const UNPRICED: Copy = [null, null, null, null, null, null, 'unpriced']
const IN_FLIGHT: Copy = [null, null, null, null, null, null, null]

interface OldRow { requestId: string, status: string, priceId: string | null, tokens: [number, number, number, number], copy: Copy }

async function before (t: Test): Promise<{ url: string, client: pg.Client }> {
  const url = await migratedBefore(t, MIGRATION)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query(`INSERT INTO providers (id, name, billing_type, updated_at) VALUES ($1, 'alpha', 'pay_as_you_go', now())`, [ALPHA])
  const price = `INSERT INTO model_prices (id, model, provider_id, tiers, price_per_request, effective_from) VALUES ($1, 'claude-x', $2, $3, $4, '2020-01-01T00:00:00Z')`
  await client.query(price, [P1, null, JSON.stringify(P1_TIERS), null])
  await client.query(price, [P2, ALPHA, JSON.stringify(P2_TIERS), 1_000_000])
  await client.query('DELETE FROM model_prices WHERE id = $1', [P2])
  return { url, client }
}

async function insertOld (client: pg.Client, rows: OldRow[]): Promise<void> {
  for (const r of rows) {
    const [input, write5m, write1h, read] = r.tokens
    await client.query(`INSERT INTO usage (request_id, provider_id, model, status, input_tokens, cache_creation_input_tokens, cache_creation_5m_input_tokens,
        cache_creation_1h_input_tokens, cache_read_input_tokens, total_tokens, model_price_id, input_price_per_1m, output_price_per_1m,
        cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m, price_per_request, pricing_source, finished_at)
      VALUES ($1, $2, 'claude-x', $3::usage_status, $4::int, $5::int + $6::int, $5, $6, $7::int, $4::int + $5::int + $6::int + $7::int, $8, $9, $10, $11, $12, $13, $14, $15,
        CASE WHEN $3::usage_status IN ('pending', 'streaming') THEN NULL ELSE now() END)`,
    [r.requestId, ALPHA, r.status, input, write5m, write1h, read, r.priceId, ...r.copy])
  }
}

const ROWS: OldRow[] = [
  // context 800 + 150 + 40 + 10 = 1000: still P1's first tier (up_to covers it)
  { requestId: 'first-tier', status: 'completed', priceId: P1, tokens: [800, 150, 40, 10], copy: copyOf(P1_TIERS[0]!, null) },
  // context 1001: the second
  { requestId: 'second-tier', status: 'completed', priceId: P1, tokens: [1001, 0, 0, 0], copy: copyOf(P1_TIERS[1]!, null) },
  { requestId: 'failed', status: 'failed', priceId: P1, tokens: [0, 0, 0, 0], copy: copyOf(P1_TIERS[0]!, null) },
  // priced by a version deleted since: its snapshot stays
  { requestId: 'deleted-version', status: 'completed', priceId: P2, tokens: [100, 0, 0, 5], copy: copyOf(P2_TIERS[0]!, 1_000_000) },
  { requestId: 'unpriced', status: 'completed', priceId: null, tokens: [5, 0, 0, 0], copy: UNPRICED },
  { requestId: 'pending', status: 'pending', priceId: null, tokens: [0, 0, 0, 0], copy: IN_FLIGHT }
]

t.test(`${MIGRATION}: every old row's detail shows the same unit prices and pricing source after it, from its tier`, async (t) => {
  const { url, client } = await before(t)
  await insertOld(client, ROWS)

  const later = (await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > MIGRATION).sort()
  t.same(await applyMigrations(url), [MIGRATION, ...later], 'the migration applied')
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  const left = (await client.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'usage'
      AND (column_name LIKE '%price%' OR column_name = 'pricing_source') ORDER BY 1`)).rows
  t.same(left, [{ column_name: 'model_price_id' }], 'the copies are gone; the version reference stays')

  const tiers = (await client.query(`SELECT snapshot_id, tier_index, above::int, up_to::int, input_price_per_1m::float8 AS input, cache_read_price_per_1m::float8 AS read,
      price_per_request::int FROM price_snapshot_tiers ORDER BY snapshot_id, tier_index`)).rows
  t.same(tiers, [
    { snapshot_id: P1, tier_index: 0, above: -1, up_to: 1000, input: n(3), read: n(0.3), price_per_request: null },
    { snapshot_id: P1, tier_index: 1, above: 1000, up_to: null, input: n(6), read: n(0.6), price_per_request: null },
    { snapshot_id: P2, tier_index: 0, above: -1, up_to: null, input: n(2), read: 123_456_789, price_per_request: 1_000_000 }
  ], 'each snapshot\'s tiers as rows, the deleted version\'s included')

  const { app } = await buildTestApp(t, { url })
  const admin = await signIn(app, 'admin')
  const details = await detailsOf(t, app, admin.headers, ROWS.map((row) => row.requestId))
  for (const row of ROWS) {
    const d = details.get(row.requestId)!
    const usd = (nano: number | null) => nano === null ? null : nano / B
    t.same([d.input_price_per_1m, d.output_price_per_1m, d.cache_write_5m_price_per_1m, d.cache_write_1h_price_per_1m, d.cache_read_price_per_1m, d.price_per_request, d.pricing_source],
      [...row.copy.slice(0, 6).map((v) => usd(v as number | null)), row.copy[6]], `${row.requestId}: the prices and source its copy held`)
  }

  // a version made after: its tiers get their rows with it
  const res = await app.inject({
    method: 'POST', url: '/api/admin/model-prices', headers: admin.headers,
    payload: { model: 'claude-z', effective_from: '2020-01-01T00:00:00Z', tiers: [{ up_to: 200, input: 1, output: 2 }, { up_to: 5000, input: 3, output: 4 }, { up_to: null, input: 5, output: 6 }] }
  })
  t.equal(res.statusCode, 201, res.body)
  t.same((await client.query('SELECT tier_index, above::int, up_to::int, output_price_per_1m::float8 AS output FROM price_snapshot_tiers WHERE snapshot_id = $1 ORDER BY tier_index', [res.json().id])).rows, [
    { tier_index: 0, above: -1, up_to: 200, output: n(2) }, { tier_index: 1, above: 200, up_to: 5000, output: n(4) }, { tier_index: 2, above: 5000, up_to: null, output: n(6) }
  ])
  await t.rejects(client.query(`INSERT INTO price_snapshots (id, model, tiers) VALUES (gen_random_uuid(), 'bad', $1)`,
    [JSON.stringify([{ up_to: 500, input: 1 }, { up_to: 400, input: 1 }, { up_to: null, input: 1 }])]), /do not rise strictly/, 'tiers that would overlap are refused')
})

t.test(`${MIGRATION}: a row whose copy disagrees with its tier stops the migration, named, and nothing changes`, async (t) => {
  const { url, client } = await before(t)
  await insertOld(client, ROWS)
  const migration = await readFile(join(MIGRATIONS_DIR, MIGRATION, 'migration.sql'), 'utf8')
  const cases: Array<[string, OldRow]> = [
    ['the first tier\'s prices at the second tier\'s context', { requestId: 'wrong-tier', status: 'completed', priceId: P1, tokens: [1001, 0, 0, 0], copy: copyOf(P1_TIERS[0]!, null) }],
    ['another read price', { requestId: 'wrong-read', status: 'completed', priceId: P1, tokens: [10, 0, 0, 0], copy: [n(3), n(15), n(3.75), n(6), 1, null, 'model_price'] }],
    ['prices without a version', { requestId: 'no-version', status: 'completed', priceId: null, tokens: [10, 0, 0, 0], copy: [...copyOf(P1_TIERS[0]!, null).slice(0, 6), 'unpriced'] as Copy }],
    ['a finished row without a source', { requestId: 'no-source', status: 'completed', priceId: null, tokens: [10, 0, 0, 0], copy: IN_FLIGHT }],
    ['an in-flight row with a source', { requestId: 'early-source', status: 'streaming', priceId: null, tokens: [0, 0, 0, 0], copy: UNPRICED }]
  ]
  // each case in a transaction rolled back after (the applier runs the migration in one transaction too)
  for (const [what, row] of cases) {
    await client.query('BEGIN')
    await insertOld(client, [row])
    await t.rejects(client.query(migration), new RegExp(`^usage row ${row.requestId} \\(`), what)
    await client.query('ROLLBACK')
  }
  await insertOld(client, [cases[0]![1]])
  await t.rejects(applyMigrations(url), new RegExp(`migration ${MIGRATION} failed: usage row wrong-tier \\(price version ${P1}, its tier found\\)`))
  const kept = (await client.query(`SELECT to_regclass('price_snapshot_tiers') IS NULL AS no_table,
    EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'usage' AND column_name = 'input_price_per_1m') AS copy_kept`)).rows[0]
  t.same(kept, { no_table: true, copy_kept: true }, 'rolled back whole')
})
