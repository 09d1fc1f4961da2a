// The providers' monthly_used changes a batch makes (RollupDeltas.providerMonthRows),
// without a database: each provider's change per UTC day with a change, in id and day
// order (the statement cuts them into the provider's quota periods: reset-day.test.ts).
import t from 'tap'
import { RollupDeltas, type RollupSource } from '../../../src/modules/accounting/rollups.js'

const A = 'aaaaaaaa-0000-4000-8000-000000000000'
const B = 'bbbbbbbb-0000-4000-8000-000000000000'
const C = 'cccccccc-0000-4000-8000-000000000000'

const row = (overrides: Partial<RollupSource>): RollupSource => ({
  requestId: 'r', status: 'completed', createdAt: new Date('2026-12-01T00:00:00.000Z'), userId: null, apiKeyId: null, providerId: A,
  model: 'm', apiFormat: null, inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheReadTokens: 0, totalTokens: 0,
  cacheCreationCost: 0n, cacheReadCost: 0n, totalCost: 1n, actualTotalCost: 0n, responseTimeMs: null,
  cacheCreation5m: 0, cacheCreation1h: 0, firstByteTimeMs: null, ...overrides
})

t.test('the actual cost by UTC day; days netting to nothing are left out; id order', async (t) => {
  const deltas = new RollupDeltas()
  // B: November's last millisecond, December's first and last
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-11-30T23:59:59.999Z'), actualTotalCost: 500n }))
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-12-01T00:00:00.000Z'), actualTotalCost: 300n }))
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-12-01T23:59:59.999Z'), actualTotalCost: 1n }))
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-12-31T23:59:59.999Z'), actualTotalCost: 200n }))
  // A: a completion replacing its timed-out row, 0 → 700
  deltas.change(row({ status: 'failed', actualTotalCost: 0n }), row({ actualTotalCost: 700n }))
  // C: December 1st nets to nothing (a row replaced by an equal one); its November change stands
  deltas.change(row({ providerId: C, actualTotalCost: 40n }), row({ providerId: C, actualTotalCost: 40n }))
  deltas.change(null, row({ providerId: C, createdAt: new Date('2026-11-15T00:00:00.000Z'), actualTotalCost: 9n }))
  // unfinished rows, rows without a provider and a free tier's zero cost change nothing
  deltas.change(null, row({ status: 'pending', actualTotalCost: 1_000n }))
  deltas.change(null, row({ providerId: null, actualTotalCost: 1_000n }))
  t.same(deltas.providerMonthRows(), [
    { id: A, day: '2026-12-01', cost: '700' },
    { id: B, day: '2026-11-30', cost: '500' },
    { id: B, day: '2026-12-01', cost: '301' },
    { id: B, day: '2026-12-31', cost: '200' },
    { id: C, day: '2026-11-15', cost: '9' }
  ])
})

t.test('a batch with no change of cost writes no provider', async (t) => {
  const deltas = new RollupDeltas()
  deltas.change(null, row({ actualTotalCost: 0n }))
  t.same(deltas.providerMonthRows(), [])
})
