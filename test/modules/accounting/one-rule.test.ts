// One pricing rule and one rollup model: the SQL forms in accounting/ (which the seed
// and the rebuilds use) give what the TypeScript forms (which ingestion uses) give.
//  - the pricing SQL against priceRequest, on edge values and past int8;
//  - a seeded data set: every row's stored costs are priceRequest applied to its own
//    tokens, its price version's tiers (model_price_id) and its rate multiplier;
//  - each rollup rebuilt from the raw rows by the model's GROUP BY equals the rollup
//    the seed loaded, which the seed test checks against ingestion's RollupDeltas.
import pg from 'pg'
import sql, { raw } from 'sql-template-tag'
import t from 'tap'
import { fromUsageSql } from '../../../src/modules/accounting/bulk.js'
import { keyColumns, ROLLUPS } from '../../../src/modules/accounting/model.js'
import {
  actualCostSql, cacheCreationCostSql, componentCostSql, costsInBigints, inputContextSql, multiplierMicros, priceRequest, requestCostSql, storedActualCostsSql, tierFor, tierIndexSql
} from '../../../src/modules/accounting/pricing.js'
import type { StoredTier } from '../../../src/modules/accounting/tiers.js'
import { seed } from '../../../src/modules/seed/service.js'
import { createDatabase, testConfig } from '../../helper.js'
import { mulberry32 } from '../../prng.js'

type Row = Record<string, any>

t.test('the pricing SQL gives what the TypeScript rule gives', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(() => pool.end())
  const one = async (query: ReturnType<typeof sql>) => (await pool.query<Row>(query.text, query.values)).rows[0]!

  // halves at the rounding edge, a product past int8, a multiplier of 1.5 on a half
  const components: Array<[tokens: number, price: bigint]> = [[1, 500_000n], [1, 499_999n], [3, 500_000n], [2_000_000_000, 75_000_000_000n], [7, 1_499_999n], [0, 9n]]
  const random = mulberry32(15)
  for (let i = 0; i < 40; i++) components.push([Math.floor(random() * 3_000_000), BigInt(Math.floor(random() * 80_000_000_000))])
  for (const [tokens, price] of components) {
    const unit = { input: price, output: 0n, cacheWrite5m: price, cacheWrite1h: 3n * price, cacheRead: 0n }
    const ts = costsInBigints({ input: tokens, output: 0, cacheWrite5m: tokens, cacheWrite1h: tokens + 1, cacheRead: 0 }, unit, 0n, 1_500_000n)
    const row = await one(sql`SELECT ${componentCostSql(sql`${tokens}::int`, sql`${price}::bigint`)}::text AS input,
      ${cacheCreationCostSql(sql`${tokens}::int`, sql`${price}::bigint`, sql`${tokens + 1}::int`, sql`${3n * price}::bigint`)}::text AS writes,
      ${actualCostSql(sql`${ts.costs.input}::bigint`, sql`${1_500_000n}::bigint`, raw('false'))}::text AS actual,
      ${actualCostSql(sql`${ts.costs.input}::bigint`, sql`${1_500_000n}::bigint`, raw('true'))}::text AS free`)
    t.same(row, { input: ts.costs.input.toString(), writes: ts.costs.cacheCreation.toString(), actual: ts.actual.input.toString(), free: '0' }, `${tokens} tokens at ${price}`)
  }
  t.same(await one(sql`SELECT ${componentCostSql(raw('1'), raw('500000'))}::text AS up, ${componentCostSql(raw('1'), raw('-500000'))}::text AS down`),
    { up: '1', down: '-1' }, 'half away from zero, both ways (0.5 → 1, -0.5 → -1)')
  t.same(await one(sql`SELECT ${requestCostSql(raw('true'), raw('5000000'))}::text AS ok, ${requestCostSql(raw('false'), raw('5000000'))}::text AS failed,
    ${requestCostSql(raw('true'), raw('NULL::bigint'))}::text AS none`), { ok: '5000000', failed: '0', none: '0' }, 'the per-request price on success only')

  // tierFor: the first tier whose up_to covers the context, the last when none does
  const tiers = (upTos: Array<number | null>) => upTos.map((upTo) => ({ up_to: upTo, input: 1, output: 1, cache_write_5m: 1, cache_write_1h: 1, cache_read: 1 }) as StoredTier)
  for (const [upTos, context] of [[[100, 200, null], 100], [[100, 200, null], 101], [[100, 200, null], 201], [[100, 200], 500], [[null], 7], [[100, null], 99]] as Array<[Array<number | null>, number]>) {
    const bounds = upTos.slice(0, -1).map((upTo) => sql`${upTo}::bigint`)
    const context4 = inputContextSql({ input: sql`${context}::int`, cacheWrite5m: raw('0'), cacheWrite1h: raw('0'), cacheRead: raw('0') })
    t.equal((await one(sql`SELECT ${tierIndexSql(context4, bounds)} AS tier`)).tier, tierFor(tiers(upTos), context), `tiers ${JSON.stringify(upTos)}, context ${context}`)
  }
})

t.test('a seeded data set: every row costs what priceRequest says, and every rollup is the model\'s GROUP BY of the rows', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 3 })
  pool.on('error', () => {}) // the database is dropped WITH (FORCE) at teardown
  t.teardown(() => pool.end())
  await seed(pool, { rows: 2000, days: 10, seed: 15, now: new Date('2026-03-04T05:06:07.089Z'), encryptionKey: testConfig(url).ENCRYPTION_KEY, chunk: 700 })
  const query = async (text: string) => (await pool.query<Row>(text)).rows

  const versions = new Map((await query('SELECT id, provider_id, tiers, price_per_request::text FROM model_prices')).map((p) => [p.id, {
    id: p.id as string, providerId: p.provider_id as string | null, tiers: p.tiers as StoredTier[], pricePerRequest: p.price_per_request === null ? null : BigInt(p.price_per_request)
  }]))
  // the actual cost components as the SQL readers derive them (rows store their total only)
  const rows = await query(`SELECT u.*, ${storedActualCostsSql('u')} FROM usage u WHERE u.status IN ('completed', 'failed', 'cancelled') ORDER BY u.id`)
  t.ok(rows.length > 1500, `${rows.length} finished rows`)
  const mismatches: string[] = []
  const seen = new Set<string>()
  for (const row of rows) {
    const version = row.model_price_id === null ? null : versions.get(row.model_price_id)!
    const priced = priceRequest({
      input: row.input_tokens, output: row.output_tokens, cacheWrite5m: row.cache_creation_5m_input_tokens, cacheWrite1h: row.cache_creation_1h_input_tokens, cacheRead: row.cache_read_input_tokens
    }, version, { success: row.status === 'completed', multiplierMicros: multiplierMicros(row.rate_multiplier), freeTier: false })
    const stored = [row.input_cost, row.output_cost, row.cache_creation_cost, row.cache_read_cost, row.request_cost, row.total_cost,
      row.actual_input_cost, row.actual_output_cost, row.actual_cache_creation_cost, row.actual_cache_read_cost, row.actual_request_cost, row.actual_total_cost]
    const parts = (c: typeof priced.costs) => [c.input, c.output, c.cacheCreation, c.cacheRead, c.request, c.total]
    const expected = [...parts(priced.costs), ...parts(priced.actual)].map(String)
    if (stored.join() !== expected.join()) mismatches.push(`${row.request_id}: stored ${stored.join()}, priceRequest ${expected.join()}`)
    if (priced.tieredPricing?.tier_index === 1) seen.add('second tier')
    if (version === null) seen.add('unpriced')
    if (priced.costs.request > 0n) seen.add('per request')
    if (row.rate_multiplier !== '1.000000' && priced.actual.total !== priced.costs.total) seen.add('multiplier')
  }
  t.same(mismatches.slice(0, 5), [], 'no row differs from priceRequest')
  t.same([...seen].sort(), ['multiplier', 'per request', 'second tier', 'unpriced'], 'the rows cover the tiers, the unpriced, the per-request price and the multipliers')

  for (const r of ROLLUPS) {
    const rebuilt = `rebuilt_${r.table}`
    const insert = fromUsageSql(r, undefined, rebuilt)
    const client = await pool.connect()
    try {
      await client.query(`CREATE TEMP TABLE ${rebuilt} (LIKE ${r.table})`)
      await client.query(insert.text, insert.values)
      const columns = [...keyColumns(r), ...r.measures].join(', ')
      const differ = await client.query(`(SELECT ${columns} FROM ${r.table} EXCEPT ALL SELECT ${columns} FROM ${rebuilt})
        UNION ALL (SELECT ${columns} FROM ${rebuilt} EXCEPT ALL SELECT ${columns} FROM ${r.table})`)
      const count = await client.query(`SELECT count(*)::int AS n FROM ${rebuilt}`)
      t.ok(count.rows[0].n > 0, `${r.table}: rebuilt rows`)
      t.same(differ.rows, [], `${r.table}: the model's GROUP BY of the raw rows is the loaded rollup`)
    } finally {
      client.release()
    }
  }
})
