// The SQL readers find a usage row's tier by joining price_snapshot_tiers on its context
// range (pricing.ts tierPricesJoinSql), rows no longer copying their unit prices: on random
// tier lists and contexts (each tier's bounds and their neighbours included) the join finds
// exactly one tier, the one tierFor chose when the request was priced, with that tier's prices.
import pg from 'pg'
import t from 'tap'
import { tierFor, tierPricesJoinSql } from '../../../src/modules/accounting/pricing.js'
import type { StoredTier } from '../../../src/modules/accounting/tiers.js'
import { createDatabase } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'

t.test('the tier join equals tierFor on random tiers and contexts', async (t) => {
  const random = mulberry32(testSeed(t))
  const int = (below: number) => Math.floor(random() * below)
  const client = new pg.Client({ connectionString: await createDatabase(t) })
  await client.connect()
  t.teardown(() => client.end())

  const versions: Array<{ id: string, tiers: StoredTier[] }> = []
  for (let v = 0; v < 40; v++) {
    const count = 1 + int(4)
    let bound = 0
    const tiers: StoredTier[] = Array.from({ length: count }, (_x, i) => {
      bound += 1 + int(i === 0 ? 3 : 200_000)
      // every price tells its version and tier apart
      const price = (k: number) => (v * 10 + i) * 1000 + k
      return { up_to: i === count - 1 ? null : bound, input: price(1), output: price(2), cache_write_5m: price(3), cache_write_1h: price(4), cache_read: price(5) }
    })
    const { rows: [row] } = await client.query(`INSERT INTO model_prices (model, tiers, effective_from) VALUES ($1, $2, '2020-01-01T00:00:00Z') RETURNING id`,
      [`m${v}`, JSON.stringify(tiers)])
    versions.push({ id: row.id, tiers })
  }

  // contexts at and beside every bound, zero, and random ones; each split at random over the four token kinds
  const cases: Array<{ version: number, context: number, parts: number[] }> = []
  versions.forEach(({ tiers }, version) => {
    const near = tiers.flatMap((tier) => tier.up_to === null ? [] : [tier.up_to - 1, tier.up_to, tier.up_to + 1])
    for (const context of [0, ...near, ...Array.from({ length: 6 }, () => int(1_000_000))].filter((c) => c >= 0)) {
      const cuts = [int(context + 1), int(context + 1), int(context + 1)].sort((a, b) => a - b)
      cases.push({ version, context, parts: [cuts[0]!, cuts[1]! - cuts[0]!, cuts[2]! - cuts[1]!, context - cuts[2]!] })
    }
  })
  const { rows } = await client.query(`
    SELECT u.i, pt.tier_index, pt.input_price_per_1m::int AS input, pt.cache_read_price_per_1m::int AS read
      FROM unnest($1::int[], $2::uuid[], $3::int[], $4::int[], $5::int[], $6::int[])
           AS u(i, model_price_id, input_tokens, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, cache_read_input_tokens)
      ${tierPricesJoinSql('u')}
     ORDER BY u.i, pt.tier_index`,
  [cases.map((_c, i) => i), cases.map((c) => versions[c.version]!.id), ...[0, 1, 2, 3].map((k) => cases.map((c) => c.parts[k]!))])

  t.equal(rows.length, cases.length, 'one tier per row')
  const wrong = rows.filter((r) => {
    const { tiers } = versions[cases[r.i]!.version]!
    const index = tierFor(tiers, cases[r.i]!.context)
    return r.tier_index !== index || r.input !== tiers[index]!.input || r.read !== tiers[index]!.cache_read
  })
  t.same(wrong.slice(0, 3), [], `every one of ${cases.length} rows gets tierFor's tier and its prices`)
  t.ok(cases.filter((c) => versions[c.version]!.tiers.length > 1 && tierFor(versions[c.version]!.tiers, c.context) > 0).length > 50, 'later tiers are reached')

  const unpriced = await client.query(`SELECT pt.snapshot_id FROM (SELECT NULL::uuid AS model_price_id, 1 AS input_tokens, 0 AS cache_creation_5m_input_tokens,
      0 AS cache_creation_1h_input_tokens, 0 AS cache_read_input_tokens) u ${tierPricesJoinSql('u')}`)
  t.same(unpriced.rows, [{ snapshot_id: null }], 'an unpriced row keeps its row, with no prices')
})
