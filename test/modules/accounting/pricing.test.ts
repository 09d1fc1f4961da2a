// Pricing one request, checked against amounts worked out by hand. Prices are stored
// as nano-USD per 1M tokens, so a component costs tokens × price / 1e6 nano-USD,
// rounded once, half away from zero. Every expected amount below is a literal with
// its arithmetic beside it; none is computed by the code under test.
import t from 'tap'
import { costsInBigints, costsInNumbers, MULTIPLIER_SCALE, multiplierMicros, priceRequest, splitCacheWrites, tierFor, worstCaseCost, type Tokens } from '../../../src/modules/accounting/pricing.js'
import type { PriceVersion } from '../../../src/modules/prices/service.js'
import { tierFromUsd, type StoredTier } from '../../../src/modules/accounting/tiers.js'
import { mulberry32, testSeed } from '../../prng.js'

// ---- the prices used below ------------------------------------------------------
// Tier 1 (context <= 200 000): USD 3 / 15 / 3.75 / 6 / 0.30 per 1M tokens, i.e. per
// token 3000 / 15000 / 3750 / 6000 / 300 nano-USD.
// Tier 2 (above): USD 6 / 22.5 / 7.5 / 12 / 0.60 per 1M, i.e. per token
// 6000 / 22500 / 7500 / 12000 / 600 nano-USD.
const TIER_1: StoredTier = { up_to: 200_000, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 }
const TIER_2: StoredTier = { up_to: null, input: 6_000_000_000, output: 22_500_000_000, cache_write_5m: 7_500_000_000, cache_write_1h: 12_000_000_000, cache_read: 600_000_000 }

const version = (tiers: StoredTier[], pricePerRequest: bigint | null = null, providerId: string | null = null): PriceVersion => ({
  id: '11111111-1111-4111-8111-111111111111', model: 'claude-x', providerId, tiers, pricePerRequest, effectiveFrom: new Date('2020-01-01T00:00:00Z')
})
const TWO_TIERS = version([TIER_1, TIER_2])
const ONE = MULTIPLIER_SCALE
const plain = { success: true, multiplierMicros: ONE, freeTier: false }
const tokens = (partial: Partial<Tokens>): Tokens => ({ input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0, ...partial })

interface Expected { input: bigint, output: bigint, cacheCreation: bigint, cacheRead: bigint, request: bigint, total: bigint }

t.test('tiers: chosen by total input context = input + cache writes (5m and 1h) + cache reads; output does not count', async (t) => {
  const cases: Array<[string, Tokens, number, Expected]> = [
    ['a small request: context 1 000 → tier 1',
      tokens({ input: 1000, output: 500 }), 0,
      // input 1000 × 3000 = 3 000 000; output 500 × 15000 = 7 500 000
      { input: 3_000_000n, output: 7_500_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 10_500_000n }],
    ['exactly at up_to: 150 000 + 30 000 (5m) + 10 000 (1h) + 10 000 (read) = 200 000 → still tier 1',
      tokens({ input: 150_000, cacheWrite5m: 30_000, cacheWrite1h: 10_000, cacheRead: 10_000 }), 0,
      // input 150 000 × 3000 = 450 000 000
      // writes 30 000 × 3750 + 10 000 × 6000 = 112 500 000 + 60 000 000 = 172 500 000
      // read 10 000 × 300 = 3 000 000; total 450 000 000 + 172 500 000 + 3 000 000 = 625 500 000
      { input: 450_000_000n, output: 0n, cacheCreation: 172_500_000n, cacheRead: 3_000_000n, request: 0n, total: 625_500_000n }],
    ['one cache-read token over up_to: context 200 001 → tier 2 for every component',
      tokens({ input: 150_000, cacheWrite5m: 30_000, cacheWrite1h: 10_000, cacheRead: 10_001 }), 1,
      // input 150 000 × 6000 = 900 000 000
      // writes 30 000 × 7500 + 10 000 × 12000 = 225 000 000 + 120 000 000 = 345 000 000
      // read 10 001 × 600 = 6 000 600; total 900 000 000 + 345 000 000 + 6 000 600 = 1 251 000 600
      { input: 900_000_000n, output: 0n, cacheCreation: 345_000_000n, cacheRead: 6_000_600n, request: 0n, total: 1_251_000_600n }],
    ['one 1h cache-write token over up_to (199 999 + 2) → tier 2',
      tokens({ input: 199_999, cacheWrite1h: 2 }), 1,
      // input 199 999 × 6000 = 1 199 994 000; writes 2 × 12000 = 24 000; total 1 200 018 000
      { input: 1_199_994_000n, output: 0n, cacheCreation: 24_000n, cacheRead: 0n, request: 0n, total: 1_200_018_000n }],
    ['input alone at up_to (200 000) with a huge output → tier 1: output is not input context',
      tokens({ input: 200_000, output: 100_000 }), 0,
      // input 200 000 × 3000 = 600 000 000; output 100 000 × 15000 = 1 500 000 000; total 2 100 000 000
      { input: 600_000_000n, output: 1_500_000_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 2_100_000_000n }],
    ['input alone one over up_to (200 001) → tier 2',
      tokens({ input: 200_001, output: 10 }), 1,
      // input 200 001 × 6000 = 1 200 006 000; output 10 × 22500 = 225 000; total 1 200 231 000
      { input: 1_200_006_000n, output: 225_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 1_200_231_000n }],
    ['nothing at all → tier 1, zero',
      tokens({}), 0,
      { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n }]
  ]
  for (const [name, given, tierIndex, expected] of cases) {
    const priced = priceRequest(given, TWO_TIERS, plain)
    t.same(priced.costs, expected, name)
    t.same(priced.actual, expected, `${name}: multiplier 1 → actual = costs`)
    t.equal(priced.source, 'model_price')
    t.equal(priced.tieredPricing?.tier_index, tierIndex, `${name}: tier index`)
    t.equal(priced.tieredPricing?.total_input_context, given.input + given.cacheWrite5m + given.cacheWrite1h + given.cacheRead)
    const tier = tierIndex === 0 ? TIER_1 : TIER_2
    t.same(priced.snapshot, {
      input: BigInt(tier.input), output: BigInt(tier.output), cacheWrite5m: BigInt(tier.cache_write_5m),
      cacheWrite1h: BigInt(tier.cache_write_1h), cacheRead: BigInt(tier.cache_read), perRequest: null
    }, `${name}: the snapshot holds the chosen tier's unit prices`)
  }
})

t.test('tiered_pricing describes the choice in USD', async (t) => {
  const priced = priceRequest(tokens({ input: 150_000, cacheRead: 50_001 }), version([TIER_1, TIER_2], null, '22222222-2222-4222-8222-222222222222'), plain)
  t.same(priced.tieredPricing, {
    total_input_context: 200_001,
    tier_index: 1,
    tier_count: 2,
    current_tier: { up_to: null, input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6 },
    tiers: [
      { up_to: 200_000, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 },
      { up_to: null, input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6 }
    ],
    source: 'provider',
    model_price_id: '11111111-1111-4111-8111-111111111111'
  })
  t.equal(priceRequest(tokens({ input: 1 }), TWO_TIERS, plain).tieredPricing?.source, 'global', 'provider_id null → global')
})

t.test('tierFor: the first tier whose up_to covers the context', async (t) => {
  const tiers: StoredTier[] = [{ ...TIER_1, up_to: 100 }, { ...TIER_1, up_to: 1000 }, { ...TIER_1, up_to: null }]
  const cases: Array<[number, number]> = [[0, 0], [1, 0], [100, 0], [101, 1], [999, 1], [1000, 1], [1001, 2], [2_000_000_000, 2]]
  for (const [context, index] of cases) t.equal(tierFor(tiers, context), index, `context ${context} → tier ${index}`)
  t.equal(tierFor([{ ...TIER_1, up_to: null }], 5_000_000), 0, 'one open tier takes everything')
  t.equal(tierFor([{ ...TIER_1, up_to: 10 }, { ...TIER_1, up_to: 20 }], 21), 1, 'no open last tier: the last tier takes the overflow')
})

t.test('5m and 1h cache writes are priced separately, each at its own price', async (t) => {
  const cases: Array<[string, Tokens, bigint]> = [
    ['1000 written for 5 minutes', tokens({ cacheWrite5m: 1000 }), 3_750_000n], // 1000 × 3750
    ['1000 written for 1 hour', tokens({ cacheWrite1h: 1000 }), 6_000_000n], // 1000 × 6000
    ['400 for 5m and 600 for 1h', tokens({ cacheWrite5m: 400, cacheWrite1h: 600 }), 5_100_000n] // 400 × 3750 + 600 × 6000 = 1 500 000 + 3 600 000
  ]
  for (const [name, given, cacheCreation] of cases) {
    const priced = priceRequest(given, TWO_TIERS, plain)
    t.equal(priced.costs.cacheCreation, cacheCreation, name)
    t.equal(priced.costs.total, cacheCreation, `${name}: the total is the write cost alone`)
  }
})

t.test('splitCacheWrites: a given split wins; without one, the provider key TTL decides (60 → 1h, else 5m)', async (t) => {
  const cases: Array<[string, Parameters<typeof splitCacheWrites>, { write5m: number, write1h: number }, bigint]> = [
    // no split reported: the TTL the provider key writes with
    ['TTL 60, no split → 1h price', [1000, undefined, undefined, 60], { write5m: 0, write1h: 1000 }, 6_000_000n], // 1000 × 6000
    ['TTL 5, no split → 5m price', [1000, undefined, undefined, 5], { write5m: 1000, write1h: 0 }, 3_750_000n], // 1000 × 3750
    ['TTL null (no provider key), no split → 5m price', [1000, undefined, undefined, null], { write5m: 1000, write1h: 0 }, 3_750_000n],
    ['TTL 30, no split → 5m price', [1000, undefined, undefined, 30], { write5m: 1000, write1h: 0 }, 3_750_000n],
    ['TTL 0 (no cache), no split → 5m price', [1000, undefined, undefined, 0], { write5m: 1000, write1h: 0 }, 3_750_000n],
    // a reported split is used as given, whatever the TTL
    ['split given on a TTL-60 key', [1000, 400, 600, 60], { write5m: 400, write1h: 600 }, 5_100_000n], // 400 × 3750 + 600 × 6000
    ['only the 5m part given on a TTL-60 key', [1000, 1000, undefined, 60], { write5m: 1000, write1h: 0 }, 3_750_000n],
    ['only the 1h part given on a TTL-5 key', [1000, undefined, 1000, 5], { write5m: 0, write1h: 1000 }, 6_000_000n],
    ['no writes at all', [0, undefined, undefined, 60], { write5m: 0, write1h: 0 }, 0n]
  ]
  for (const [name, args, split, cost] of cases) {
    const got = splitCacheWrites(...args)
    t.same(got, split, name)
    t.equal(priceRequest(tokens({ cacheWrite5m: got.write5m, cacheWrite1h: got.write1h }), TWO_TIERS, plain).costs.cacheCreation, cost, `${name}: priced`)
  }
})

t.test('the per-request price is charged on success only', async (t) => {
  const withRequestPrice = version([TIER_1, TIER_2], 2_000_000n) // USD 0.002 per request
  const given = tokens({ input: 1000, output: 100 })
  const ok = priceRequest(given, withRequestPrice, plain)
  // input 1000 × 3000 = 3 000 000; output 100 × 15000 = 1 500 000; request 2 000 000; total 6 500 000
  t.same(ok.costs, { input: 3_000_000n, output: 1_500_000n, cacheCreation: 0n, cacheRead: 0n, request: 2_000_000n, total: 6_500_000n })
  t.equal(ok.snapshot?.perRequest, 2_000_000n)
  const failed = priceRequest(given, withRequestPrice, { ...plain, success: false })
  // the tokens are still charged; the request price is not: 3 000 000 + 1 500 000
  t.same(failed.costs, { input: 3_000_000n, output: 1_500_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 4_500_000n })
  t.equal(failed.snapshot?.perRequest, 2_000_000n, 'the snapshot keeps the unit price even when it was not charged')
  t.equal(failed.actual.request, 0n, 'nor in actual costs')
})

t.test('rate multipliers apply to actual costs component by component, each rounded half away from zero', async (t) => {
  // An odd little tier so the rounding shows: per token 7 / 5 / 3 / 11 / 1 nano-USD.
  const odd = version([{ up_to: null, input: 7_000_000, output: 5_000_000, cache_write_5m: 3_000_000, cache_write_1h: 11_000_000, cache_read: 1_000_000 }], 3n)
  const one = tokens({ input: 1, output: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1 })
  // costs: input 7, output 5, writes 3 + 11 = 14, read 1, request 3; total 30
  const costs = { input: 7n, output: 5n, cacheCreation: 14n, cacheRead: 1n, request: 3n, total: 30n }
  const cases: Array<[string, string, bigint, Expected]> = [
    ['× 1', '1', 1_000_000n, costs],
    ['× 1.5', '1.5', 1_500_000n,
      // 7 × 1.5 = 10.5 → 11; 5 × 1.5 = 7.5 → 8; 14 × 1.5 = 21; 1 × 1.5 = 1.5 → 2; 3 × 1.5 = 4.5 → 5
      // total = 11 + 8 + 21 + 2 + 5 = 47 (not round(30 × 1.5) = 45: each component is rounded)
      { input: 11n, output: 8n, cacheCreation: 21n, cacheRead: 2n, request: 5n, total: 47n }],
    ['× 0.333333', '0.333333', 333_333n,
      // 7 × 0.333333 = 2.333331 → 2; 5 × 0.333333 = 1.666665 → 2; 14 × 0.333333 = 4.666662 → 5;
      // 1 × 0.333333 = 0.333333 → 0; 3 × 0.333333 = 0.999999 → 1; total 2 + 2 + 5 + 0 + 1 = 10
      { input: 2n, output: 2n, cacheCreation: 5n, cacheRead: 0n, request: 1n, total: 10n }]
  ]
  for (const [name, decimal, micros, actual] of cases) {
    t.equal(multiplierMicros(decimal), micros, `${name}: ${decimal} in millionths`)
    const priced = priceRequest(one, odd, { success: true, multiplierMicros: micros, freeTier: false })
    t.same(priced.costs, costs, `${name}: costs do not depend on the multiplier`)
    t.same(priced.actual, actual, `${name}: actual costs`)
  }

  // a realistic one: 1000 input + 500 output on tier 1 at × 1.5 and × 0.333333
  const big = tokens({ input: 1000, output: 500 })
  // costs 3 000 000 + 7 500 000 = 10 500 000
  // × 1.5: 4 500 000 + 11 250 000 = 15 750 000
  t.same(priceRequest(big, TWO_TIERS, { ...plain, multiplierMicros: 1_500_000n }).actual,
    { input: 4_500_000n, output: 11_250_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 15_750_000n })
  // × 0.333333: 3 000 000 × 0.333333 = 999 999; 7 500 000 × 0.333333 = 2 499 997.5 → 2 499 998; total 3 499 997
  t.same(priceRequest(big, TWO_TIERS, { ...plain, multiplierMicros: 333_333n }).actual,
    { input: 999_999n, output: 2_499_998n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 3_499_997n })
})

t.test('multiplierMicros reads DECIMAL(12,6) values exactly', async (t) => {
  const cases: Array<[{ toString: () => string } | null | undefined, bigint]> = [
    [null, 1_000_000n], // no provider key → × 1
    [undefined, 1_000_000n],
    ['1', 1_000_000n],
    ['1.000000', 1_000_000n],
    ['2', 2_000_000n],
    ['1.5', 1_500_000n],
    ['0.333333', 333_333n],
    ['0.000001', 1n],
    ['0', 0n],
    ['999.999999', 999_999_999n],
    [{ toString: () => '1.25' }, 1_250_000n] // as Prisma's Decimal prints
  ]
  for (const [value, micros] of cases) t.equal(multiplierMicros(value), micros, `${String(value)} → ${micros}`)
})

t.test('free tier: actual costs are zero, costs are kept', async (t) => {
  const priced = priceRequest(tokens({ input: 1000, output: 500, cacheRead: 100 }), version([TIER_1, TIER_2], 2_000_000n), { success: true, multiplierMicros: 1_500_000n, freeTier: true })
  // input 1000 × 3000 = 3 000 000; output 500 × 15000 = 7 500 000; read 100 × 300 = 30 000; request 2 000 000
  // total 3 000 000 + 7 500 000 + 30 000 + 2 000 000 = 12 530 000
  t.same(priced.costs, { input: 3_000_000n, output: 7_500_000n, cacheCreation: 0n, cacheRead: 30_000n, request: 2_000_000n, total: 12_530_000n })
  t.same(priced.actual, { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n })
  t.equal(priced.source, 'model_price')
})

t.test('unpriced: everything zero, source unpriced, no snapshot', async (t) => {
  const zero = { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n }
  for (const [name, price] of [['no price', null], ['a price without tiers', version([], 5n)]] as const) {
    const priced = priceRequest(tokens({ input: 123_456, output: 7890, cacheWrite1h: 5, cacheRead: 9 }), price, { success: true, multiplierMicros: 1_500_000n, freeTier: false })
    t.same(priced, { costs: zero, actual: zero, source: 'unpriced', snapshot: null, tieredPricing: null }, name)
  }
})

t.test('rounding: one rounding per component, half away from zero', async (t) => {
  const at = (perMillion: number): PriceVersion => version([{ up_to: null, input: perMillion, output: perMillion, cache_write_5m: perMillion, cache_write_1h: perMillion, cache_read: perMillion }])
  const cases: Array<[string, number, Tokens, keyof Expected, bigint]> = [
    ['1 input token at 500 000 nano/1M = 0.5 nano → 1', 500_000, tokens({ input: 1 }), 'input', 1n],
    ['1 input token at 499 999 nano/1M = 0.499999 nano → 0', 499_999, tokens({ input: 1 }), 'input', 0n],
    ['1 output token at 1 500 000 nano/1M = 1.5 nano → 2', 1_500_000, tokens({ output: 1 }), 'output', 2n],
    ['1 output token at 2 500 000 nano/1M = 2.5 nano → 3 (half away from zero, not to even)', 2_500_000, tokens({ output: 1 }), 'output', 3n],
    ['3 read tokens at 500 000 nano/1M = 1.5 nano → 2', 500_000, tokens({ cacheRead: 3 }), 'cacheRead', 2n],
    // one rounding for both write kinds: 0.3 + 0.3 = 0.6 → 1 (rounding each first would give 0 + 0 = 0)
    ['1 + 1 cache writes at 300 000 nano/1M = 0.3 + 0.3 = 0.6 nano → 1', 300_000, tokens({ cacheWrite5m: 1, cacheWrite1h: 1 }), 'cacheCreation', 1n],
    // 0.25 + 0.25 = 0.5 → 1
    ['1 + 1 cache writes at 250 000 nano/1M = 0.5 nano → 1', 250_000, tokens({ cacheWrite5m: 1, cacheWrite1h: 1 }), 'cacheCreation', 1n]
  ]
  for (const [name, perMillion, given, component, expected] of cases) {
    const priced = priceRequest(given, at(perMillion), plain)
    t.equal(priced.costs[component], expected, name)
    t.equal(priced.costs.total, expected, `${name}: total`)
  }
  // the total is the sum of the rounded components: 1 input + 1 output at 0.5 nano each = 1 + 1 = 2 (not round(1.0) = 1)
  t.equal(priceRequest(tokens({ input: 1, output: 1 }), at(500_000), plain).costs.total, 2n)
})

t.test('past 2^53 (9 007 199 254 740 991) the amounts are still exact: priced in bigints', async (t) => {
  // the dearest price allowed, USD 1 000 000 per 1M tokens = 1e15 nano per 1M, on the
  // most tokens a count may hold (2 147 483 647): the product 2 147 483 647e15 is far past 2^53
  const dear = version([{ up_to: null, input: 1e15, output: 1e15, cache_write_5m: 1e15, cache_write_1h: 1e15, cache_read: 1e15 }])
  const most = 2_147_483_647
  const priced = priceRequest(tokens({ input: most, output: 1 }), dear, { ...plain, multiplierMicros: 1_500_000n })
  // input: 2 147 483 647 × 1e15 / 1e6 = 2 147 483 647 000 000 000 nano (USD 2 147 483 647)
  // output: 1 × 1e15 / 1e6 = 1 000 000 000; total 2 147 483 648 000 000 000
  t.same(priced.costs, { input: 2_147_483_647_000_000_000n, output: 1_000_000_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 2_147_483_648_000_000_000n })
  // × 1.5: 3 221 225 470 500 000 000 and 1 500 000 000; total 3 221 225 472 000 000 000
  t.same(priced.actual, { input: 3_221_225_470_500_000_000n, output: 1_500_000_000n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 3_221_225_472_000_000_000n })

  // just past the edge: 9 007 199 254 740 993 (2^53 + 1, which no double holds) input tokens' worth
  // at 1 nano per 1M: 3 tokens × 3 002 399 751 580 331 nano/1M = 9 007 199 254 740 993 → /1e6 = 9 007 199 254.740993 → 9 007 199 255
  const edge = version([{ up_to: null, input: 3_002_399_751_580_331, output: 0, cache_write_5m: 0, cache_write_1h: 0, cache_read: 0 }])
  t.equal(priceRequest(tokens({ input: 3 }), edge, plain).costs.input, 9_007_199_255n)
  t.equal(costsInNumbers(tokens({ input: 3 }), { input: 3_002_399_751_580_331, output: 0, cacheWrite5m: 0, cacheWrite1h: 0, cacheRead: 0 }, 0, 1_000_000), null,
    'the doubles decline a product past 2^53')
})

t.test('the doubles\' fast path gives the bigints\' amounts, or declines', async (t) => {
  const seed = testSeed(t, 20261122)
  const random = mulberry32(seed)
  // magnitudes from 0 up to past 2^53, so both sides of the edge are drawn
  const draw = (digits: number) => Math.floor(random() * 10 ** Math.floor(random() * digits))
  let compared = 0
  let declined = 0
  for (let i = 0; i < 20_000; i++) {
    const unit = { input: draw(16), output: draw(16), cacheWrite5m: draw(16), cacheWrite1h: draw(16), cacheRead: draw(16) }
    const given = tokens({ input: draw(10), output: draw(10), cacheWrite5m: draw(10), cacheWrite1h: draw(10), cacheRead: draw(10) })
    const request = draw(16)
    const multiplier = random() < 0.1 ? null : draw(13)
    const fast = costsInNumbers(given, unit, request, multiplier)
    const exact = costsInBigints(given, { input: BigInt(unit.input), output: BigInt(unit.output), cacheWrite5m: BigInt(unit.cacheWrite5m), cacheWrite1h: BigInt(unit.cacheWrite1h), cacheRead: BigInt(unit.cacheRead) },
      BigInt(request), multiplier === null ? null : BigInt(multiplier))
    if (fast === null) {
      declined++
      continue
    }
    compared++
    if (JSON.stringify(fast, (_k, v) => typeof v === 'bigint' ? v.toString() : v) !== JSON.stringify(exact, (_k, v) => typeof v === 'bigint' ? v.toString() : v)) {
      t.fail(`seed ${seed}, draw ${i}: ${JSON.stringify({ unit, given, request, multiplier })}`)
      return
    }
  }
  t.ok(compared > 2000 && declined > 2000, `both paths drawn: ${compared} compared, ${declined} declined (seed ${seed}; replay with TEST_SEED=${seed})`)
  // what the fast path must decline: negatives and fractions (never valid input; the bigints throw or price them as given)
  const unit = { input: 1, output: 1, cacheWrite5m: 1, cacheWrite1h: 1, cacheRead: 1 }
  t.equal(costsInNumbers(tokens({ input: -1 }), unit, 0, 1), null)
  t.equal(costsInNumbers(tokens({ input: 1.5 }), unit, 0, 1), null)
  t.equal(costsInNumbers(tokens({ input: 1 }), null, 0, 1), null, 'a tier with a price a double does not hold exactly')
})

t.test('tierFromUsd: USD per 1M → nano-USD per 1M, with the default cache prices', async (t) => {
  // input 3 → 5m write 3 × 1.25 = 3.75, 1h write 3 × 2 = 6, read 3 × 0.1 = 0.3 USD per 1M
  t.same(tierFromUsd({ up_to: null, input: 3, output: 15 }),
    { up_to: null, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 })
  t.same(tierFromUsd({ up_to: 200_000, input: 3, output: 15, cache_write_5m: null, cache_write_1h: undefined, cache_read: null }),
    { up_to: 200_000, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 },
    'null or absent cache prices take the defaults')
  t.same(tierFromUsd({ up_to: null, input: 3, output: 15, cache_write_5m: 4, cache_write_1h: 5, cache_read: 0 }),
    { up_to: null, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 4_000_000_000, cache_write_1h: 5_000_000_000, cache_read: 0 },
    'given cache prices win, zero included')
  // input 0.1 (float-unfriendly): 100 000 000; × 1.25 = 125 000 000; × 2 = 200 000 000; × 0.1 = 10 000 000
  t.same(tierFromUsd({ up_to: null, input: 0.1, output: 0.3 }),
    { up_to: null, input: 100_000_000, output: 300_000_000, cache_write_5m: 125_000_000, cache_write_1h: 200_000_000, cache_read: 10_000_000 })
  // input 1 nano per 1M: 1 × 5/4 = 1.25 → 1; 1 × 2 = 2; 1 / 10 = 0.1 → 0
  t.same(tierFromUsd({ up_to: null, input: 0.000000001, output: 0 }),
    { up_to: null, input: 1, output: 0, cache_write_5m: 1, cache_write_1h: 2, cache_read: 0 })
  // input 2 nano per 1M: 2 × 5/4 = 2.5 → 3 (half away from zero); 2 / 10 = 0.2 → 0
  t.same(tierFromUsd({ up_to: null, input: 0.000000002, output: 0 }),
    { up_to: null, input: 2, output: 0, cache_write_5m: 3, cache_write_1h: 4, cache_read: 0 })

  // priced with the defaults: 1000 tokens of each kind on input 3 USD
  const priced = priceRequest(tokens({ input: 1000, output: 1000, cacheWrite5m: 1000, cacheWrite1h: 1000, cacheRead: 1000 }), version([tierFromUsd({ up_to: null, input: 3, output: 15 })]), plain)
  // 1000 × 3000 = 3 000 000; 1000 × 15000 = 15 000 000; 1000 × 3750 + 1000 × 6000 = 9 750 000; 1000 × 300 = 300 000
  // total 3 000 000 + 15 000 000 + 9 750 000 + 300 000 = 28 050 000
  t.same(priced.costs, { input: 3_000_000n, output: 15_000_000n, cacheCreation: 9_750_000n, cacheRead: 300_000n, request: 0n, total: 28_050_000n })
})

t.test('worstCaseCost: the hold of an estimate, by hand, and never below what a request within it costs', async (t) => {
  // 200 000 input tokens (tier 1) at tier 1's dearest input-side price, the 1 h write (6000 nano-USD a token): 1 200 000 000;
  // 1000 output × 15 000 = 15 000 000; + 2 for rounding: 1 215 000 002
  t.equal(worstCaseCost(TWO_TIERS, { inputTokens: 200_000, outputTokens: 1000 }), 1_215_000_002n)
  // 200 001 (tier 2): tiers 1 and 2 may apply, the dearest are tier 2's, 12 000 and 22 500: 2 400 012 000 + 22 500 000 + 2
  t.equal(worstCaseCost(TWO_TIERS, { inputTokens: 200_001, outputTokens: 1000 }), 2_422_512_002n)
  // a tier that gets cheaper above its context: the smaller context's dearer tier still bounds it
  const cheaper = version([TIER_2, { ...TIER_1, up_to: null }].map((tier, i) => i === 0 ? { ...tier, up_to: 10 } : tier))
  t.equal(worstCaseCost(cheaper, { inputTokens: 100, outputTokens: 0 }), 1_200_002n, '100 × 12 000 + 2, tier 1 (the dearer) may apply')
  // the per-request price is added whole; a part of a nano-USD rounds up
  t.equal(worstCaseCost(version([TIER_1], 5_000_000n), { inputTokens: 0, outputTokens: 0 }), 5_000_002n)
  t.equal(worstCaseCost(version([{ ...TIER_1, output: 1 }]), { inputTokens: 0, outputTokens: 1 }), 3n, '1 × 1 / 1e6 rounded up to 1, + 2')

  const random = mulberry32(testSeed(t))
  const draw = (max: number) => Math.floor(random() * (max + 1))
  let checked = 0
  for (let i = 0; i < 5000; i++) {
    const odd = (): StoredTier => ({ up_to: null, input: draw(9_999_999), output: draw(99_999_999), cache_write_5m: draw(9_999_999), cache_write_1h: draw(19_999_999), cache_read: draw(999_999) })
    const price = version(random() < 0.5 ? [{ ...odd(), up_to: draw(5000) }, odd()] : [odd()], random() < 0.3 ? BigInt(draw(1000)) : null)
    const estimate = { inputTokens: draw(10_000), outputTokens: draw(10_000) }
    // a request within its estimate: its input context split at random over the four input kinds
    let left = draw(estimate.inputTokens)
    const part = () => { const n = draw(left); left -= n; return n }
    const used = tokens({ cacheWrite1h: part(), cacheWrite5m: part(), cacheRead: part(), output: draw(estimate.outputTokens) })
    used.input = left
    const cost = priceRequest(used, price, plain).costs.total
    const hold = worstCaseCost(price, estimate)
    if (cost > hold) t.fail(`request ${JSON.stringify(used)} costs ${cost} > hold ${hold} of ${JSON.stringify(estimate)} at ${JSON.stringify(price.tiers)}`)
    checked++
  }
  t.equal(checked, 5000, 'every drawn request costs at most its hold')
})
