// The providers' monthly_used changes a batch makes (RollupDeltas.providerMonthRows),
// without a database: each provider's newest UTC month with a change, in id order.
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

t.test('the actual cost by UTC month; the newest month with a change wins; id order', async (t) => {
  const deltas = new RollupDeltas()
  // B: November's last millisecond and December's first: December is the newer month
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-11-30T23:59:59.999Z'), actualTotalCost: 500n }))
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-12-01T00:00:00.000Z'), actualTotalCost: 300n }))
  deltas.change(null, row({ providerId: B, createdAt: new Date('2026-12-31T23:59:59.999Z'), actualTotalCost: 200n }))
  // A: a completion replacing its timed-out row, 0 → 700
  deltas.change(row({ status: 'failed', actualTotalCost: 0n }), row({ actualTotalCost: 700n }))
  // C: December nets to nothing (a row replaced by an equal one), so its November change stands
  deltas.change(row({ providerId: C, actualTotalCost: 40n }), row({ providerId: C, actualTotalCost: 40n }))
  deltas.change(null, row({ providerId: C, createdAt: new Date('2026-11-15T00:00:00.000Z'), actualTotalCost: 9n }))
  // unfinished rows, rows without a provider and a free tier's zero cost change nothing
  deltas.change(null, row({ status: 'pending', actualTotalCost: 1_000n }))
  deltas.change(null, row({ providerId: null, actualTotalCost: 1_000n }))
  t.same(deltas.providerMonthRows(), [
    { id: A, month: '2026-12-01', cost: '700' },
    { id: B, month: '2026-12-01', cost: '500' },
    { id: C, month: '2026-11-01', cost: '9' }
  ])
})

t.test('a batch with no change of cost writes no provider', async (t) => {
  const deltas = new RollupDeltas()
  deltas.change(null, row({ actualTotalCost: 0n }))
  t.same(deltas.providerMonthRows(), [])
})
