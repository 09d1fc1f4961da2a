import t from 'tap'
import { aetherTier, type StoredTier } from '../../../src/modules/accounting/tiers.js'

t.test('aetherTier gives a stored tier in Aether\'s names, USD per 1M tokens, keymeter\'s names beside them', async (t) => {
  // $3 / $15 per 1M, writes $3.75 (5 min) and $6 (1 h), reads $0.30, in nano-USD per 1M tokens
  const stored: StoredTier = { up_to: 200_000, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 }
  t.same(aetherTier(stored), {
    up_to: 200_000,
    input: 3,
    output: 15,
    cache_write_5m: 3.75,
    cache_write_1h: 6,
    cache_read: 0.3,
    input_price_per_1m: 3,
    output_price_per_1m: 15,
    cache_creation_price_per_1m: 3.75,
    cache_read_price_per_1m: 0.3,
    cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 6 }]
  })
  t.equal(aetherTier({ ...stored, up_to: null }).up_to, null, 'the open-ended tier stays open-ended')
})
