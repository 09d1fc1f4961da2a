// The rollup deltas of model.ts, without a database: what a batch adds to each table for
// rows going from `before` to `after`, against values worked out by hand.
import t from 'tap'
import { RollupDeltas, type RollupSource } from '../../../src/modules/accounting/rollups.js'
import { ROLLUPS } from '../../../src/modules/accounting/model.js'

const USER = '11111111-1111-4111-8111-111111111111'
const KEY = '22222222-2222-4222-8222-222222222222'
const PROVIDER = '33333333-3333-4333-8333-333333333333'
const NIL = '00000000-0000-0000-0000-000000000000'

const row = (overrides: Partial<RollupSource> = {}): RollupSource => ({
  requestId: 'req_1', status: 'completed', createdAt: new Date('2026-03-04T05:20:07.000Z'), userId: USER, apiKeyId: KEY, providerId: PROVIDER,
  model: 'claude-sonnet-4', apiFormat: 'claude:messages', inputTokens: 100, outputTokens: 20, cacheCreationTokens: 0, cacheReadTokens: 0, totalTokens: 120,
  cacheCreationCost: 0n, cacheReadCost: 0n, totalCost: 1_000n, actualTotalCost: 1_500n, responseTimeMs: 800,
  cacheCreation5m: 0, cacheCreation1h: 0, firstByteTimeMs: 300, ...overrides
})

/** a latency histogram delta of one sample in bucket i (trailing zeros left off) */
const oneIn = (i: number) => [...Array<number>(i).fill(0), 1]

t.test('a completed row, then its replacement: the batch adds after − before', async (t) => {
  const deltas = new RollupDeltas()
  deltas.change(null, row())
  // $3 / $0.30 / $3.75 / $6 per 1M: the reads save 5 × 2.70 = 13,500 nano-USD, the writes cost 3 × 0.75 + 2 × 3.00 = 8,250 above input
  const snapshot = { input: 3_000_000_000n, cacheRead: 300_000_000n, cacheWrite5m: 3_750_000_000n, cacheWrite1h: 6_000_000_000n }
  deltas.change(row(), row({ inputTokens: 130, outputTokens: 25, totalTokens: 165, cacheReadTokens: 5, cacheCreationTokens: 5, cacheCreation5m: 3, cacheCreation1h: 2, firstByteTimeMs: 350, cacheReadCost: 7n, totalCost: 1_300n, actualTotalCost: 1_950n, responseTimeMs: 900, snapshot }))
  t.same(deltas.rowsOf('usage_hourly'), [{
    bucket: '2026-03-04T05:00:00.000Z', user_id: USER, api_key_id: KEY, provider_id: PROVIDER, model: 'claude-sonnet-4', api_format: 'claude:messages',
    requests: '1', errors: '0', input_tokens: '130', output_tokens: '25', cache_creation_tokens: '5', cache_read_tokens: '5', total_tokens: '165',
    total_cost: '1300', actual_total_cost: '1950', response_time_sum_ms: '900', response_time_count: '1', cache_creation_cost: '0', cache_read_cost: '7', cache_hit_requests: '1',
    first_byte_time_sum_ms: '350', first_byte_time_count: '1', cache_creation_5m_tokens: '3', cache_creation_1h_tokens: '2',
    cache_read_saving: '13500', cache_write_premium: '8250'
  }])
  // the quarter-hour keeps the time series' measures and the latency histograms (issue 19: a +05:30 midnight's cut hours)
  t.same(deltas.rowsOf('usage_quarter_hourly_global'), [{
    bucket: '2026-03-04T05:15:00.000Z', requests: '1', total_tokens: '165', total_cost: '1300', actual_total_cost: '1950',
    errors: '0', input_tokens: '130', output_tokens: '25', cache_creation_tokens: '5', cache_creation_5m_tokens: '3', cache_creation_1h_tokens: '2',
    cache_read_tokens: '5', response_time_sum_ms: '900', response_time_count: '1', first_byte_time_sum_ms: '350', first_byte_time_count: '1',
    // and the costs the totals read beside the hours (the replacement's reads cost 7, its writes nothing)
    cache_creation_cost: '0', cache_read_cost: '7',
    response_time_hist: oneIn(62), first_byte_time_hist: oneIn(52)
  }])
  // the model quarter-hour keeps the cache economics too (cost/savings' whole quarter-hours at a range's ends)
  t.same(deltas.rowsOf('usage_quarter_hourly_model').map((r) => [r.bucket, r.provider_id, r.cache_read_cost, r.cache_read_saving, r.cache_write_premium]),
    [['2026-03-04T05:15:00.000Z', PROVIDER, '7', '13500', '8250']])
  // its histograms hold the replacement's one sample each (the first row's went in and out): 900 ms in [884, 972), bucket 62; 350 ms in [343, 377), bucket 52
  t.same(deltas.rowsOf('usage_hourly_global'), [{
    bucket: '2026-03-04T05:00:00.000Z', requests: '1', total_tokens: '165', total_cost: '1300', actual_total_cost: '1950',
    response_time_hist: oneIn(62), first_byte_time_hist: oneIn(52)
  }])
  t.same(deltas.rowsOf('usage_daily_user'), [{ day: '2026-03-04', user_id: USER, requests: '1', errors: '0', total_tokens: '165', total_cost: '1300', actual_total_cost: '1950' }])
  t.same(deltas.attemptRows(), [{ bucket: '2026-03-04T05:00:00.000Z', provider_id: PROVIDER, attempts: '1', successes: '1', failures: '0', latency_sum_ms: '900', latency_count: '1', fallbacks: '0' }])
})

t.test('a timed-out row replaced by a late completion moves it between tables: failed out, completed in', async (t) => {
  const deltas = new RollupDeltas()
  const swept = row({ status: 'failed', outputTokens: 0, totalTokens: 100, totalCost: 0n, actualTotalCost: 0n, responseTimeMs: null, firstByteTimeMs: null })
  deltas.change(swept, row())
  t.same(deltas.rowsOf('usage_hourly_model'), [{
    bucket: '2026-03-04T05:00:00.000Z', provider_id: PROVIDER, model: 'claude-sonnet-4', api_format: 'claude:messages',
    requests: '0', errors: '-1', input_tokens: '0', output_tokens: '20', cache_creation_tokens: '0', cache_read_tokens: '0', total_tokens: '20',
    total_cost: '1000', actual_total_cost: '1500', response_time_sum_ms: '800', response_time_count: '1', cache_creation_cost: '0', cache_read_cost: '0', cache_hit_requests: '0',
    first_byte_time_sum_ms: '300', first_byte_time_count: '1', cache_creation_5m_tokens: '0', cache_creation_1h_tokens: '0',
    cache_read_saving: '0', cache_write_premium: '0',
    // the swept row had no latencies: one sample each in 800 ms's bucket, [731, 804), the 60th, and 300 ms's, [284, 312), the 50th
    response_time_hist: oneIn(60), first_byte_time_hist: oneIn(50)
  }])
  t.same(deltas.attemptRows(), [{ bucket: '2026-03-04T05:00:00.000Z', provider_id: PROVIDER, attempts: '0', successes: '1', failures: '-1', latency_sum_ms: '800', latency_count: '1', fallbacks: '0' }])
})

t.test('unfinished rows count nowhere; an unchanged row nets to no rows at all', async (t) => {
  const deltas = new RollupDeltas()
  deltas.change(null, row({ status: 'pending', requestId: 'req_2' }))
  deltas.change(row({ status: 'pending' }), row({ status: 'streaming' }))
  deltas.change(row(), row())
  for (const { table } of ROLLUPS) t.same(deltas.rowsOf(table), [], table)
  t.same(deltas.attemptRows(), [])
})

t.test('the row filter: a request that reached no provider is in the totals, not in the user ranking', async (t) => {
  const deltas = new RollupDeltas()
  deltas.change(null, row({ providerId: null, apiFormat: null, userId: null }))
  t.same(deltas.rowsOf('usage_hourly_user'), [])
  t.same(deltas.rowsOf('usage_daily_user'), [])
  t.same(deltas.rowsOf('usage_hourly_provider').map((r) => [r.provider_id, r.requests]), [[NIL, '1']])
  t.same(deltas.rowsOf('usage_daily_key').map((r) => [r.day, r.user_id, r.api_key_id, r.model, r.requests]), [['2026-03-04', NIL, KEY, 'claude-sonnet-4', '1']])
  t.same(deltas.rowsOf('usage_hourly').map((r) => r.api_format), [''])
  t.same(deltas.attemptRows(), [], 'no provider: no implicit attempt')
})

t.test('rows of one hour and two quarters sum in the hour and stay apart in the quarters; money stays exact past 2^53', async (t) => {
  const deltas = new RollupDeltas()
  const big = 2n ** 60n
  deltas.change(null, row({ requestId: 'a', createdAt: new Date('2026-03-04T05:01:00.000Z'), totalCost: big, actualTotalCost: 1n }))
  deltas.change(null, row({ requestId: 'b', createdAt: new Date('2026-03-04T05:59:59.999Z'), totalCost: 3n, actualTotalCost: 1n, responseTimeMs: null }))
  t.same(deltas.rowsOf('usage_quarter_hourly_global').map((r) => [r.bucket, r.requests, r.total_cost]),
    [['2026-03-04T05:00:00.000Z', '1', '1152921504606846976'], ['2026-03-04T05:45:00.000Z', '1', '3']])
  t.same(deltas.rowsOf('usage_hourly_user').map((r) => [r.bucket, r.requests, r.total_cost, r.actual_total_cost]),
    [['2026-03-04T05:00:00.000Z', '2', '1152921504606846979', '2']])
  t.same(deltas.rowsOf('usage_hourly_provider').map((r) => [r.response_time_sum_ms, r.response_time_count]), [['800', '1']])
})

t.test('an executed candidate is the attempt: the request adds no implicit one', async (t) => {
  const deltas = new RollupDeltas()
  const at = new Date('2026-03-04T05:20:07.000Z')
  deltas.sent([
    { request_id: 'req_1', provider_id: NIL.replace(/0/g, '4'), status: 'failed', latency_ms: 300, created_at: at },
    { request_id: 'req_1', provider_id: PROVIDER, status: 'success', latency_ms: 500, created_at: at }
  ])
  deltas.change(null, row())
  // two executed candidates: one fallback, in the request's hour on the nil provider
  t.same(deltas.attemptRows().map((r) => [r.provider_id, r.attempts, r.successes, r.failures, r.latency_sum_ms, r.fallbacks]),
    [[NIL, '0', '0', '0', '0', '1'], [PROVIDER, '1', '1', '0', '500', '0'], ['44444444-4444-4444-4444-444444444444', '1', '0', '1', '300', '0']])
})

t.test('one batch across quarters, hours and days (a batch reuses each quarter-hour\'s buckets): each row in its own', async (t) => {
  const deltas = new RollupDeltas()
  const times = ['2026-03-04T23:59:59.999Z', '2026-03-05T00:00:00.000Z', '2026-03-05T00:14:59.999Z', '2026-03-05T00:15:00.000Z', '2026-03-04T23:45:00.000Z', '1969-12-31T23:59:59.999Z']
  times.forEach((at, i) => deltas.change(null, row({ requestId: `r${i}`, createdAt: new Date(at) })))
  t.same(deltas.rowsOf('usage_quarter_hourly_global').map((r) => [r.bucket, r.requests]), [
    ['1969-12-31T23:45:00.000Z', '1'], ['2026-03-04T23:45:00.000Z', '2'], ['2026-03-05T00:00:00.000Z', '2'], ['2026-03-05T00:15:00.000Z', '1']
  ])
  t.same(deltas.rowsOf('usage_hourly').map((r) => [r.bucket, r.requests]), [
    ['1969-12-31T23:00:00.000Z', '1'], ['2026-03-04T23:00:00.000Z', '2'], ['2026-03-05T00:00:00.000Z', '3']
  ])
  t.same(deltas.rowsOf('usage_daily_user').map((r) => [r.day, r.requests]), [['1969-12-31', '1'], ['2026-03-04', '2'], ['2026-03-05', '3']])
})

t.test('provider attempts: apart in each quarter-hour, summed in the hour, the fallback in its request\'s quarter', async (t) => {
  const deltas = new RollupDeltas()
  deltas.sent([
    { request_id: 'f', provider_id: PROVIDER, status: 'failed', latency_ms: 100, created_at: new Date('2026-03-04T05:44:59.999Z') },
    { request_id: 'f', provider_id: PROVIDER, status: 'success', latency_ms: 200, created_at: new Date('2026-03-04T05:44:59.999Z') }
  ])
  deltas.change(null, row({ requestId: 'f', createdAt: new Date('2026-03-04T05:44:59.999Z') }))
  deltas.change(null, row({ requestId: 'a', createdAt: new Date('2026-03-04T05:00:00.000Z'), responseTimeMs: 10 }))
  deltas.change(null, row({ requestId: 'b', createdAt: new Date('2026-03-04T05:45:00.000Z'), status: 'failed', responseTimeMs: null }))
  deltas.change(null, row({ requestId: 'c', createdAt: new Date('1969-12-31T23:59:59.999Z'), responseTimeMs: 7 }))
  const shape = (r: Record<string, string>) => [r.bucket, r.provider_id, r.attempts, r.successes, r.failures, r.latency_sum_ms, r.latency_count, r.fallbacks]
  t.same(deltas.attemptRows('quarter').map(shape), [
    ['1969-12-31T23:45:00.000Z', PROVIDER, '1', '1', '0', '7', '1', '0'],
    ['2026-03-04T05:00:00.000Z', PROVIDER, '1', '1', '0', '10', '1', '0'],
    ['2026-03-04T05:30:00.000Z', NIL, '0', '0', '0', '0', '0', '1'],
    ['2026-03-04T05:30:00.000Z', PROVIDER, '2', '1', '1', '300', '2', '0'],
    ['2026-03-04T05:45:00.000Z', PROVIDER, '1', '0', '1', '0', '0', '0']
  ], 'per quarter-hour: the failed one without a latency counts no latency; the candidates are request f\'s attempts')
  t.same(deltas.attemptRows('hour').map(shape), [
    ['1969-12-31T23:00:00.000Z', PROVIDER, '1', '1', '0', '7', '1', '0'],
    ['2026-03-04T05:00:00.000Z', NIL, '0', '0', '0', '0', '0', '1'],
    ['2026-03-04T05:00:00.000Z', PROVIDER, '4', '2', '2', '310', '3', '0']
  ], 'per hour: the quarter-hours summed')
})
