// Usage metrics move when ingestion commits: each finished request once, by model and
// provider (bounded: unpriced models are "other", no provider is "none"), its tokens by
// kind and its cost in USD; a resent event moves nothing, and a late completion after
// the timeout sweep adds only what it brings. Expected values are computed by hand.
import t, { type Test } from 'tap'
import { sweepStale } from '../../src/modules/usage/active.js'
import { gateway } from '../modules/gateway/fixtures.js'
import { sample } from './metrics-exposition.js'

/** A gateway with provider alpha, model m at $3 / $15 per million tokens (a cache read a tenth of the input price, $0.3), and a key. */
async function priced (t: Test) {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const scrape = async () => (await g.app.inject({ method: 'GET', url: '/metrics' })).body
  return { g, alpha, key, scrape }
}

t.test('usage counters: requests, tokens by kind and cost by model and provider, once per finished request', async (t) => {
  const { g, alpha, key, scrape } = await priced(t)
  const complete = (requestId: string, more: object) => ({ type: 'complete', request_id: requestId, api_key_id: key.id, model: 'm', provider_id: alpha.id, status: 'completed', ...more })
  const m = { model: 'm', provider: 'alpha', status: 'completed' }

  t.equal(sample(await scrape(), 'keymeter_usage_requests_total', m), undefined, 'no series before any usage')

  // a: 1000 × 3 000 + 100 × 15 000 + 2000 × 300 = 5 100 000 nano-USD; b: unpriced, no provider, failed
  const first = [
    complete('a', { input_tokens: 1000, output_tokens: 100, cache_read_input_tokens: 2000 }),
    { type: 'complete', request_id: 'b', api_key_id: key.id, model: 'no-price', status: 'failed', input_tokens: 10, output_tokens: 0 },
    { type: 'start', request_id: 'c', api_key_id: key.id, model: 'm', provider_id: alpha.id }
  ]
  t.same((await g.send(first)).map((r) => r.outcome), ['recorded', 'recorded', 'recorded'])
  let text = await scrape()
  t.equal(sample(text, 'keymeter_usage_requests_total', m), 1, 'a counted; c only started')
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'input' }), 1000)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'output' }), 100)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'cache_read' }), 2000)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'cache_creation' }), undefined, 'no cache writes, no series')
  t.equal(sample(text, 'keymeter_usage_cost_usd_total', m), 0.0051)
  const other = { model: 'other', provider: 'none', status: 'failed' }
  t.equal(sample(text, 'keymeter_usage_requests_total', other), 1, 'an unpriced model is folded into "other", no provider is "none"')
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...other, kind: 'input' }), 10)
  t.equal(sample(text, 'keymeter_usage_cost_usd_total', other), undefined, 'it cost nothing')

  // the same batch again: every event a duplicate, nothing moves
  t.same((await g.send(first)).map((r) => r.outcome), ['duplicate', 'duplicate', 'duplicate'])
  // c completes: 2000 × 3 000 = 6 000 000, and a cache write of 1000 at 3.75 $/M = 3 750 000
  await g.send([complete('c', { input_tokens: 2000, output_tokens: 0, cache_creation_input_tokens: 1000 })])
  text = await scrape()
  t.equal(sample(text, 'keymeter_usage_requests_total', m), 2, 'a and c')
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'input' }), 3000)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...m, kind: 'cache_creation' }), 1000)
  t.equal(sample(text, 'keymeter_usage_cost_usd_total', m), 0.01485, '5 100 000 + 9 750 000 nano-USD')
  t.equal(sample(text, 'keymeter_usage_requests_total', other), 1, 'b not again')
})

t.test('a request swept as timed out counts once as failed; its late completion adds its tokens and cost, not a request', async (t) => {
  const { g, alpha, key, scrape } = await priced(t)
  await g.send([{ type: 'start', request_id: 'd', api_key_id: key.id, model: 'm', provider_id: alpha.id, created_at: '2026-01-01T00:00:00Z' }])
  t.equal(await sweepStale(g.app.ingestPg, 10, new Date(), g.app.metrics.usageCounted), 1, 'swept')
  let text = await scrape()
  t.equal(sample(text, 'keymeter_usage_requests_total', { model: 'm', provider: 'alpha', status: 'failed' }), 1, 'counted when swept')
  t.equal(sample(text, 'keymeter_usage_cost_usd_total', { model: 'm', provider: 'alpha', status: 'failed' }), undefined, 'a 504 costs nothing')

  // 1000 × 3 000 + 10 × 15 000 = 3 150 000 nano-USD
  await g.send([{ type: 'complete', request_id: 'd', status: 'completed', input_tokens: 1000, output_tokens: 10 }])
  text = await scrape()
  const completed = { model: 'm', provider: 'alpha', status: 'completed' }
  t.equal(sample(text, 'keymeter_usage_requests_total', completed), undefined, 'not a second request')
  t.equal(sample(text, 'keymeter_usage_requests_total', { ...completed, status: 'failed' }), 1)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...completed, kind: 'input' }), 1000)
  t.equal(sample(text, 'keymeter_usage_tokens_total', { ...completed, kind: 'output' }), 10)
  t.equal(sample(text, 'keymeter_usage_cost_usd_total', completed), 0.00315)
})
