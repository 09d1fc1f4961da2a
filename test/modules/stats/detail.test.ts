// GET /api/admin/usage/:usage_id: the full record, its prices and tier, bodies and
// candidates; 404 for an unknown id, 400 for a malformed one.
import t from 'tap'
import { gateway, UNKNOWN_UUID } from '../gateway/fixtures.js'

t.test('detail: prices, tiered_pricing, costs, bodies, candidates', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 1.5 })
  const endpoint = await g.endpoint(provider.id, 'claude:messages')
  const backup = await g.provider('beta')
  // tier 1 up to 1000 tokens of context, tier 2 beyond: USD 3 / 15 and 6 / 22.5 per 1M
  const price = await g.price({ model: 'claude-x', tiers: [{ up_to: 1000, input: 3, output: 15 }, { up_to: null, input: 6, output: 22.5 }], price_per_request_usd: 0.002 })
  const user = await g.user({ username: 'ann', email: 'ann@example.com' })
  const key = await g.userKey(user.id, { name: 'ann-main' })
  const [priced, unpriced] = await g.send([
    {
      type: 'complete', request_id: 'priced', api_key_id: key.id, model: 'claude-x', api_format: 'claude:messages', is_stream: true,
      provider_api_key_id: providerKey.id, provider_endpoint_id: endpoint.id, created_at: '2025-03-10T08:00:00Z', finished_at: '2025-03-10T08:00:02Z',
      status: 'completed', status_code: 200, target_model: 'claude-x-2025',
      // context 800 + 300 + 100 + 200 = 1400 > 1000: tier 2
      input_tokens: 800, output_tokens: 1000, cache_creation_5m_input_tokens: 300, cache_creation_1h_input_tokens: 100, cache_read_input_tokens: 200,
      response_time_ms: 2000, first_byte_time_ms: 300,
      request_headers: { 'content-type': 'application/json' }, request_body: { messages: [{ role: 'user', content: 'hi' }] },
      response_headers: { 'x-request-id': 'up-1' }, response_body: { content: 'hello' }, metadata: { client: 'cli' },
      candidates: [
        { candidate_index: 0, provider_id: backup.id, status: 'failed', status_code: 529, error_type: 'overloaded', latency_ms: 40 },
        { candidate_index: 1, provider_id: provider.id, provider_endpoint_id: endpoint.id, provider_api_key_id: providerKey.id, status: 'success', latency_ms: 1900 }
      ]
    },
    { type: 'complete', request_id: 'unpriced', api_key_id: key.id, model: 'mystery', created_at: '2025-03-10T09:00:00Z', status: 'failed', status_code: 500, error_message: 'boom', input_tokens: 5, output_tokens: 0 }
  ])
  const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'priced' } })
  const get = (id: string) => g.app.inject({ method: 'GET', url: `/api/admin/usage/${id}`, headers: g.admin.headers })

  const res = await get(row.id)
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, {
    id: row.id, request_id: 'priced', user_id: user.id, username: 'ann', user: { id: user.id, username: 'ann', email: 'ann@example.com' },
    api_key: { id: key.id, name: 'ann-main', display: key.key_display },
    provider_id: provider.id, provider: 'alpha', provider_endpoint_id: endpoint.id, provider_api_key_id: providerKey.id,
    model: 'claude-x', target_model: 'claude-x-2025', api_format: 'claude:messages', is_stream: true, status: 'completed', status_code: 200,
    input_tokens: 800, output_tokens: 1000, cache_creation_input_tokens: 400, cache_creation_5m_input_tokens: 300, cache_creation_1h_input_tokens: 100,
    cache_read_input_tokens: 200, total_tokens: 2400,
    // tier 2 unit prices: input 6, output 22.5, 5m write 7.5, 1h write 12, read 0.6 (USD per 1M)
    input_price_per_1m: 6, output_price_per_1m: 22.5, cache_write_5m_price_per_1m: 7.5, cache_write_1h_price_per_1m: 12, cache_read_price_per_1m: 0.6,
    price_per_request: 0.002, rate_multiplier: 1.5, pricing_source: 'model_price',
    // 800 × 6 = 4800; 1000 × 22.5 = 22500; 300 × 7.5 + 100 × 12 = 3450; 200 × 0.6 = 120 (µUSD); + 2000 µUSD per request
    input_cost: 0.0048, output_cost: 0.0225, cache_creation_cost: 0.00345, cache_read_cost: 0.00012, request_cost: 0.002, total_cost: 0.03287, cost: 0.03287,
    actual_input_cost: 0.0072, actual_output_cost: 0.03375, actual_cache_creation_cost: 0.005175, actual_cache_read_cost: 0.00018, actual_request_cost: 0.003,
    actual_total_cost: 0.049305, actual_cost: 0.049305,
    response_time_ms: 2000, first_byte_time_ms: 300, created_at: '2025-03-10T08:00:00.000Z', finished_at: '2025-03-10T08:00:02.000Z',
    request_headers: { 'content-type': 'application/json' }, response_headers: { 'x-request-id': 'up-1' },
    request_body: { messages: [{ role: 'user', content: 'hi' }] }, response_body: { content: 'hello' }, metadata: { client: 'cli' },
    has_fallback: true
  })
  t.equal(body.total_cost, priced!.cost_usd, 'the cost ingestion reported')
  // each tier in keymeter's names and, beside them, Aether's (AETHER.md §5.1: its drawer reads *_price_per_1m unguarded)
  const tier1 = {
    up_to: 1000, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3,
    input_price_per_1m: 3, output_price_per_1m: 15, cache_creation_price_per_1m: 3.75, cache_read_price_per_1m: 0.3, cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 6 }]
  }
  const tier2 = {
    up_to: null, input: 6, output: 22.5, cache_write_5m: 7.5, cache_write_1h: 12, cache_read: 0.6,
    input_price_per_1m: 6, output_price_per_1m: 22.5, cache_creation_price_per_1m: 7.5, cache_read_price_per_1m: 0.6, cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 12 }]
  }
  t.same(body.tiered_pricing, { total_input_context: 1400, tier_index: 1, tier_count: 2, current_tier: tier2, tiers: [tier1, tier2], source: 'global', model_price_id: price.id })
  t.equal(body.cache_creation_price_per_1m, 7.5, 'writes of both lengths: the 5-minute price')
  t.match(body.candidates, [
    { candidate_index: 0, retry_index: 0, provider_id: backup.id, provider: 'beta', status: 'failed', status_code: 529, error_type: 'overloaded', latency_ms: 40 },
    { candidate_index: 1, retry_index: 0, provider_id: provider.id, provider: 'alpha', provider_endpoint_id: endpoint.id, status: 'success', latency_ms: 1900 }
  ])

  const other = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'unpriced' } })
  t.equal(unpriced!.outcome, 'recorded')
  t.match((await get(other.id)).json(), {
    status: 'failed', error_message: 'boom', pricing_source: 'unpriced', tiered_pricing: null, input_price_per_1m: null, price_per_request: null,
    total_cost: 0, provider: null, api_format: null, request_headers: null, request_body: null, response_headers: null, response_body: null,
    metadata: null, candidates: [], has_fallback: false, cache_creation_price_per_1m: null
  })

  const unknown = await get(UNKNOWN_UUID)
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json(), { error: { type: 'not_found' } })
  const malformed = await get('not-a-uuid')
  t.equal(malformed.statusCode, 400)
  t.match(malformed.json(), { error: { type: 'validation_error', field: 'params.usage_id' } })
  const active = await get('active')
  t.equal(active.statusCode, 200, '/admin/usage/active is not shadowed')
  t.ok(Array.isArray(active.json().requests))
})
