// Slim usage rows: a row keeps its price version's id, not a copy of its tiers, and the
// detail view still shows the exact tiers that priced the request after that version is
// superseded, deleted, or its provider deleted; price versions cannot be edited in place.
import t, { type Test } from 'tap'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'

/** A tier in keymeter's names and Aether's (what the detail view shows), from its USD prices. */
const shown = (upTo: number | null, input: number, output: number, write5m: number, write1h: number, read: number) => ({
  up_to: upTo, input, output, cache_write_5m: write5m, cache_write_1h: write1h, cache_read: read,
  input_price_per_1m: input, output_price_per_1m: output, cache_creation_price_per_1m: write5m, cache_read_price_per_1m: read,
  cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: write1h }]
})
// the first version: 3 / 15 up to 1000 tokens of context, 6 / 22.5 beyond (cache prices by Anthropic's ratios)
const V1 = [shown(1000, 3, 15, 3.75, 6, 0.3), shown(null, 6, 22.5, 7.5, 12, 0.6)]

async function setUp (t: Test) {
  const g = await gateway(t)
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id)
  const key = await g.standaloneKey()
  const complete = (requestId: string, input: number, extra: object = {}) => ({
    type: 'complete', request_id: requestId, api_key_id: key.id, model: 'claude-x', provider_api_key_id: providerKey.id,
    created_at: '2025-03-10T08:00:00Z', status: 'completed', status_code: 200, input_tokens: input, output_tokens: 10, ...extra
  })
  return { g, provider, providerKey, key, complete }
}

const usageRow = async (g: Gateway, requestId: string) => g.app.prisma.usage.findFirstOrThrow({ where: { requestId } })
const detail = async (g: Gateway, requestId: string): Promise<Json> => g.adminCall('GET', `/api/admin/usage/${(await usageRow(g, requestId)).id}`)

t.test('rows of one price version share one reference; their detail keeps its tiers once the version is superseded and deleted', async (t) => {
  const { g, complete } = await setUp(t)
  const v1 = await g.price({ model: 'claude-x', tiers: [{ up_to: 1000, input: 3, output: 15 }, { up_to: null, input: 6, output: 22.5 }] })
  // context 800 + 300 + 100 = 1200 > 1000: the second tier; the other row, 500: the first
  await g.send([complete('big', 800, { cache_creation_5m_input_tokens: 300, cache_read_input_tokens: 100 }), complete('small', 500)])
  const [big, small] = [await usageRow(g, 'big'), await usageRow(g, 'small')]
  t.equal(big.modelPriceId, v1.id, 'the row references its price version')
  t.equal(small.modelPriceId, v1.id, 'and so does the other row of that version')
  t.notOk('tieredPricing' in big, 'the row holds no copy of the tiers')
  const snapshots = await g.app.prisma.priceSnapshot.findMany()
  t.same(snapshots.map((s) => s.id), [v1.id], 'one snapshot for the version, whatever the number of rows')

  const before = { big: await detail(g, 'big'), small: await detail(g, 'small') }
  t.same(before.big.tiered_pricing, { total_input_context: 1200, tier_index: 1, tier_count: 2, current_tier: V1[1], tiers: V1, source: 'global', model_price_id: v1.id })
  t.same(before.small.tiered_pricing, { total_input_context: 500, tier_index: 0, tier_count: 2, current_tier: V1[0], tiers: V1, source: 'global', model_price_id: v1.id })

  // a new version (one tier, other prices), in effect from the same instant as the first: it now prices claude-x at that time
  const v2 = await g.adminCall('PUT', `/api/admin/model-prices/${v1.id}`, { tiers: [{ up_to: null, input: 1, output: 2 }], effective_from: '2021-01-01T00:00:00Z' })
  await g.send([complete('later', 1200)])
  t.equal((await usageRow(g, 'later')).modelPriceId, v2.id, 'a request priced after references the new version')
  t.same((await detail(g, 'later')).tiered_pricing, {
    total_input_context: 1200, tier_index: 0, tier_count: 1, current_tier: shown(null, 1, 2, 1.25, 2, 0.1), tiers: [shown(null, 1, 2, 1.25, 2, 0.1)], source: 'global', model_price_id: v2.id
  })
  t.same((await detail(g, 'big')).tiered_pricing, before.big.tiered_pricing, 'superseded: the old rows show the tiers that priced them')

  await g.adminCall('DELETE', `/api/admin/model-prices/${v1.id}`)
  t.equal(await g.app.prisma.modelPrice.count({ where: { id: v1.id } }), 0, 'the version is gone from the prices')
  t.same((await detail(g, 'big')).tiered_pricing, before.big.tiered_pricing, 'deleted: the old rows still show the tiers that priced them')
  t.same((await detail(g, 'small')).tiered_pricing, before.small.tiered_pricing)
  t.same((await g.app.prisma.priceSnapshot.findMany({ orderBy: { createdAt: 'asc' } })).map((s) => s.id).sort(), [v1.id, v2.id].sort(), 'snapshots outlive their version')
})

t.test("a provider's own price: the detail keeps its tiers and source after the provider (and with it the price) is deleted", async (t) => {
  const { g, provider, complete } = await setUp(t)
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const own = await g.price({ model: 'claude-x', provider_id: provider.id, tiers: [{ up_to: null, input: 2, output: 8, cache_read: 0.5 }] })
  await g.send([complete('own', 100)])
  const expected = { total_input_context: 100, tier_index: 0, tier_count: 1, current_tier: shown(null, 2, 8, 2.5, 4, 0.5), tiers: [shown(null, 2, 8, 2.5, 4, 0.5)], source: 'provider', model_price_id: own.id }
  t.same((await detail(g, 'own')).tiered_pricing, expected)
  await g.adminCall('DELETE', `/api/admin/providers/${provider.id}`)
  t.equal(await g.app.prisma.modelPrice.count({ where: { id: own.id } }), 0, 'the provider\'s price went with it')
  const after = await detail(g, 'own')
  t.equal(after.provider_id, null, 'the row lost its provider')
  t.same(after.tiered_pricing, expected, 'and still shows the provider\'s tiers that priced it')
})

t.test('price versions and their snapshots are immutable in the database', async (t) => {
  const { g } = await setUp(t)
  const v1 = await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  await t.rejects(g.app.prisma.$executeRawUnsafe(`UPDATE model_prices SET tiers = '[]' WHERE id = $1::uuid`, v1.id), /cannot change: insert a new version/, 'a version is not edited in place')
  await t.rejects(g.app.prisma.$executeRawUnsafe(`UPDATE price_snapshots SET price_per_request = 1 WHERE id = $1::uuid`, v1.id), /cannot change/)
  await t.rejects(g.app.prisma.$executeRawUnsafe('DELETE FROM price_snapshots WHERE id = $1::uuid', v1.id), /cannot change/, 'nor is its snapshot deleted')
  t.equal(await g.app.prisma.$executeRawUnsafe('UPDATE model_prices SET created_at = created_at WHERE id = $1::uuid', v1.id), 1, 'a write that changes none of the priced fields passes')
  t.match(await g.app.prisma.priceSnapshot.findUniqueOrThrow({ where: { id: v1.id } }), {
    model: 'claude-x', providerId: null, tiers: [{ up_to: null, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 }]
  }, 'the snapshot is the version as inserted')
})
