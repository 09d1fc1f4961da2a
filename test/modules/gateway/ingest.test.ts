// POST /api/gateway/usage: the rows, costs, candidates, rollups and charges a batch of
// gateway events writes; idempotency; concurrency; a seeded property test of rollups
// against raw rows; the stale-request sweep; GET /api/admin/usage/active; bad input.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { sweepStale } from '../../../src/modules/usage/active.js'
import { waitUntil } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'
import {
  assertConsistent, chargesAndRaw, dumpTables, gateway, GATEWAY, minutesAgo, rollupsAndRaw, UNKNOWN_UUID,
  type Gateway, type Json
} from './fixtures.js'

// ---------------------------------------------------------------------------------
// happy path
// ---------------------------------------------------------------------------------

/** claude-x: tier 1 up to 200 000 tokens of context at USD 3 / 15 (cache 3.75 / 6 / 0.30), tier 2 at 6 / 22.5 / 7.5 / 12 / 0.60; USD 0.001 per request */
const CLAUDE_X_TIERS = [
  { up_to: 200_000, input: 3, output: 15 },
  { up_to: null, input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6 }
]
const CLAUDE_X_TIERS_USD = [
  { up_to: 200_000, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 },
  { up_to: null, input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6 }
]

type Tier = typeof CLAUDE_X_TIERS_USD[number]
/** a tier the detail view shows, in keymeter's names only (it adds Aether's beside them) */
const ownNames = (tier: Tier): Tier => Object.fromEntries(Object.keys(CLAUDE_X_TIERS_USD[0]!).map((name) => [name, tier[name as keyof Tier]])) as Tier

/** The tier facts the detail view shows for a usage row (rows keep a reference to their price version, not a copy). */
async function tieredPricing (g: Gateway, usageId: string) {
  const tiered = (await g.adminCall('GET', `/api/admin/usage/${usageId}`)).tiered_pricing
  return tiered === null ? null : { ...tiered, current_tier: ownNames(tiered.current_tier), tiers: tiered.tiers.map(ownNames) }
}

/** The unit prices and pricing source the detail view shows (rows keep none: their tier's, USD per 1M tokens). */
async function unitPrices (g: Gateway, usageId: string) {
  const detail = await g.adminCall('GET', `/api/admin/usage/${usageId}`)
  return {
    input: detail.input_price_per_1m, output: detail.output_price_per_1m, write5m: detail.cache_write_5m_price_per_1m, write1h: detail.cache_write_1h_price_per_1m,
    read: detail.cache_read_price_per_1m, perRequest: detail.price_per_request, source: detail.pricing_source
  }
}

async function catalogue (g: Gateway) {
  const provider = await g.provider('anthropic')
  const endpoint = await g.endpoint(provider.id, 'claude:messages')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 1.5, cache_ttl_minutes: 60 })
  const price = await g.price({ model: 'claude-x', tiers: CLAUDE_X_TIERS, price_per_request_usd: 0.001 })
  return { provider, endpoint, providerKey, price }
}

t.test('happy path: start → stream → complete, then a request reported only at its end', async (t) => {
  const g = await gateway(t)
  const { provider, endpoint, providerKey, price } = await catalogue(g)
  const user = await g.user({ quota_usd: 100 })
  const key = await g.userKey(user.id)
  const at1 = '2025-06-15T10:20:00.000Z'
  const at2 = '2025-06-15T10:40:00.000Z'
  const ids = { provider_id: provider.id, provider_endpoint_id: endpoint.id, provider_api_key_id: providerKey.id }

  const started = await g.send([{ type: 'start', request_id: 'req-1', api_key_id: key.id, model: 'claude-x', api_format: 'claude:messages', is_stream: true, ...ids, created_at: at1, metadata: { trace: 'abc' } }])
  t.same(started, [{ request_id: 'req-1', type: 'start', outcome: 'recorded' }])
  let row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-1' } })
  t.match(row, { status: 'pending', userId: user.id, apiKeyId: key.id, providerId: provider.id, providerName: 'anthropic', model: 'claude-x', isStream: true, totalCost: 0n, finishedAt: null })
  t.equal(row.createdAt.toISOString(), at1)
  t.equal(parseInt(row.id.slice(0, 8) + row.id.slice(9, 13), 16), row.createdAt.getTime(), 'the id is a uuidv7 of created_at')
  const firstId = row.id

  t.same(await g.send([{ type: 'stream', request_id: 'req-1', first_byte_time_ms: 120 }]), [{ request_id: 'req-1', type: 'stream', outcome: 'recorded' }])
  row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-1' } })
  t.match(row, { status: 'streaming', firstByteTimeMs: 120, id: firstId })
  t.equal((await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })).totalRequests, 0n, 'nothing charged before the completion')

  const completed = await g.send([{
    type: 'complete', request_id: 'req-1', status: 'completed', status_code: 200,
    input_tokens: 1200, output_tokens: 800, cache_creation_input_tokens: 3000, cache_creation_5m_input_tokens: 1000, cache_creation_1h_input_tokens: 2000,
    cache_read_input_tokens: 5000, response_time_ms: 2345, target_model: 'claude-x-20250101',
    candidates: [
      { candidate_index: 0, retry_index: 0, ...ids, status: 'failed', status_code: 529, error_type: 'overloaded', error_message: 'busy', latency_ms: 300, started_at: at1, finished_at: '2025-06-15T10:20:00.300Z' },
      { candidate_index: 0, retry_index: 1, ...ids, status: 'success', status_code: 200, is_cached: true, latency_ms: 2000 },
      { candidate_index: 1, status: 'skipped', skip_reason: 'not needed' }
    ],
    request_headers: { 'x-test': '1' }, response_body: { id: 'msg_1' }
  }])
  // context 1200 + 3000 + 5000 = 9200 ≤ 200 000 → tier 1
  // input 1200 × 3000 = 3 600 000; output 800 × 15000 = 12 000 000
  // cache writes 1000 × 3750 + 2000 × 6000 = 15 750 000; cache reads 5000 × 300 = 1 500 000; request 1 000 000
  // total 3 600 000 + 12 000 000 + 15 750 000 + 1 500 000 + 1 000 000 = 33 850 000 nano = USD 0.03385
  // actual × 1.5: 5 400 000 + 18 000 000 + 23 625 000 + 2 250 000 + 1 500 000 = 50 775 000
  t.same(completed, [{ request_id: 'req-1', type: 'complete', outcome: 'recorded', cost_usd: 0.03385 }])
  row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-1' } })
  t.match(row, {
    status: 'completed', statusCode: 200, errorMessage: null, targetModel: 'claude-x-20250101', apiFormat: 'claude:messages',
    providerEndpointId: endpoint.id, providerApiKeyId: providerKey.id,
    inputTokens: 1200, outputTokens: 800, cacheCreationTokens: 3000, cacheCreation5m: 1000, cacheCreation1h: 2000, cacheReadTokens: 5000, totalTokens: 10_000,
    inputCost: 3_600_000n, outputCost: 12_000_000n, cacheCreationCost: 15_750_000n, cacheReadCost: 1_500_000n, requestCost: 1_000_000n, totalCost: 33_850_000n,
    actualTotalCost: 50_775_000n,
    modelPriceId: price.id,
    responseTimeMs: 2345, firstByteTimeMs: 120
  })
  t.equal(row.rateMultiplier.toString(), '1.5')
  t.same(row.metadata, { trace: 'abc' }, 'the start\'s metadata is kept')
  t.ok(row.finishedAt !== null, 'finished_at set')
  t.same(await unitPrices(g, row.id), { input: 3, output: 15, write5m: 3.75, write1h: 6, read: 0.3, perRequest: 0.001, source: 'model_price' }, 'its tier\'s unit prices')
  const detail = await g.adminCall('GET', `/api/admin/usage/${row.id}`)
  t.same([detail.actual_input_cost, detail.actual_output_cost, detail.actual_cache_creation_cost, detail.actual_cache_read_cost, detail.actual_request_cost, detail.actual_total_cost],
    [0.0054, 0.018, 0.023625, 0.00225, 0.0015, 0.050775], 'each actual cost component × 1.5, derived from the stored costs')
  t.same(await tieredPricing(g, row.id), {
    total_input_context: 9200, tier_index: 0, tier_count: 2, current_tier: CLAUDE_X_TIERS_USD[0], tiers: CLAUDE_X_TIERS_USD, source: 'global', model_price_id: price.id
  })
  const body = await g.app.prisma.usageBody.findFirstOrThrow({ where: { usageId: row.id } })
  t.same(body.requestHeaders, { 'x-test': '1' })
  t.same(body.responseBody, { id: 'msg_1' })
  t.same(body.createdAt, row.createdAt, 'the body keyed with its request\'s created_at (the partition key)')

  const candidates = await g.app.prisma.requestCandidate.findMany({ where: { requestId: 'req-1' }, orderBy: [{ candidateIndex: 'asc' }, { retryIndex: 'asc' }] })
  t.equal(candidates.length, 3, 'every candidate written')
  t.match(candidates[0], {
    candidateIndex: 0, retryIndex: 0, userId: user.id, apiKeyId: key.id, providerId: provider.id, providerEndpointId: endpoint.id, providerApiKeyId: providerKey.id,
    status: 'failed', statusCode: 529, errorType: 'overloaded', errorMessage: 'busy', latencyMs: 300, isCached: false
  })
  t.equal(candidates[0]!.startedAt?.toISOString(), at1)
  t.equal(candidates[0]!.finishedAt?.toISOString(), '2025-06-15T10:20:00.300Z')
  t.equal(candidates[0]!.createdAt.toISOString(), at1, 'a candidate is dated like its request')
  t.match(candidates[1], { candidateIndex: 0, retryIndex: 1, status: 'success', statusCode: 200, isCached: true, latencyMs: 2000 })
  t.match(candidates[2], { candidateIndex: 1, retryIndex: 0, status: 'skipped', skipReason: 'not needed', providerId: null })

  let keyRow = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.match(keyRow, { totalRequests: 1n, totalTokens: 10_000n, totalCost: 33_850_000n, balanceUsed: 33_850_000n })
  t.ok(keyRow.lastUsedAt !== null && Math.abs(keyRow.lastUsedAt.getTime() - Date.now()) < 60_000, 'last_used_at is now')
  t.equal((await g.app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).used, 33_850_000n)

  // a failed request reported only at its end, without the 5m/1h split: the provider key's TTL is 60 → 1h price
  const late = await g.send([{
    type: 'complete', request_id: 'req-2', api_key_id: key.id, model: 'claude-x', api_format: 'claude:messages', provider_api_key_id: providerKey.id, created_at: at2,
    status: 'failed', status_code: 500, error_message: 'upstream error', input_tokens: 150_000, output_tokens: 100, cache_creation_input_tokens: 60_000, response_time_ms: 5000
  }])
  // context 150 000 + 60 000 = 210 000 > 200 000 → tier 2; failed → no request price
  // input 150 000 × 6000 = 900 000 000; output 100 × 22500 = 2 250 000; writes (1h) 60 000 × 12000 = 720 000 000
  // total 1 622 250 000 nano = USD 1.62225; actual × 1.5 = 1 350 000 000 + 3 375 000 + 1 080 000 000 = 2 433 375 000
  t.same(late, [{ request_id: 'req-2', type: 'complete', outcome: 'recorded', cost_usd: 1.62225 }])
  const row2 = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'req-2' } })
  t.match(row2, {
    status: 'failed', statusCode: 500, errorMessage: 'upstream error', userId: user.id, providerId: provider.id, providerName: 'anthropic',
    inputTokens: 150_000, outputTokens: 100, cacheCreationTokens: 60_000, cacheCreation5m: 0, cacheCreation1h: 60_000, cacheReadTokens: 0, totalTokens: 210_100,
    inputCost: 900_000_000n, outputCost: 2_250_000n, cacheCreationCost: 720_000_000n, cacheReadCost: 0n, requestCost: 0n, totalCost: 1_622_250_000n,
    actualTotalCost: 2_433_375_000n, firstByteTimeMs: null
  })
  t.match(await unitPrices(g, row2.id), { input: 6, write1h: 12, perRequest: 0.001, source: 'model_price' }, 'the second tier\'s unit prices')
  t.match(await tieredPricing(g, row2.id), { total_input_context: 210_000, tier_index: 1, current_tier: CLAUDE_X_TIERS_USD[1] })
  t.equal(row2.createdAt.toISOString(), at2)

  keyRow = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  // 33 850 000 + 1 622 250 000 = 1 656 100 000; tokens 10 000 + 210 100 = 220 100
  t.match(keyRow, { totalRequests: 2n, totalTokens: 220_100n, totalCost: 1_656_100_000n, balanceUsed: 1_656_100_000n })
  t.equal((await g.app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).used, 1_656_100_000n)

  // rollups: both requests fall in the 10:00 UTC hour of 2025-06-15
  const measures = {
    requests: 2, errors: 1, inputTokens: 151_200n, outputTokens: 900n, cacheCreationTokens: 63_000n, cacheReadTokens: 5000n, totalTokens: 220_100n,
    totalCost: 1_656_100_000n, actualTotalCost: 2_484_150_000n, // 50 775 000 + 2 433 375 000
    responseTimeSumMs: 7345n, responseTimeCount: 2 // 2345 + 5000
  }
  const hourly = await g.app.prisma.usageHourly.findMany()
  t.equal(hourly.length, 1)
  t.match(hourly[0], { userId: user.id, apiKeyId: key.id, providerId: provider.id, model: 'claude-x', apiFormat: 'claude:messages', ...measures, cacheCreationCost: 735_750_000n, cacheReadCost: 1_500_000n, cacheHitRequests: 1 })
  t.equal(hourly[0]!.bucket.toISOString(), '2025-06-15T10:00:00.000Z')
  const coarse = await g.app.prisma.usageHourlyModel.findMany()
  t.equal(coarse.length, 1)
  t.match(coarse[0], { providerId: provider.id, model: 'claude-x', apiFormat: 'claude:messages', ...measures, cacheCreationCost: 735_750_000n, cacheReadCost: 1_500_000n, cacheHitRequests: 1 })
  t.equal(coarse[0]!.bucket.toISOString(), '2025-06-15T10:00:00.000Z')
  const daily = await g.app.prisma.usageDailyKey.findMany()
  t.equal(daily.length, 1)
  t.match(daily[0], { userId: user.id, apiKeyId: key.id, model: 'claude-x', ...measures })
  t.equal(daily[0]!.day.toISOString().slice(0, 10), '2025-06-15')
  await assertConsistent(t, g.app)

  // the active view shows the finished request as it now is
  const active = await g.app.inject({ method: 'GET', url: `/api/admin/usage/active?ids=${row.id}`, headers: g.admin.headers })
  t.equal(active.statusCode, 200)
  t.match(active.json().requests, [{ id: row.id, request_id: 'req-1', status: 'completed', input_tokens: 1200, output_tokens: 800, cost: 0.03385, actual_cost: 0.050775, response_time_ms: 2345, first_byte_time_ms: 120 }])
})

t.test('pricing sources at ingestion: free tier, provider price over global, unpriced, effective date, no provider key', async (t) => {
  const g = await gateway(t)
  const free = await g.provider('free', 'free_tier')
  const freeKey = await g.providerKey(free.id, { rate_multiplier: 2 })
  const paid = await g.provider('paid')
  const ttl5 = await g.providerKey(paid.id, { cache_ttl_minutes: 5 })
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const own = await g.price({ model: 'm', provider_id: paid.id, tiers: [{ up_to: null, input: 4, output: 16 }] })
  // a later version that is not yet in effect at the requests' time
  await g.price({ model: 'm', provider_id: paid.id, tiers: [{ up_to: null, input: 100, output: 100 }], effective_from: '2030-01-01T00:00:00Z' })
  const key = await g.standaloneKey()
  const at = '2026-01-01T00:00:00.000Z'
  const done = (requestId: string, more: object) => ({ type: 'complete', request_id: requestId, api_key_id: key.id, model: 'm', created_at: at, status: 'completed', input_tokens: 1000, output_tokens: 100, ...more })
  const results = await g.send([
    done('free', { provider_api_key_id: freeKey.id }),
    done('paid', { provider_api_key_id: ttl5.id, cache_creation_input_tokens: 1000 }),
    done('global', {}),
    done('unpriced', { model: 'no-price' }),
    done('provider-only', { provider_id: paid.id })
  ])
  // free: global price (free has none of its own): 1000 × 3000 + 100 × 15000 = 4 500 000 → USD 0.0045, actual 0
  // paid: its own price: 1000 × 4000 + 100 × 16000 + 1000 × 5000 (TTL 5 → 5m write at 4 × 1.25) = 10 600 000
  // global: 4 500 000; unpriced: 0; provider-only: the provider's price, × 1 (no key): 4 000 000 + 1 600 000 = 5 600 000
  t.same(results.map((r) => r.cost_usd), [0.0045, 0.0106, 0.0045, 0, 0.0056])
  const rows = new Map((await g.app.prisma.usage.findMany()).map((r) => [r.requestId, r]))
  t.match(rows.get('free'), { totalCost: 4_500_000n, actualTotalCost: 0n, providerId: free.id })
  t.match(await unitPrices(g, rows.get('free')!.id), { input: 3, source: 'model_price' })
  t.equal(rows.get('free')!.rateMultiplier.toString(), '0', 'free tier: the multiplier recorded is 0')
  t.match(rows.get('paid'), { totalCost: 10_600_000n, actualTotalCost: 10_600_000n, cacheCreation5m: 1000, cacheCreation1h: 0, modelPriceId: own.id })
  t.match(await tieredPricing(g, rows.get('paid')!.id), { source: 'provider', model_price_id: own.id })
  t.match(rows.get('global'), { totalCost: 4_500_000n, providerId: null })
  t.match(rows.get('unpriced'), { totalCost: 0n, actualTotalCost: 0n, modelPriceId: null, inputTokens: 1000 })
  t.same(await unitPrices(g, rows.get('unpriced')!.id), { input: null, output: null, write5m: null, write1h: null, read: null, perRequest: null, source: 'unpriced' })
  t.equal(await tieredPricing(g, rows.get('unpriced')!.id), null)
  t.match(rows.get('provider-only'), { totalCost: 5_600_000n, actualTotalCost: 5_600_000n, providerId: paid.id, providerApiKeyId: null })
  await assertConsistent(t, g.app)
})

// ---------------------------------------------------------------------------------
// idempotency
// ---------------------------------------------------------------------------------

function shuffle<T> (items: T[], rng: () => number): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

t.test('idempotency: replays change nothing; a completion before its start charges once', async (t) => {
  const g = await gateway(t)
  const { provider, providerKey } = await catalogue(g)
  const key = await g.standaloneKey({ initial_balance_usd: 10 })
  const user = await g.user()
  const userKey = await g.userKey(user.id)
  const events: object[] = []
  for (let i = 0; i < 6; i++) {
    const k = i % 2 === 0 ? key : userKey
    const id = `idem-${i}`
    events.push({ type: 'start', request_id: id, api_key_id: k.id, model: 'claude-x', api_format: 'claude:messages', provider_api_key_id: providerKey.id, created_at: minutesAgo(90 * i + 5) })
    if (i !== 5) events.push({ type: 'stream', request_id: id, first_byte_time_ms: 50 + i })
    if (i < 4) {
      events.push({
        type: 'complete', request_id: id, status: i === 3 ? 'failed' : 'completed', status_code: i === 3 ? 502 : 200,
        input_tokens: 1000 * (i + 1), output_tokens: 10 * i, cache_creation_input_tokens: 100, cache_read_input_tokens: 50 * i, response_time_ms: 300 + i,
        candidates: [{ candidate_index: 0, provider_id: provider.id, status: 'success' }], response_body: { n: i }
      })
    }
  }
  const rng = mulberry32(testSeed(t))
  const first = await g.send(events)
  t.ok(first.every((r) => r.outcome === 'recorded'), 'first delivery: all recorded')
  const before = await dumpTables(g.app)
  t.equal(before.usage!.length, 6)

  const replays: Array<[string, object[][]]> = [
    ['the whole batch again', [events]],
    ['each event alone', events.map((e) => [e])],
    ['shuffled, in one batch', [shuffle(events, rng)]],
    ['shuffled, in batches of 4', shuffle(events, rng).reduce<object[][]>((batches, e, i) => { if (i % 4 === 0) batches.push([]); batches.at(-1)!.push(e); return batches }, [])],
    ['every event twice in one batch', [[...events, ...events]]]
  ]
  for (const [name, batches] of replays) {
    const outcomes = (await Promise.all(batches.map((batch) => g.send(batch)))).flat()
    t.ok(outcomes.length > 0 && outcomes.every((r) => r.outcome === 'duplicate'), `${name}: every outcome duplicate`)
    t.notOk(outcomes.some((r) => 'cost_usd' in r), `${name}: a duplicate carries no cost`)
    t.same(await dumpTables(g.app), before, `${name}: no row, charge or rollup changed`)
  }

  // the same request twice in one fresh batch: the first copy counts, the second is a duplicate
  const twice = { type: 'complete', request_id: 'twice', api_key_id: key.id, model: 'claude-x', status: 'completed', input_tokens: 1000, output_tokens: 0 }
  const res = await g.send([twice, { ...twice, input_tokens: 999_999 }])
  t.same(res.map((r) => r.outcome), ['recorded', 'duplicate'])
  t.equal((await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'twice' } })).inputTokens, 1000, 'the first copy wins')

  // a completion arriving before its start (carrying the start fields), then the start, then the stream
  const keyBefore = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  const createdAt = minutesAgo(3)
  const early = await g.send([{
    type: 'complete', request_id: 'early', api_key_id: key.id, model: 'claude-x', api_format: 'openai:chat', provider_api_key_id: providerKey.id, created_at: createdAt,
    status: 'completed', status_code: 200, input_tokens: 2000, output_tokens: 100
  }])
  // 2000 × 3000 + 100 × 15000 + 1 000 000 (request) = 6 000 000 + 1 500 000 + 1 000 000 = 8 500 000
  t.same(early, [{ request_id: 'early', type: 'complete', outcome: 'recorded', cost_usd: 0.0085 }])
  const afterComplete = await dumpTables(g.app)
  const lateStart = await g.send([{ type: 'start', request_id: 'early', api_key_id: key.id, model: 'claude-x', api_format: 'openai:chat', provider_api_key_id: providerKey.id, created_at: createdAt }])
  t.not(lateStart[0]!.outcome, 'rejected', 'the late start is accepted')
  const afterStart = await dumpTables(g.app)
  for (const table of ['usage', 'usage_hourly', 'usage_hourly_model', 'usage_daily_key', 'api_keys', 'users', 'request_candidates']) {
    t.same(afterStart[table], afterComplete[table], `the late start changes nothing in ${table}`)
  }
  const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'early' } })
  t.match(row, { status: 'completed', inputTokens: 2000, totalCost: 8_500_000n })
  const keyAfter = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(keyAfter.totalRequests - keyBefore.totalRequests, 1n, 'charged one request')
  t.equal(keyAfter.balanceUsed - keyBefore.balanceUsed, 8_500_000n, 'charged once')
  const again = await g.send([{ type: 'start', request_id: 'early', api_key_id: key.id, model: 'claude-x' }, { type: 'complete', request_id: 'early', status: 'completed', input_tokens: 1, output_tokens: 1 }])
  t.same(again.map((r) => r.outcome), ['duplicate', 'duplicate'])
  await assertConsistent(t, g.app)
})

// ---------------------------------------------------------------------------------
// concurrency
// ---------------------------------------------------------------------------------

t.test('concurrency: 200 parallel completions on one standalone key through a listening server', async (t) => {
  // the batches queue on the key's row lock; on a loaded host that queue can outlast the default 5-s pool wait, and the
  // answer is then the designed 503 database_busy (tested in the reliability suite): this test is about counting, so it waits
  const g = await gateway(t, { DB_POOL_WAIT_MS: '60000' })
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  // 200 completions of 1000 + i input tokens cost 3000 × Σ(1000 + i) = 3000 × (200 000 + 19 900) = 659 700 000 nano = USD 0.6597
  const key = await g.standaloneKey({ initial_balance_usd: 0.3 })
  await g.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = g.app.server.address() as AddressInfo
  const post = (events: object[]) => fetch(`http://127.0.0.1:${port}/api/gateway/usage`, {
    method: 'POST', headers: { ...GATEWAY, 'content-type': 'application/json' }, body: JSON.stringify({ events })
  })
  const responses = await Promise.all(Array.from({ length: 200 }, (_v, i) => post([{
    type: 'complete', request_id: `par-${i}`, api_key_id: key.id, model: 'm', api_format: 'openai:chat',
    status: 'completed', status_code: 200, input_tokens: 1000 + i, output_tokens: 0, response_time_ms: i
  }])))
  const statuses = responses.map((r) => r.status)
  t.same([...new Set(statuses)], [200], 'every batch answered 200')
  const outcomes = (await Promise.all(responses.map(async (r) => (await r.json() as Json).results as Json[]))).flat()
  t.equal(outcomes.filter((r) => r.outcome === 'recorded').length, 200, 'every completion recorded')

  const row = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(row.balanceUsed, 659_700_000n, 'balance_used is the hand-computed sum')
  t.equal(row.totalCost, 659_700_000n)
  t.equal(row.totalRequests, 200n)
  t.equal(row.totalTokens, 219_900n) // Σ(1000 + i) = 200 000 + 19 900
  const [sums] = await g.app.prisma.$queryRaw<Array<{ requests: bigint, tokens: bigint, cost: bigint }>>`
    SELECT count(*) AS requests, sum(total_tokens)::bigint AS tokens, sum(total_cost)::bigint AS cost FROM usage WHERE api_key_id = ${key.id}::uuid`
  t.same(sums, { requests: 200n, tokens: 219_900n, cost: 659_700_000n }, 'the SQL sums over its usage rows agree')
  const [rolled] = await g.app.prisma.$queryRaw<Array<{ requests: bigint, cost: bigint }>>`
    SELECT sum(requests)::bigint AS requests, sum(total_cost)::bigint AS cost FROM usage_hourly WHERE api_key_id = ${key.id}::uuid`
  t.same(rolled, { requests: 200n, cost: 659_700_000n }, 'usage_hourly sums to the same')
  const [daily] = await g.app.prisma.$queryRaw<Array<{ requests: bigint, cost: bigint }>>`
    SELECT sum(requests)::bigint AS requests, sum(total_cost)::bigint AS cost FROM usage_daily_key WHERE api_key_id = ${key.id}::uuid`
  t.same(daily, { requests: 200n, cost: 659_700_000n }, 'usage_daily_key sums to the same')
  await assertConsistent(t, g.app)

  const verify = await fetch(`http://127.0.0.1:${port}/api/gateway/keys/verify`, {
    method: 'POST', headers: { ...GATEWAY, 'content-type': 'application/json' }, body: JSON.stringify({ key: key.key })
  })
  t.equal(verify.status, 402, 'the balance (0.3) is used up (0.6597)')
  t.equal(((await verify.json()) as Json).error.type, 'balance_exhausted')
})

t.test('concurrency: parallel batches touching the same keys and rollup rows in different orders', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const keys = await Promise.all([1, 2, 3, 4].map(async () => g.standaloneKey()))
  const at = minutesAgo(30)
  // 40 batches of 10 completions each, keys in shuffled orders, all in one hour bucket
  const rng = mulberry32(testSeed(t))
  const batches = Array.from({ length: 40 }, (_v, b) => shuffle(Array.from({ length: 10 }, (_w, i) => ({
    type: 'complete', request_id: `mix-${b}-${i}`, api_key_id: keys[(b + i) % 4]!.id, model: 'm', created_at: at,
    status: 'completed', input_tokens: 100 + i, output_tokens: b
  })), rng))
  const results = await Promise.all(batches.map((batch) => g.usage(batch)))
  t.same([...new Set(results.map((r) => r.statusCode))], [200])
  t.equal(await g.app.prisma.usage.count(), 400)
  await assertConsistent(t, g.app)
})

t.test('concurrency: a start and its completion (with start fields) in two parallel batches', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const at = minutesAgo(1)
  const start = (id: string) => ({ type: 'start', request_id: id, api_key_id: key.id, model: 'm', created_at: at })
  const complete = (id: string) => ({ ...start(id), type: 'complete', status: 'completed', input_tokens: 1000, output_tokens: 0 })
  const statuses = new Set<number>()
  for (let round = 0; round < 60; round++) {
    const id = `race-${round}`
    // the completion is sent first so it usually commits first; the start follows at once
    const responses = await Promise.all([g.usage([complete(id)]), g.usage([start(id)])])
    for (const r of responses) statuses.add(r.statusCode)
  }
  t.same([...statuses], [200], 'every batch answered 200')
  const rows = await g.app.prisma.usage.findMany({ where: { requestId: { startsWith: 'race-' } } })
  t.equal(rows.length, 60)
  const notCompleted = rows.filter((r) => r.status !== 'completed').map((r) => `${r.requestId}: ${r.status}`)
  t.comment(`${notCompleted.length} of 60 requests did not end completed after a parallel start + completion`)
  t.same(notCompleted, [], 'every request ends completed, whichever batch committed first')
  await assertConsistent(t, g.app, '')
  // once swept, a request overwritten back to pending is counted a second time
  await sweepStale(g.app.pg, 0)
  const key2 = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(key2.totalRequests, 60n, '60 requests charged as 60')
})

t.test('concurrency: a stream event whose start is still being written by another batch waits for it and is recorded', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const blocker = await g.app.pg.connect() // one of the app's ten connections; the two batches take two others
  t.teardown(() => blocker.release())
  let settled = false
  /** until `count` backends wait on a lock, or the stream's batch has answered (it did not wait) */
  const waiting = (count: number) => waitUntil(`${count} backends waiting on a lock`, async () => {
    if (settled) return count
    await blocker.query('SELECT pg_stat_clear_snapshot()') // inside a transaction the activity view is otherwise read once
    const { rows: [row] } = await blocker.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
    return row.n as number
  }, (n) => n >= count, { timeoutMs: 30_000 })
  // the start's batch writes its receipt, then stops at its key lookup (FOR KEY SHARE) behind this lock
  await blocker.query('BEGIN')
  await blocker.query('SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE', [key.id])
  // (an injected request is sent when awaited: Promise.resolve sends it now)
  const started = Promise.resolve(g.usage([{ type: 'start', request_id: 'slow-start', api_key_id: key.id, model: 'm' }]))
  await waiting(1)
  // the stream's batch finds no row: it must wait for the start's batch, not reject the event
  const streamed = Promise.resolve(g.usage([{ type: 'stream', request_id: 'slow-start', first_byte_time_ms: 120 }]))
  void streamed.finally(() => { settled = true })
  await waiting(2)
  await blocker.query('COMMIT')
  t.equal((await started).statusCode, 200)
  t.same((await streamed).json().results, [{ request_id: 'slow-start', type: 'stream', outcome: 'recorded' }])
  const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'slow-start' } })
  t.match(row, { status: 'streaming', firstByteTimeMs: 120 })
})

t.test('a batch of 1000 new requests takes no lock per request: the locks of a batch of 10', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const blocker = await g.app.pg.connect()
  t.teardown(() => blocker.release())
  /** the locks a batch of `n` new requests holds when stopped at its key lookup, after its receipts and row reads */
  const heldBy = async (n: number, prefix: string) => {
    await blocker.query('BEGIN')
    await blocker.query('SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE', [key.id])
    const sent = Promise.resolve(g.usage(Array.from({ length: n }, (_v, i) => ({
      type: 'complete', request_id: `${prefix}-${i}`, api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1
    }))))
    const waiter = await waitUntil('the batch waiting on the key lock', async () => {
      await blocker.query('SELECT pg_stat_clear_snapshot()')
      const { rows: [row] } = await blocker.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
      return row as { pid: number } | undefined
    }, (row) => row !== undefined, { timeoutMs: 30_000 })
    const held: Array<{ locktype: string, n: number }> = (await blocker.query(`SELECT locktype, count(*)::int AS n FROM pg_locks WHERE pid = $1 AND granted GROUP BY locktype ORDER BY locktype`, [waiter!.pid])).rows
    await blocker.query('COMMIT')
    t.equal((await sent).statusCode, 200)
    return held
  }
  const few = await heldBy(10, 'few')
  const many = await heldBy(1000, 'many')
  t.ok(many.length > 0, 'the batch was seen holding its locks')
  // one advisory lock a batch (the key deletion's, held shared), never one a request
  t.ok(many.every((l) => l.locktype !== 'advisory' || l.n <= 1), `at most one advisory lock for 1000 requests: ${JSON.stringify(many)}`)
  // relations (usage's monthly partitions and their indexes among them) and the batch's own ids: as many for 1000 requests as for 10
  t.same(many, few, `the same locks as a batch of 10: ${JSON.stringify(few)}`)
  t.equal(await g.app.prisma.usage.count(), 1010)
})

// ---------------------------------------------------------------------------------
// property test
// ---------------------------------------------------------------------------------

/** a reference price: nano-USD per token (all integers here, so costs need no rounding) */
interface RefTier { upTo: number | null, input: bigint, output: bigint, w5: bigint, w1: bigint, read: bigint }
interface RefPrice { tiers: RefTier[], perRequest: bigint }
// flat (global): USD 3 / 15 per 1M → 3000 / 15000 per token; cache defaults 3.75 / 6 / 0.3 → 3750 / 6000 / 300; USD 0.0001 per request = 100 000
const FLAT: RefPrice = { tiers: [{ upTo: null, input: 3000n, output: 15000n, w5: 3750n, w1: 6000n, read: 300n }], perRequest: 100_000n }
// flat at the paid provider: USD 4 / 16 → 4000 / 16000; defaults 5 / 8 / 0.4 → 5000 / 8000 / 400; no request price
const FLAT_PAID: RefPrice = { tiers: [{ upTo: null, input: 4000n, output: 16000n, w5: 5000n, w1: 8000n, read: 400n }], perRequest: 0n }
// tiered: up to 1000 tokens USD 1 / 2 (defaults 1.25 / 2 / 0.1); above USD 2 / 4 / 2.5 / 4 / 0.2
const TIERED: RefPrice = {
  tiers: [
    { upTo: 1000, input: 1000n, output: 2000n, w5: 1250n, w1: 2000n, read: 100n },
    { upTo: null, input: 2000n, output: 4000n, w5: 2500n, w1: 4000n, read: 200n }
  ],
  perRequest: 0n
}

interface Route { name: string, provider: 'none' | 'free' | 'paid', fields: Record<string, string>, ttl: number | null, multiplier: 'x1' | 'x1.5' }

interface Plan {
  id: string
  keyIndex: number
  model: 'flat' | 'tiered' | 'unpriced'
  route: Route
  createdAt: string
  apiFormat?: string
  isStream: boolean
  kind: 'normal' | 'late' | 'only-complete' | 'unfinished'
  streamed: boolean
  status: 'completed' | 'failed' | 'cancelled'
  tokens: { input: number, output: number, write: number, w5?: number, w1?: number, read: number, sendTotal: boolean, split: boolean }
  responseTime: number | null
}

function expectedCosts (plan: Plan): { total: bigint, actual: bigint, w5: number, w1: number } {
  const { tokens } = plan
  const split = tokens.split ? { w5: tokens.w5!, w1: tokens.w1! } : plan.route.ttl === 60 ? { w5: 0, w1: tokens.write } : { w5: tokens.write, w1: 0 }
  const price = plan.model === 'unpriced' ? null : plan.model === 'tiered' ? TIERED : plan.route.provider === 'paid' ? FLAT_PAID : FLAT
  if (price === null) return { total: 0n, actual: 0n, ...split }
  const context = tokens.input + split.w5 + split.w1 + tokens.read
  const tier = price.tiers.find((x) => x.upTo === null || context <= x.upTo)!
  const parts = [
    BigInt(tokens.input) * tier.input,
    BigInt(tokens.output) * tier.output,
    BigInt(split.w5) * tier.w5 + BigInt(split.w1) * tier.w1,
    BigInt(tokens.read) * tier.read,
    plan.status === 'completed' ? price.perRequest : 0n
  ]
  const total = parts.reduce((a, b) => a + b, 0n)
  // × 1.5 rounded half away from zero per component: (3c + 1) div 2 for c ≥ 0
  const actual = plan.route.provider === 'free' ? 0n : plan.route.multiplier === 'x1.5' ? parts.map((c) => (3n * c + 1n) / 2n).reduce((a, b) => a + b, 0n) : total
  return { total, actual, ...split }
}

// three streams, from the seed and the two after it
const firstSeed = testSeed(t)
for (const seed of [0, 1, 2].map((i) => (firstSeed + i) >>> 0)) {
  t.test(`property: random event streams, rollups = GROUP BY of raw rows (seed ${seed}; replay with TEST_SEED=${seed})`, async (t) => {
    const rng = mulberry32(seed)
    const int = (n: number) => Math.floor(rng() * n)
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
    const chance = (p: number) => rng() < p

    const g = await gateway(t)
    const free = await g.provider('free', 'free_tier')
    const freeKey = await g.providerKey(free.id, { rate_multiplier: 2, cache_ttl_minutes: 5 })
    const paid = await g.provider('paid')
    const paidEndpoint = await g.endpoint(paid.id, 'claude:messages')
    const key15 = await g.providerKey(paid.id, { rate_multiplier: 1.5, cache_ttl_minutes: 5 })
    const key60 = await g.providerKey(paid.id, { cache_ttl_minutes: 60 })
    await g.price({ model: 'flat', tiers: [{ up_to: null, input: 3, output: 15 }], price_per_request_usd: 0.0001 })
    await g.price({ model: 'flat', provider_id: paid.id, tiers: [{ up_to: null, input: 4, output: 16 }] })
    await g.price({ model: 'tiered', tiers: [{ up_to: 1000, input: 1, output: 2 }, { up_to: null, input: 2, output: 4, cache_write_5m: 2.5, cache_write_1h: 4, cache_read: 0.2 }] })
    const alice = await g.user()
    const bob = await g.user()
    const keys = [await g.userKey(alice.id), await g.userKey(alice.id), await g.userKey(bob.id), await g.standaloneKey()]
    const routes: Route[] = [
      { name: 'no provider', provider: 'none', fields: {}, ttl: null, multiplier: 'x1' },
      { name: 'free tier (key × 2)', provider: 'free', fields: { provider_api_key_id: freeKey.id }, ttl: 5, multiplier: 'x1' },
      { name: 'paid × 1.5', provider: 'paid', fields: { provider_id: paid.id, provider_api_key_id: key15.id }, ttl: 5, multiplier: 'x1.5' },
      { name: 'paid TTL 60', provider: 'paid', fields: { provider_api_key_id: key60.id, provider_endpoint_id: paidEndpoint.id }, ttl: 60, multiplier: 'x1' },
      { name: 'paid, provider only', provider: 'paid', fields: { provider_id: paid.id }, ttl: null, multiplier: 'x1' }
    ]

    // plans
    const now = Date.now()
    const plans: Plan[] = Array.from({ length: 300 }, (_v, i) => {
      const write = chance(0.5) ? int(500) : 0
      const split = write > 0 && chance(0.5)
      const w5 = split ? int(write + 1) : undefined
      const kindRoll = rng()
      return {
        id: `p${seed}-${i}`,
        keyIndex: int(keys.length),
        model: pick(['flat', 'flat', 'tiered', 'tiered', 'unpriced'] as const),
        route: pick(routes),
        // spread over four days, whole hours and days apart, never in the last hour
        createdAt: new Date(now - 3_600_000 - int(4 * 86_400_000)).toISOString(),
        apiFormat: pick(['claude:messages', 'openai:chat', undefined]),
        isStream: chance(0.5),
        kind: kindRoll < 0.5 ? 'normal' : kindRoll < 0.7 ? 'late' : kindRoll < 0.85 ? 'only-complete' : 'unfinished',
        streamed: chance(0.5),
        status: pick(['completed', 'completed', 'completed', 'failed', 'cancelled'] as const),
        tokens: { input: int(1500), output: int(300), write, w5, w1: w5 === undefined ? undefined : write - w5, read: chance(0.5) ? int(600) : 0, sendTotal: !split || chance(0.5), split },
        responseTime: chance(0.8) ? int(10_000) : null
      }
    })

    const startFields = (p: Plan) => ({
      api_key_id: keys[p.keyIndex]!.id, model: p.model, is_stream: p.isStream, created_at: p.createdAt, ...p.route.fields,
      ...(p.apiFormat !== undefined && { api_format: p.apiFormat })
    })
    const queues = plans.map((p) => {
      const start = { type: 'start', request_id: p.id, ...startFields(p) }
      const stream = { type: 'stream', request_id: p.id, first_byte_time_ms: 10 + int(500) }
      const complete = {
        type: 'complete', request_id: p.id, status: p.status, status_code: p.status === 'completed' ? 200 : p.status === 'failed' ? 500 : 499,
        input_tokens: p.tokens.input, output_tokens: p.tokens.output, cache_read_input_tokens: p.tokens.read,
        ...(p.tokens.sendTotal && { cache_creation_input_tokens: p.tokens.write }),
        ...(p.tokens.split && { cache_creation_5m_input_tokens: p.tokens.w5, cache_creation_1h_input_tokens: p.tokens.w1 }),
        ...(p.responseTime !== null && { response_time_ms: p.responseTime }),
        ...(p.kind === 'late' || p.kind === 'only-complete' ? startFields(p) : {})
      }
      const stream_ = p.streamed ? [stream] : []
      switch (p.kind) {
        case 'normal': return [start, ...stream_, complete]
        case 'late': return [complete, start, ...stream_]
        case 'only-complete': return [complete, ...stream_]
        case 'unfinished': return [start, ...stream_]
      }
      throw new Error(`unknown plan kind ${String(p.kind)}`)
    })

    // interleave the requests' events (keeping each request's own order), then add duplicates after their originals
    const sequence: Array<Record<string, unknown>> = []
    const pending = queues.map((q) => [...q])
    while (pending.some((q) => q.length > 0)) {
      const open = pending.filter((q) => q.length > 0)
      sequence.push(pick(open).shift()!)
    }
    const withDuplicates = [...sequence]
    for (const event of sequence) {
      if (!chance(0.15)) continue
      const original = withDuplicates.indexOf(event)
      withDuplicates.splice(original + 1 + int(withDuplicates.length - original), 0, event)
    }

    // send in random batch sizes; check each outcome
    const seen = new Set<string>()
    const wrong: string[] = []
    for (let i = 0; i < withDuplicates.length;) {
      const batch = withDuplicates.slice(i, i + 1 + int(40))
      i += batch.length
      const res = await g.usage(batch)
      if (res.statusCode !== 200) {
        wrong.push(`batch answered ${res.statusCode}: ${res.body}`)
        continue
      }
      const results = res.json().results as Json[]
      batch.forEach((event, j) => {
        const receipt = `${String(event.request_id)}/${String(event.type)}`
        const expected = seen.has(receipt) ? 'duplicate' : 'recorded'
        seen.add(receipt)
        if (results[j]?.outcome !== expected) wrong.push(`${receipt}: ${JSON.stringify(results[j])}, expected ${expected}`)
      })
    }
    t.same(wrong, [], `${withDuplicates.length} events (${withDuplicates.length - sequence.length} duplicates) in random batches: every outcome as expected`)

    // each row as planned, priced as the reference says
    const rows = new Map((await g.app.prisma.usage.findMany()).map((r) => [r.requestId, r]))
    t.equal(rows.size, plans.length, 'one row per request')
    const mismatches: string[] = []
    for (const p of plans) {
      const row = rows.get(p.id)
      if (row === undefined) { mismatches.push(`${p.id}: missing`); continue }
      const finished = p.kind !== 'unfinished'
      const expected = finished ? expectedCosts(p) : { total: 0n, actual: 0n, w5: 0, w1: 0 }
      const status = finished ? p.status : p.streamed ? 'streaming' : 'pending'
      const got = {
        status: row.status, created: row.createdAt.toISOString(), key: row.apiKeyId, total: row.totalCost, actual: row.actualTotalCost,
        input: row.inputTokens, w5: row.cacheCreation5m, w1: row.cacheCreation1h, read: row.cacheReadTokens
      }
      const want = {
        status, created: p.createdAt, key: keys[p.keyIndex]!.id, total: expected.total, actual: expected.actual,
        input: finished ? p.tokens.input : 0, w5: expected.w5, w1: expected.w1, read: finished ? p.tokens.read : 0
      }
      if (JSON.stringify(got, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v) !== JSON.stringify(want, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)) {
        mismatches.push(`${p.id} (${p.kind}, ${p.model}, ${p.route.name}): got ${JSON.stringify(got, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)}, want ${JSON.stringify(want, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)}`)
      }
    }
    t.same(mismatches, [], 'every row has its planned status, tokens and reference costs')

    // rollups against GROUP BY over the raw rows, charges against sums
    await assertConsistent(t, g.app)
    // the data really spread over hours and days
    const { usage_hourly: hourly, usage_daily_key: daily } = await rollupsAndRaw(g.app)
    t.ok(hourly!.raw.length > 50, `${hourly!.raw.length} hourly groups`)
    t.ok(new Set(daily!.raw.map((r) => r.day)).size >= 4, 'at least four days')
    const { keys: charged } = await chargesAndRaw(g.app)
    t.ok(charged.filter((k) => BigInt(k.total_cost) > 0n).length >= 3, 'several keys charged')
  })
}

// ---------------------------------------------------------------------------------
// stale sweep
// ---------------------------------------------------------------------------------

t.test('stale sweep: a pending request past PENDING_TIMEOUT_MINUTES fails with 504, and its real completion replaces it', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const staleAt = minutesAgo(30)
  await g.send([
    { type: 'start', request_id: 'stale', api_key_id: key.id, model: 'm', api_format: 'openai:chat', created_at: staleAt },
    { type: 'start', request_id: 'stale-streaming', api_key_id: key.id, model: 'm', api_format: 'openai:chat', created_at: minutesAgo(25) },
    { type: 'stream', request_id: 'stale-streaming', first_byte_time_ms: 40 },
    { type: 'start', request_id: 'fresh', api_key_id: key.id, model: 'm', api_format: 'openai:chat' }
  ])

  const active = await g.app.inject({ method: 'GET', url: '/api/admin/usage/active', headers: g.admin.headers })
  t.equal(active.statusCode, 200)
  t.same(active.json().requests.map((r: Json) => r.request_id), ['fresh'], 'only the fresh request is still in flight')
  for (const id of ['stale', 'stale-streaming']) {
    const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: id } })
    t.match(row, { status: 'failed', statusCode: 504, errorMessage: /no completion reported within 10 minutes/, totalCost: 0n }, `${id} swept`)
    t.ok(row.finishedAt !== null)
  }
  t.equal((await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'stale-streaming' } })).firstByteTimeMs, 40, 'the swept row keeps what it had')
  let hourly = await g.app.prisma.usageHourly.findMany({ where: { apiKeyId: key.id } })
  t.equal(hourly.reduce((n, h) => n + h.requests, 0), 2, 'the rollups count the swept requests')
  t.equal(hourly.reduce((n, h) => n + h.errors, 0), 2, '… as errors')
  t.match(await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } }), { totalRequests: 2n, totalCost: 0n })
  await assertConsistent(t, g.app, 'after the sweep: ')

  // sweeping again changes nothing
  const before = await dumpTables(g.app)
  t.equal(await sweepStale(g.app.pg, 10), 0, 'nothing left to sweep')
  await g.app.inject({ method: 'GET', url: '/api/admin/usage/active', headers: g.admin.headers })
  t.same(await dumpTables(g.app), before, 'a second sweep changes nothing')

  // the real completion arrives late: it replaces the timeout
  const late = await g.send([{ type: 'complete', request_id: 'stale', status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 100, response_time_ms: 1_900_000 }])
  // 1000 × 3000 + 100 × 15000 = 3 000 000 + 1 500 000 = 4 500 000 nano = USD 0.0045
  t.same(late, [{ request_id: 'stale', type: 'complete', outcome: 'recorded', cost_usd: 0.0045 }])
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'stale' } }), { status: 'completed', statusCode: 200, errorMessage: null, inputTokens: 1000, totalCost: 4_500_000n })
  hourly = await g.app.prisma.usageHourly.findMany({ where: { apiKeyId: key.id } })
  t.equal(hourly.reduce((n, h) => n + h.requests, 0), 2, 'still two requests: the completion replaced the timeout')
  t.equal(hourly.reduce((n, h) => n + h.errors, 0), 1, 'one error left (the other stale one)')
  t.equal(hourly.reduce((n, h) => n + h.totalCost, 0n), 4_500_000n)
  t.equal(hourly.reduce((n, h) => n + h.inputTokens, 0n), 1000n)
  t.match(await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } }), { totalRequests: 2n, totalTokens: 1100n, totalCost: 4_500_000n, balanceUsed: 4_500_000n }, 'charged once')
  await assertConsistent(t, g.app, 'after the late completion: ')
  t.same((await g.send([{ type: 'complete', request_id: 'stale', status: 'completed', input_tokens: 5, output_tokens: 5 }])).map((r) => r.outcome), ['duplicate'])

  // sweepStale directly
  await g.send([{ type: 'start', request_id: 'direct', api_key_id: key.id, model: 'm', created_at: minutesAgo(11) }])
  t.equal(await sweepStale(g.app.pg, 10), 1)
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'direct' } }), { status: 'failed', statusCode: 504 })
  t.equal(await sweepStale(g.app.pg, 10), 0)
  t.equal(await sweepStale(g.app.pg, 60), 0, 'a finished row is never swept again')
  // its real completion is a failure of its own
  await g.send([{ type: 'complete', request_id: 'direct', status: 'failed', status_code: 500, error_message: 'boom', input_tokens: 10, output_tokens: 0 }])
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'direct' } }), { status: 'failed', statusCode: 500, errorMessage: 'boom', totalCost: 30_000n }) // 10 × 3000
  t.match(await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } }), { totalRequests: 3n, totalCost: 4_530_000n })
  // the fresh one is untouched, and its stream still works
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'fresh' } }), { status: 'pending' })
  await assertConsistent(t, g.app, 'at the end: ')
})

// ---------------------------------------------------------------------------------
// GET /api/admin/usage/active
// ---------------------------------------------------------------------------------

t.test('GET /api/admin/usage/active', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  await g.send([
    { type: 'start', request_id: 'a-pending', api_key_id: key.id, model: 'm' },
    { type: 'start', request_id: 'a-streaming', api_key_id: key.id, model: 'm', is_stream: true },
    { type: 'stream', request_id: 'a-streaming', first_byte_time_ms: 77 },
    { type: 'complete', request_id: 'a-done', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 3, output_tokens: 4, response_time_ms: 55 }
  ])
  const ids = new Map((await g.app.prisma.usage.findMany()).map((r) => [r.requestId, r.id]))
  const get = (query = '', headers: Record<string, string> = g.admin.headers) => g.app.inject({ method: 'GET', url: `/api/admin/usage/active${query}`, headers })

  const all = await get()
  t.equal(all.statusCode, 200)
  t.same(all.json().requests.map((r: Json) => r.request_id).sort(), ['a-pending', 'a-streaming'], 'without ids: pending and streaming')
  t.match(all.json().requests.find((r: Json) => r.request_id === 'a-streaming'), { status: 'streaming', first_byte_time_ms: 77, is_stream: true, cost: 0 })

  const some = await get(`?ids=${ids.get('a-done')!},${ids.get('a-pending')!}`)
  t.equal(some.statusCode, 200)
  t.same(some.json().requests.map((r: Json) => r.request_id).sort(), ['a-done', 'a-pending'], 'with ids: those, whatever their status')
  t.match(some.json().requests.find((r: Json) => r.request_id === 'a-done'), { status: 'completed', input_tokens: 3, output_tokens: 4, response_time_ms: 55 })
  const unknown = await get(`?ids=${UNKNOWN_UUID}`)
  t.same(unknown.json(), { requests: [] }, 'an unknown id: nothing')

  const malformed = ['?ids=not-a-uuid', '?ids=', `?ids=${ids.get('a-done')!},`, `?ids=${ids.get('a-done')!};drop`, `?ids=${Array.from({ length: 101 }, () => UNKNOWN_UUID).join(',')}`]
  for (const query of malformed) {
    const res = await get(query)
    t.equal(res.statusCode, 400, `${query.slice(0, 60)} → 400`)
    t.equal(res.json().error.type, 'validation_error')
  }
  t.equal((await get('', GATEWAY)).statusCode, 401, 'the gateway token is not an admin')
})

t.test('GET /api/admin/usage/active: ids that fit the pattern but are not UUIDs are a 400, not a 500', async (t) => {
  const g = await gateway(t)
  for (const id of ['a'.repeat(36), '-'.repeat(36), '0000000000000000-0000-0000-000000000']) {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/active?ids=${id}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, `${id} → 400 (answered ${res.statusCode})`)
  }
})

// ---------------------------------------------------------------------------------
// bad input
// ---------------------------------------------------------------------------------

t.test('bad input: malformed batches are a 400 with nothing written; bad events are rejected one by one', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const provider = await g.provider('p')
  const other = await g.provider('other')
  const otherKey = await g.providerKey(other.id)
  const key = await g.standaloneKey()
  const counts = async () => ({ usage: await g.app.prisma.usage.count(), receipts: await g.app.prisma.gatewayEvent.count(), candidates: await g.app.prisma.requestCandidate.count() })
  const good = (id: string) => ({ type: 'complete', request_id: id, api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1 })
  const seenStatuses: number[] = []

  const malformed: Array<[string, unknown]> = [
    ['a negative token count', [{ ...good('neg'), input_tokens: -1 }]],
    ['a non-integer token count', [{ ...good('frac'), output_tokens: 1.5 }]],
    ['a token count as a string', [{ ...good('str'), output_tokens: '5' }]],
    ['a negative cache split', [{ ...good('neg5m'), cache_creation_5m_input_tokens: -3 }]],
    ['an unknown event type', [{ type: 'finish', request_id: 'x' }]],
    ['an unknown status', [{ ...good('st'), status: 'timeout' }]],
    ['a start without api_key_id', [{ type: 'start', request_id: 'nokey', model: 'm' }]],
    ['a start with a malformed api_key_id', [{ type: 'start', request_id: 'badkey', api_key_id: 'key-1', model: 'm' }]],
    ['an unknown field', [{ ...good('extra'), cost: 5 }]],
    ['a created_at without offset', [{ type: 'start', request_id: 'tz', api_key_id: key.id, model: 'm', created_at: '2026-01-01T00:00:00' }]],
    ['an empty request_id', [{ ...good(''), request_id: '' }]],
    ['a stream without first_byte_time_ms', [{ type: 'stream', request_id: 'x' }]],
    ['1001 events', Array.from({ length: 1001 }, (_v, i) => good(`many-${i}`))],
    ['0 events', []],
    ['one bad event among good ones', [good('ok-1'), { ...good('bad'), input_tokens: -5 }, good('ok-2')]]
  ]
  for (const [name, events] of malformed) {
    const before = await counts()
    const res = await g.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events } })
    seenStatuses.push(res.statusCode)
    t.equal(res.statusCode, 400, `${name} → 400`)
    t.match(res.json(), { error: { type: 'validation_error', message: String }, request_id: String })
    t.same(await counts(), before, `${name}: nothing written`)
  }
  for (const payload of [{}, { events: 'x' }, { events: [good('a')], extra: 1 }]) {
    const res = await g.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload })
    seenStatuses.push(res.statusCode)
    t.equal(res.statusCode, 400, `${JSON.stringify(payload).slice(0, 40)} → 400`)
  }
  t.same(await counts(), { usage: 0, receipts: 0, candidates: 0 }, 'no malformed batch wrote anything')

  // one event refused, the others recorded
  const mixed = await g.usage([
    good('m-1'),
    { ...good('m-2'), api_key_id: UNKNOWN_UUID },
    { type: 'stream', request_id: 'never-started', first_byte_time_ms: 5 },
    { ...good('m-3'), cache_creation_input_tokens: 100, cache_creation_5m_input_tokens: 30, cache_creation_1h_input_tokens: 50 },
    { type: 'complete', request_id: 'no-start-fields', status: 'completed', input_tokens: 1, output_tokens: 1 },
    { ...good('m-4'), provider_id: UNKNOWN_UUID },
    { ...good('m-5'), provider_id: provider.id, provider_api_key_id: otherKey.id },
    { type: 'start', request_id: 'm-6', api_key_id: UNKNOWN_UUID, model: 'm' },
    good('m-7')
  ])
  seenStatuses.push(mixed.statusCode)
  t.equal(mixed.statusCode, 200)
  const results = mixed.json().results as Json[]
  t.same(results.map((r) => [r.request_id, r.outcome]), [
    ['m-1', 'recorded'], ['m-2', 'rejected'], ['never-started', 'rejected'], ['m-3', 'rejected'], ['no-start-fields', 'rejected'],
    ['m-4', 'rejected'], ['m-5', 'rejected'], ['m-6', 'rejected'], ['m-7', 'recorded']
  ])
  for (const r of results.filter((r) => r.outcome === 'rejected')) {
    t.ok(typeof r.error === 'string' && r.error.length > 0, `${r.request_id as string}: rejected with a reason (${String(r.error)})`)
    t.notOk('cost_usd' in r, `${r.request_id as string}: no cost`)
  }
  t.match(results[1]!.error, /api_key_id/)
  t.match(results[3]!.error, /cache_creation_input_tokens/)
  t.match(results[6]!.error, /another provider/)
  t.same((await g.app.prisma.usage.findMany({ orderBy: { requestId: 'asc' } })).map((r) => r.requestId), ['m-1', 'm-7'], 'only the accepted events wrote rows')
  t.same((await g.app.prisma.gatewayEvent.findMany({ orderBy: { requestId: 'asc' } })).map((r) => `${r.requestId}/${r.eventType}`), ['m-1/complete', 'm-7/complete'], 'no receipt kept for a rejected event')
  t.match(await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } }), { totalRequests: 2n }, 'only the accepted events charged')

  // the rejected events sent again, corrected
  const corrected = await g.send([
    good('m-2'),
    { type: 'start', request_id: 'never-started', api_key_id: key.id, model: 'm' },
    { type: 'stream', request_id: 'never-started', first_byte_time_ms: 5 },
    { ...good('m-3'), cache_creation_input_tokens: 80, cache_creation_5m_input_tokens: 30, cache_creation_1h_input_tokens: 50 },
    { ...good('no-start-fields') },
    { ...good('m-5'), provider_id: other.id, provider_api_key_id: otherKey.id }
  ])
  t.same(corrected.map((r) => r.outcome), ['recorded', 'recorded', 'recorded', 'recorded', 'recorded', 'recorded'], 'a corrected event is recorded: its receipt was not kept')
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'never-started' } }), { status: 'streaming', firstByteTimeMs: 5 })
  t.match(await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'm-3' } }), { cacheCreationTokens: 80, cacheCreation5m: 30, cacheCreation1h: 50 })
  // the same events once more: duplicates now
  t.same((await g.send([good('m-2'), good('m-3')])).map((r) => r.outcome), ['duplicate', 'duplicate'])
  await assertConsistent(t, g.app)

  t.ok(seenStatuses.every((s) => s < 500), 'no 5xx anywhere')
})

t.test('bad input: provider output with U+0000 in a body is stored or refused, never a 500', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const res = await g.usage([
    { type: 'complete', request_id: 'nul-body', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1, response_body: { text: 'a\u0000b' } },
    { type: 'complete', request_id: 'fine', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1 }
  ])
  t.ok(res.statusCode < 500, `answered ${res.statusCode}`)
  if (res.statusCode === 400) {
    // refused as a malformed batch: then nothing of it is written
    t.equal(await g.app.prisma.usage.count(), 0, '400: nothing of the batch written')
    t.equal(await g.app.prisma.gatewayEvent.count(), 0, '400: no receipt kept')
  } else {
    t.equal(res.statusCode, 200)
    t.equal(await g.app.prisma.usage.count({ where: { requestId: 'fine' } }), 1, '200: the other event of the batch is recorded')
  }
})

t.test('bodies are capped at BODY_CAP_BYTES bytes, not characters', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  // 30 000 "€" are 30 002 characters of JSON but 90 002 bytes of UTF-8, over the 65 536-byte cap
  await g.send([{ type: 'complete', request_id: 'big', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1, response_body: '€'.repeat(30_000) }])
  const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'big' } })
  const body = await g.app.prisma.usageBody.findFirstOrThrow({ where: { usageId: row.id } })
  const bytes = Buffer.byteLength(JSON.stringify(body.responseBody))
  t.ok(bytes <= 64 * 1024, `the stored body fits the cap (${bytes} bytes)`)
  // an ASCII body over the cap is replaced by its size
  await g.send([{ type: 'complete', request_id: 'big-ascii', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1, request_body: 'x'.repeat(70_000) }])
  const ascii = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'big-ascii' } })
  t.same((await g.app.prisma.usageBody.findFirstOrThrow({ where: { usageId: ascii.id } })).requestBody, { truncated: true, bytes: 70_002 })
})

t.test('provider attempts: candidates on their providers, an implicit attempt for a request without one, a timeout replaced by a late completion', async (t) => {
  const g = await gateway(t)
  const a = await g.provider('attempts-a')
  const b = await g.provider('attempts-b')
  const key = await g.standaloneKey()
  const at = '2025-07-01T08:15:00.000Z'
  const attempts = async () => (await g.app.prisma.providerAttemptsHourly.findMany({ orderBy: { providerId: 'asc' } }))
    .filter((r) => r.attempts !== 0)
    .map((r) => ({ provider: r.providerId === a.id ? 'a' : 'b', attempts: r.attempts, successes: r.successes, failures: r.failures, latency: Number(r.latencySumMs), timed: r.latencyCount }))
    .sort((x, y) => x.provider < y.provider ? -1 : 1)

  await g.send([
    // no candidates: one attempt on its provider, with its response time
    { type: 'complete', request_id: 'plain', api_key_id: key.id, model: 'm', provider_id: a.id, created_at: at, status: 'completed', input_tokens: 1, output_tokens: 1, response_time_ms: 100 },
    // failed without candidates: a failed attempt
    { type: 'complete', request_id: 'plain-failed', api_key_id: key.id, model: 'm', provider_id: a.id, created_at: at, status: 'failed', status_code: 500, input_tokens: 0, output_tokens: 0, response_time_ms: 50 },
    // only a skipped candidate: still the implicit attempt
    {
      type: 'complete', request_id: 'skipped', api_key_id: key.id, model: 'm', provider_id: b.id, created_at: at, status: 'cancelled', input_tokens: 0, output_tokens: 0,
      candidates: [{ candidate_index: 0, provider_id: a.id, status: 'skipped', skip_reason: 'circuit open' }]
    },
    // pending: no attempt yet
    { type: 'start', request_id: 'stale', api_key_id: key.id, model: 'm', provider_id: a.id, created_at: minutesAgo(30) }
  ])
  t.same(await attempts(), [
    { provider: 'a', attempts: 2, successes: 1, failures: 1, latency: 150, timed: 2 },
    { provider: 'b', attempts: 1, successes: 1, failures: 0, latency: 0, timed: 0 }
  ], 'implicit attempts only')
  await assertConsistent(t, g.app, 'implicit: ')

  const total = (hours: Json[], p: string) => hours.filter((r) => r.provider === p).reduce((s, r) => ({ attempts: s.attempts + r.attempts, failures: s.failures + r.failures, latency: s.latency + r.latency }),
    { attempts: 0, failures: 0, latency: 0 })
  t.equal(await sweepStale(g.app.pg, 10), 1)
  t.same(total(await attempts(), 'a'), { attempts: 3, failures: 2, latency: 150 }, 'the timeout is a failed implicit attempt on its provider (no response time)')
  await assertConsistent(t, g.app, 'after the sweep: ')

  // the late completion fell back from a to b: two candidate attempts replace the implicit failure
  await g.send([{
    type: 'complete', request_id: 'stale', status: 'completed', provider_id: b.id, input_tokens: 1, output_tokens: 1, response_time_ms: 900,
    candidates: [
      { candidate_index: 0, provider_id: a.id, status: 'failed', status_code: 529, latency_ms: 300 },
      { candidate_index: 1, provider_id: b.id, status: 'success', status_code: 200, latency_ms: 600 }
    ]
  }])
  await assertConsistent(t, g.app, 'after the late completion: ')
  const hours = await attempts()
  t.same(total(hours, 'a'), { attempts: 3, failures: 2, latency: 450 }, 'a: two implicit attempts and the failed candidate; the timeout is gone')
  t.same(total(hours, 'b'), { attempts: 2, failures: 0, latency: 600 }, 'b: the skipped request and the successful candidate')
})
