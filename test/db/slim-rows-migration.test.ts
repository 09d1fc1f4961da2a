// Migration 20261206100000_slim_usage_rows on a database holding usage rows of the old form
// (each with its tiered_pricing copy): the detail view shows the same tier facts after it,
// for a version still priced, one deleted before, and a provider's price whose provider is
// gone; a copy that disagrees with what the rows now derive stops the migration whole.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { buildTestApp, signIn } from '../helper.js'
import { migratedBefore } from './migrated-before.js'

const SLIM = '20261206100000_slim_usage_rows'
const [P1, P2, P3] = ['00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-0000000000a3']
const [ALPHA, GONE] = ['00000000-0000-4000-8000-00000000a1fa', '00000000-0000-4000-8000-0000000009e0']
const NIL = '00000000-0000-0000-0000-000000000000'

/** A database migrated up to the one before SLIM, and a client on it. */
async function beforeSlim (t: Test): Promise<{ url: string, client: pg.Client }> {
  const url = await migratedBefore(t, SLIM)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  return { url, client }
}

/** A tier as the old rows copied it (tierToUsd: USD per 1M) and as the detail view shows it. */
const usd = (upTo: number | null, input: number, output: number, write5m: number, write1h: number, read: number) =>
  ({ up_to: upTo, input, output, cache_write_5m: write5m, cache_write_1h: write1h, cache_read: read })
const shown = (tier: ReturnType<typeof usd>) => ({
  ...tier, input_price_per_1m: tier.input, output_price_per_1m: tier.output, cache_creation_price_per_1m: tier.cache_write_5m,
  cache_read_price_per_1m: tier.cache_read, cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: tier.cache_write_1h }]
})
const P1_TIERS = [usd(1000, 3, 15, 3.75, 6, 0.3), usd(null, 6, 22.5, 7.5, 12, 0.6)]
// a price with digits down to the nano-USD
const P2_TIERS = [usd(null, 2, 8, 2.5, 4, 0.123456789)]
const P3_TIERS = [usd(null, 1.1, 4.4, 1.375, 2.2, 0.11)]
const nano = (tier: ReturnType<typeof usd>) => ({
  up_to: tier.up_to, input: Math.round(tier.input * 1e9), output: Math.round(tier.output * 1e9), cache_write_5m: Math.round(tier.cache_write_5m * 1e9),
  cache_write_1h: Math.round(tier.cache_write_1h * 1e9), cache_read: Math.round(tier.cache_read * 1e9)
})
const facts = (id: string, tiers: Array<ReturnType<typeof usd>>, index: number, context: number, source: string) =>
  ({ total_input_context: context, tier_index: index, tier_count: tiers.length, current_tier: tiers[index], tiers, source, model_price_id: id })

interface OldRow { requestId: string, providerId: string | null, priceId: string | null, tokens: [number, number, number, number], tiered: object | null }

async function insertOld (client: pg.Client, rows: OldRow[]): Promise<void> {
  for (const r of rows) {
    const [input, write5m, write1h, read] = r.tokens
    // the unit prices ingestion copied: its tier's, in nano-USD
    const tier = r.tiered === null ? null : nano((r.tiered as { current_tier: ReturnType<typeof usd> }).current_tier)
    await client.query(`INSERT INTO usage (request_id, provider_id, model, status, input_tokens, cache_creation_input_tokens, cache_creation_5m_input_tokens,
        cache_creation_1h_input_tokens, cache_read_input_tokens, total_tokens, pricing_source, model_price_id, price_per_request, tiered_pricing, finished_at,
        input_price_per_1m, output_price_per_1m, cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m)
      VALUES ($1, $2, 'claude-x', 'completed', $3::int, $4::int + $5::int, $4, $5, $6::int, $3::int + $4::int + $5::int + $6::int, $7, $8, $9, $10, now(),
        $11, $12, $13, $14, $15)`,
    [r.requestId, r.providerId, input, write5m, write1h, read, r.priceId === null ? 'unpriced' : 'model_price', r.priceId, r.priceId === P2 ? 1_000_000 : null,
      r.tiered === null ? null : JSON.stringify(r.tiered), tier?.input ?? null, tier?.output ?? null, tier?.cache_write_5m ?? null, tier?.cache_write_1h ?? null,
      tier?.cache_read ?? null])
  }
}

/** The catalogue of the old database: P1 global and kept, P2 alpha's own and deleted, P3 a deleted provider's own (gone with it). */
async function oldCatalogue (client: pg.Client): Promise<void> {
  await client.query(`INSERT INTO providers (id, name, billing_type, updated_at) VALUES ($1, 'alpha', 'pay_as_you_go', now()), ($2, 'gone', 'pay_as_you_go', now())`, [ALPHA, GONE])
  const price = `INSERT INTO model_prices (id, model, provider_id, tiers, price_per_request, effective_from) VALUES ($1, 'claude-x', $2, $3, $4, '2020-01-01T00:00:00Z')`
  await client.query(price, [P1, null, JSON.stringify(P1_TIERS.map(nano)), null])
  await client.query(price, [P2, ALPHA, JSON.stringify(P2_TIERS.map(nano)), 1_000_000])
  await client.query(price, [P3, GONE, JSON.stringify(P3_TIERS.map(nano)), null])
  await client.query('DELETE FROM model_prices WHERE id = $1', [P2])
  await client.query('DELETE FROM providers WHERE id = $1', [GONE])
}

t.test(`${SLIM}: every old row's detail shows the same tier facts after it, from a snapshot of its version`, async (t) => {
  const { url, client } = await beforeSlim(t)
  await oldCatalogue(client)
  t.equal((await client.query('SELECT count(*)::int AS n FROM model_prices')).rows[0].n, 1, 'P2 deleted, P3 gone with its provider')
  await insertOld(client, [
    // context 800 + 300 + 100 + 200 = 1400 > 1000: P1's second tier
    { requestId: 'kept', providerId: ALPHA, priceId: P1, tokens: [800, 300, 100, 200], tiered: facts(P1, P1_TIERS, 1, 1400, 'global') },
    { requestId: 'kept-small', providerId: ALPHA, priceId: P1, tokens: [10, 0, 0, 0], tiered: facts(P1, P1_TIERS, 0, 10, 'global') },
    { requestId: 'deleted', providerId: ALPHA, priceId: P2, tokens: [100, 0, 0, 0], tiered: facts(P2, P2_TIERS, 0, 100, 'provider') },
    // the provider's delete set the row's provider_id to NULL
    { requestId: 'orphan', providerId: null, priceId: P3, tokens: [50, 0, 0, 5], tiered: facts(P3, P3_TIERS, 0, 55, 'provider') },
    { requestId: 'unpriced', providerId: ALPHA, priceId: null, tokens: [5, 0, 0, 0], tiered: null }
  ])
  await client.query(`INSERT INTO usage (request_id, model) VALUES ('pending', 'claude-x')`)

  t.same(await applyMigrations(url), [SLIM, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > SLIM).sort()], 'the slim migration applied')
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  const columns = (await client.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'usage' AND column_name = 'tiered_pricing'`)).rows
  t.same(columns, [], 'the copy is gone')

  const snapshots = (await client.query('SELECT id, model, provider_id, tiers, price_per_request::text, effective_from FROM price_snapshots ORDER BY id')).rows
  t.same(snapshots, [
    { id: P1, model: 'claude-x', provider_id: null, tiers: P1_TIERS.map(nano), price_per_request: null, effective_from: new Date('2020-01-01T00:00:00Z') },
    { id: P2, model: 'claude-x', provider_id: ALPHA, tiers: P2_TIERS.map(nano), price_per_request: '1000000', effective_from: null },
    { id: P3, model: 'claude-x', provider_id: NIL, tiers: P3_TIERS.map(nano), price_per_request: null, effective_from: null }
  ], 'the kept version copied; the deleted ones rebuilt from their rows\' copies, to the nano-USD')

  const { app } = await buildTestApp(t, { url })
  const admin = await signIn(app, 'admin')
  const tiered = async (requestId: string) => {
    const { id } = await app.prisma.usage.findFirstOrThrow({ where: { requestId } })
    const res = await app.inject({ method: 'GET', url: `/api/admin/usage/${id}`, headers: admin.headers })
    t.equal(res.statusCode, 200)
    return res.json().tiered_pricing
  }
  const expected = (id: string, tiers: Array<ReturnType<typeof usd>>, index: number, context: number, source: string) =>
    ({ ...facts(id, tiers.map(shown), index, context, source) })
  t.same(await tiered('kept'), expected(P1, P1_TIERS, 1, 1400, 'global'))
  t.same(await tiered('kept-small'), expected(P1, P1_TIERS, 0, 10, 'global'))
  t.same(await tiered('deleted'), expected(P2, P2_TIERS, 0, 100, 'provider'))
  t.same(await tiered('orphan'), expected(P3, P3_TIERS, 0, 55, 'provider'))
  t.equal(await tiered('unpriced'), null)
  t.equal(await tiered('pending'), null)
})

t.test(`${SLIM}: a row whose copy disagrees with its version or its tokens stops the migration, named, and nothing changes`, async (t) => {
  const cases: Array<[string, OldRow]> = [
    ['another tier than its context gives', { requestId: 'wrong-tier', providerId: ALPHA, priceId: P1, tokens: [800, 300, 100, 200], tiered: facts(P1, P1_TIERS, 0, 1400, 'global') }],
    ['another context than its tokens', { requestId: 'wrong-context', providerId: ALPHA, priceId: P1, tokens: [800, 0, 0, 0], tiered: facts(P1, P1_TIERS, 0, 900, 'global') }],
    ['other tiers than its version', { requestId: 'wrong-tiers', providerId: ALPHA, priceId: P1, tokens: [10, 0, 0, 0], tiered: facts(P1, [P1_TIERS[0]!, usd(null, 6, 22, 7.5, 12, 0.6)], 0, 10, 'global') }],
    ['another source than its version', { requestId: 'wrong-source', providerId: ALPHA, priceId: P1, tokens: [10, 0, 0, 0], tiered: facts(P1, P1_TIERS, 0, 10, 'provider') }],
    ['a version and no copy', { requestId: 'no-copy', providerId: ALPHA, priceId: P1, tokens: [10, 0, 0, 0], tiered: null }]
  ]
  const { url, client } = await beforeSlim(t)
  await oldCatalogue(client)
  const fine: OldRow = { requestId: 'fine', providerId: ALPHA, priceId: P1, tokens: [10, 0, 0, 0], tiered: facts(P1, P1_TIERS, 0, 10, 'global') }
  await insertOld(client, [fine])
  const migration = await readFile(join(MIGRATIONS_DIR, SLIM, 'migration.sql'), 'utf8')
  // each case in a transaction rolled back after (the applier runs the migration in one transaction too)
  for (const [what, row] of cases) {
    await client.query('BEGIN')
    await insertOld(client, [row])
    await t.rejects(client.query(migration), new RegExp(`^usage row ${row.requestId} \\(price version ${P1}\\)`), what)
    await client.query('ROLLBACK')
  }
  // and through the applier: it reports the row, and leaves the database as it was
  await insertOld(client, [cases[0]![1]])
  await t.rejects(applyMigrations(url), new RegExp(`migration ${SLIM} failed: usage row wrong-tier \\(price version ${P1}\\)`))
  const left = (await client.query(`SELECT to_regclass('price_snapshots') IS NULL AS no_table,
    EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'usage' AND column_name = 'tiered_pricing') AS copy_kept`)).rows[0]
  t.same(left, { no_table: true, copy_kept: true }, 'rolled back whole')
})
