// The event state machine alone: no database, no server. Each case feeds events and the
// current rows to applyEvents and checks the rows, charges and results it returns against
// values worked out by hand (the arithmetic is written beside them).
import t from 'tap'
import { applyEvents, type MachineInput, type MachineOutput } from '../../../src/modules/usage/ingest/machine.js'
import type { Lookups, RowState } from '../../../src/modules/usage/ingest/row.js'
import type { UsageEventBody } from '../../../src/modules/usage/schemas.js'

const USER = '00000000-0000-4000-8000-0000000000a1'
const KEY = '00000000-0000-4000-8000-0000000000b1'
const PROVIDER = '00000000-0000-4000-8000-0000000000c1'
const OTHER_PROVIDER = '00000000-0000-4000-8000-0000000000c2'
const PROVIDER_KEY = '00000000-0000-4000-8000-0000000000d1'
const ENDPOINT = '00000000-0000-4000-8000-0000000000e1'
const PRICE = '00000000-0000-4000-8000-0000000000f1'
const NOWHERE = '00000000-0000-4000-8000-000000000999'

// model "m", one global tier: USD 3 / 15 / 3.75 / 6 / 0.30 per 1M tokens, i.e. per token
// 3000 / 15000 / 3750 / 6000 / 300 nano-USD (input / output / 5m write / 1h write / read)
const LOOKUPS: Lookups = {
  keys: new Map([[KEY, { id: KEY, user_id: USER }]]),
  providers: new Map([
    [PROVIDER, { id: PROVIDER, name: 'prov', billing_type: 'pay_as_you_go' }],
    [OTHER_PROVIDER, { id: OTHER_PROVIDER, name: 'other', billing_type: 'pay_as_you_go' }]
  ]),
  endpoints: new Map([[ENDPOINT, { id: ENDPOINT, provider_id: PROVIDER }]]),
  providerKeys: new Map([[PROVIDER_KEY, { id: PROVIDER_KEY, provider_id: PROVIDER, rate_multiplier: '0.500000', cache_ttl_minutes: 5 }]]),
  prices: [{
    id: PRICE,
    model: 'm',
    providerId: null,
    tiers: [{ up_to: null, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 }],
    pricePerRequest: null,
    effectiveFrom: new Date('2025-01-01T00:00:00Z')
  }]
}

const NOW = new Date('2026-01-01T12:00:00Z')
const CREATED = '2026-01-01T10:00:00.000Z' // 1 767 261 600 000 ms

/** One batch through the machine; ids are `id-<created_at ms>`, so they can be written out. */
function run (events: UsageEventBody[], rows: RowState[] = [], extra: Partial<MachineInput> = {}): MachineOutput {
  const byRequest = new Map(rows.map((row) => [row.requestId, row]))
  return applyEvents({ events, rows: byRequest, lookups: LOOKUPS, now: NOW, newId: (ms) => `id-${ms}`, ...extra })
}

const start = (requestId: string, fields: Partial<Extract<UsageEventBody, { type: 'start' }>> = {}): UsageEventBody => ({
  type: 'start', request_id: requestId, api_key_id: KEY, model: 'm', created_at: CREATED, ...fields
})
const complete = (requestId: string, fields: Partial<Extract<UsageEventBody, { type: 'complete' }>> = {}): UsageEventBody => ({
  type: 'complete', request_id: requestId, status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 100, ...fields
})

t.test('start → stream → complete in one batch: one completed row, priced, charged once', async (t) => {
  const out = run([
    start('r1', { is_stream: true, provider_api_key_id: PROVIDER_KEY, api_format: 'openai:chat' }),
    { type: 'stream', request_id: 'r1', first_byte_time_ms: 120 },
    complete('r1', { cache_read_input_tokens: 2000, response_time_ms: 900, finished_at: '2026-01-01T10:00:02.000Z' })
  ])
  // input 1000 × 3000 = 3 000 000; output 100 × 15 000 = 1 500 000; read 2000 × 300 = 600 000; total 5 100 000 nano
  t.same(out.results, [
    { request_id: 'r1', type: 'start', outcome: 'recorded' },
    { request_id: 'r1', type: 'stream', outcome: 'recorded' },
    { request_id: 'r1', type: 'complete', outcome: 'recorded', cost_usd: 0.0051 }
  ])
  t.equal(out.rows.length, 1)
  const row = out.rows[0]!
  t.match(row, {
    id: 'id-1767261600000',
    requestId: 'r1',
    userId: USER,
    apiKeyId: KEY,
    providerId: PROVIDER,
    providerApiKeyId: PROVIDER_KEY,
    providerEndpointId: null,
    providerName: 'prov',
    model: 'm',
    apiFormat: 'openai:chat',
    isStream: true,
    status: 'completed',
    statusCode: 200,
    inputTokens: 1000,
    outputTokens: 100,
    cacheCreationTokens: 0,
    cacheReadTokens: 2000,
    totalTokens: 3100, // 1000 + 100 + 0 + 2000
    firstByteTimeMs: 120,
    responseTimeMs: 900,
    modelPriceId: PRICE,
    rateMultiplier: '0.500000'
  })
  t.equal(row.createdAt.toISOString(), CREATED)
  t.equal(row.finishedAt!.toISOString(), '2026-01-01T10:00:02.000Z')
  t.same(row.costs, { input: 3_000_000n, output: 1_500_000n, cacheCreation: 0n, cacheRead: 600_000n, request: 0n, total: 5_100_000n })
  // the provider key's rate multiplier 0.5 halves each part
  t.same(row.actual, { input: 1_500_000n, output: 750_000n, cacheCreation: 0n, cacheRead: 300_000n, request: 0n, total: 2_550_000n })
  t.equal(row.totalCost, 5_100_000n)
  t.equal(row.actualTotalCost, 2_550_000n)
  t.same(row.snapshot, { input: 3_000_000_000n, output: 15_000_000_000n, cacheWrite5m: 3_750_000_000n, cacheWrite1h: 6_000_000_000n, cacheRead: 300_000_000n, perRequest: null })
  t.notOk('tieredPricing' in row, 'no copy of the tier facts: the price version (modelPriceId) and the tokens give them')
  t.same(out.charges, { keys: [{ id: KEY, requests: '1', tokens: '3100', cost: '5100000' }], users: [{ id: USER, cost: '5100000' }] })
  t.same(out.rejected, [])
  t.same(out.bodies, [])
  t.same(out.candidates, [])
})

t.test('start, stream and complete in three batches: the rows carried from one to the next', async (t) => {
  const first = run([start('r1')])
  t.match(first.rows, [{ requestId: 'r1', status: 'pending', totalCost: 0n }])
  t.same(first.charges, { keys: [], users: [] }, 'an unfinished request charges nothing')

  const second = run([{ type: 'stream', request_id: 'r1', first_byte_time_ms: 40 }], first.rows)
  t.match(second.rows, [{ requestId: 'r1', status: 'streaming', firstByteTimeMs: 40 }])
  t.same(second.charges, { keys: [], users: [] })
  t.equal(first.rows[0]!.status, 'pending', 'the rows given are left unchanged')

  // input 1000 × 3000 + output 100 × 15 000 = 4 500 000 nano; no provider key: multiplier 1
  const third = run([complete('r1')], second.rows)
  t.match(third.rows, [{ id: 'id-1767261600000', status: 'completed', firstByteTimeMs: 40, totalTokens: 1100, totalCost: 4_500_000n, actualTotalCost: 4_500_000n, rateMultiplier: '1' }])
  t.equal(third.rows[0]!.finishedAt!.toISOString(), NOW.toISOString(), 'no finished_at: the batch time')
  t.same(third.charges, { keys: [{ id: KEY, requests: '1', tokens: '1100', cost: '4500000' }], users: [{ id: USER, cost: '4500000' }] })
})

t.test('complete before start: the completion creates the row; the late start changes nothing', async (t) => {
  const done = run([complete('r2', { api_key_id: KEY, model: 'm', created_at: CREATED, provider_endpoint_id: ENDPOINT })])
  t.same(done.results, [{ request_id: 'r2', type: 'complete', outcome: 'recorded', cost_usd: 0.0045 }])
  t.match(done.rows, [{ requestId: 'r2', id: 'id-1767261600000', status: 'completed', providerId: PROVIDER, providerEndpointId: ENDPOINT, totalCost: 4_500_000n }])
  t.same(done.charges, { keys: [{ id: KEY, requests: '1', tokens: '1100', cost: '4500000' }], users: [{ id: USER, cost: '4500000' }] })

  const late = run([start('r2', { created_at: '2026-01-01T09:00:00.000Z' })], done.rows)
  t.same(late.results, [{ request_id: 'r2', type: 'start', outcome: 'recorded' }])
  t.same(late.rows, [], 'the row is not rewritten')
  t.same(late.charges, { keys: [], users: [] })

  const bare = run([complete('r3')])
  t.same(bare.results, [{ request_id: 'r3', type: 'complete', outcome: 'rejected', error: 'unknown request: send its start, or api_key_id and model with the completion' }])
  t.same(bare.rows, [])
  t.same(bare.rejected, [{ request_id: 'r3', event_type: 'complete' }])
})

t.test('repeated events: a second start or stream changes nothing it already set; a sweep skips a finished row', async (t) => {
  const started = run([start('r4'), { type: 'stream', request_id: 'r4', first_byte_time_ms: 50 }])
  const again = run([start('r4', { model: 'other' }), { type: 'stream', request_id: 'r4', first_byte_time_ms: 75 }], started.rows)
  t.same(again.results.map((r) => r.outcome), ['recorded', 'recorded'])
  t.match(again.rows, [{ requestId: 'r4', model: 'm', status: 'streaming', firstByteTimeMs: 50 }], 'the first start and first byte time stay')

  const finished = run([complete('r4')], started.rows)
  const swept = run([complete('r4', { status: 'failed', status_code: 504, input_tokens: 0, output_tokens: 0 })], finished.rows, { synthetic: true })
  t.same(swept.results, [{ request_id: 'r4', type: 'complete', outcome: 'duplicate' }])
  t.same(swept.rows, [])
  t.same(swept.charges, { keys: [], users: [] })
})

t.test('a synthetic timeout, then the late completion that replaces it', async (t) => {
  const pending = run([start('r5')])
  const timeout = complete('r5', { status: 'failed', status_code: 504, error_message: 'no completion reported within 60 minutes', input_tokens: 0, output_tokens: 0 })
  const swept = run([timeout, { ...timeout, request_id: 'never-started' }], pending.rows, { synthetic: true })
  t.same(swept.results, [
    { request_id: 'r5', type: 'complete', outcome: 'recorded', cost_usd: 0 },
    { request_id: 'never-started', type: 'complete', outcome: 'duplicate' }
  ], 'a sweep only times out a row it holds')
  t.match(swept.rows, [{ requestId: 'r5', status: 'failed', statusCode: 504, errorMessage: 'no completion reported within 60 minutes', totalTokens: 0, totalCost: 0n }])
  t.equal(swept.rows[0]!.finishedAt!.toISOString(), NOW.toISOString())
  // a failed request counts as one request of no tokens and no cost; a user charged nothing is left out
  t.same(swept.charges, { keys: [{ id: KEY, requests: '1', tokens: '0', cost: '0' }], users: [] })

  const late = run([complete('r5', { response_time_ms: 4000 })], swept.rows)
  t.same(late.results, [{ request_id: 'r5', type: 'complete', outcome: 'recorded', cost_usd: 0.0045 }])
  t.match(late.rows, [{ requestId: 'r5', id: 'id-1767261600000', status: 'completed', statusCode: 200, errorMessage: null, totalTokens: 1100, totalCost: 4_500_000n }])
  // after − before: requests 1 − 1 = 0, tokens 1100 − 0, cost 4 500 000 − 0
  t.same(late.charges, { keys: [{ id: KEY, requests: '0', tokens: '1100', cost: '4500000' }], users: [{ id: USER, cost: '4500000' }] })
})

t.test('an unknown key is rejected, and its receipt released', async (t) => {
  const out = run([start('r6', { api_key_id: NOWHERE })])
  t.same(out.results, [{ request_id: 'r6', type: 'start', outcome: 'rejected', error: `unknown api_key_id ${NOWHERE}` }])
  t.same(out.rows, [])
  t.same(out.rejected, [{ request_id: 'r6', event_type: 'start' }])
  t.same(out.charges, { keys: [], users: [] })
})

t.test('one bad event is rejected alone: the rest of the batch is recorded', async (t) => {
  const pending = run([start('r8')])
  const out = run([
    start('r7'),
    complete('r8', { cache_creation_input_tokens: 10, cache_creation_5m_input_tokens: 3 }),
    start('r9', { provider_id: NOWHERE }),
    { type: 'stream', request_id: 'r10', first_byte_time_ms: 5 },
    start('r11', { provider_api_key_id: PROVIDER_KEY, provider_id: OTHER_PROVIDER }),
    complete('r7', {
      output_tokens: 0,
      request_headers: { authorization: 'Bearer sk-live-abcdefghijklmnopqrstuvwxyz' },
      // the schema's status union (built with map) is typed never: the literal is cast
      candidates: [{ candidate_index: 0, provider_id: PROVIDER, status: 'success' as never, latency_ms: 30 }]
    })
  ], pending.rows)
  t.same(out.results, [
    { request_id: 'r7', type: 'start', outcome: 'recorded' },
    { request_id: 'r8', type: 'complete', outcome: 'rejected', error: 'cache_creation_input_tokens must equal the 5m and 1h parts' },
    { request_id: 'r9', type: 'start', outcome: 'rejected', error: `unknown provider_id ${NOWHERE}` },
    { request_id: 'r10', type: 'stream', outcome: 'rejected', error: 'unknown request: send its start first' },
    { request_id: 'r11', type: 'start', outcome: 'rejected', error: 'provider_api_key_id belongs to another provider' },
    // input 1000 × 3000 = 3 000 000 nano
    { request_id: 'r7', type: 'complete', outcome: 'recorded', cost_usd: 0.003 }
  ])
  t.same(out.rows.map((r) => [r.requestId, r.status]), [['r7', 'completed']], 'the rejected completion leaves r8 as it was: not written')
  t.same(out.rejected, [
    { request_id: 'r8', event_type: 'complete' },
    { request_id: 'r9', event_type: 'start' },
    { request_id: 'r10', event_type: 'stream' },
    { request_id: 'r11', event_type: 'start' }
  ])
  t.same(out.charges, { keys: [{ id: KEY, requests: '1', tokens: '1000', cost: '3000000' }], users: [{ id: USER, cost: '3000000' }] })
  t.same(out.candidates, [{
    request_id: 'r7', candidate_index: 0, retry_index: 0, user_id: USER, api_key_id: KEY, provider_id: PROVIDER, provider_endpoint_id: null,
    provider_api_key_id: null, status: 'success', skip_reason: null, is_cached: false, status_code: null, error_type: null, error_message: null,
    latency_ms: 30, started_at: null, finished_at: null, created_at: CREATED
  }])
  t.equal(out.bodies.length, 1)
  t.equal(out.bodies[0]!.usage_id, 'id-1767261600000', 'a body is kept under its row id')
  t.notMatch(JSON.stringify(out.bodies[0]!.request_headers), /abcdefghijklmnopqrstuvwxyz/, 'a credential header is masked before it is kept')
  t.same([out.bodies[0]!.response_headers, out.bodies[0]!.request_body, out.bodies[0]!.response_body], [null, null, null])
})
