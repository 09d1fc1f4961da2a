// Issue 16, AETHER.md §5.1: the request drawer's cost card reads each tier as
// input_price_per_1m / output_price_per_1m / cache_creation_price_per_1m (5-minute) /
// cache_read_price_per_1m / cache_ttl_pricing (1-hour), and a top-level
// cache_creation_price_per_1m: the 5-minute price, or the 1-hour one when every write
// of the request was 1-hour. Same on a user's own detail; another's is a 404.
import t from 'tap'
import { signIn } from '../../helper.js'
import { gateway } from '../gateway/fixtures.js'

t.test('detail: tiers in Aether\'s names, the cache write price the request paid', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  // a provider's own price: USD 2 / 8 per 1M, writes 2.5 (5 min) and 4 (1 h), reads 0.2
  await g.price({ model: 'gpt-y', provider_id: alpha.id, tiers: [{ up_to: null, input: 2, output: 8, cache_write_5m: 2.5, cache_write_1h: 4, cache_read: 0.2 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id)
  const base = { type: 'complete', api_key_id: annKey.id, model: 'gpt-y', provider_id: alpha.id, status: 'completed', status_code: 200, input_tokens: 100, output_tokens: 10 }
  await g.send([
    { ...base, request_id: 'only-1h', created_at: '2025-03-10T08:00:00Z', cache_creation_input_tokens: 50, cache_creation_5m_input_tokens: 0, cache_creation_1h_input_tokens: 50 },
    { ...base, request_id: 'only-5m', created_at: '2025-03-10T08:01:00Z', cache_creation_input_tokens: 50, cache_creation_5m_input_tokens: 50, cache_creation_1h_input_tokens: 0 },
    { ...base, request_id: 'no-writes', created_at: '2025-03-10T08:02:00Z' }
  ])
  const idOf = async (requestId: string) => (await g.app.prisma.usage.findFirstOrThrow({ where: { requestId } })).id
  const get = (url: string, headers = g.admin.headers) => g.app.inject({ method: 'GET', url, headers })

  const tier = {
    up_to: null, input: 2, output: 8, cache_write_5m: 2.5, cache_write_1h: 4, cache_read: 0.2,
    input_price_per_1m: 2, output_price_per_1m: 8, cache_creation_price_per_1m: 2.5, cache_read_price_per_1m: 0.2, cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 4 }]
  }
  const cases: Array<[string, number]> = [['only-1h', 4], ['only-5m', 2.5], ['no-writes', 2.5]]
  for (const [requestId, writePrice] of cases) {
    const id = await idOf(requestId)
    for (const [url, headers] of [[`/api/admin/usage/${id}`, g.admin.headers], [`/api/users/me/usage/${id}`, ann.headers]] as const) {
      const res = await get(url, headers)
      t.equal(res.statusCode, 200, url)
      const body = res.json()
      t.equal(body.cache_creation_price_per_1m, writePrice, `${requestId}: the write price at the top (${url})`)
      t.match(body, { input_price_per_1m: 2, output_price_per_1m: 8, cache_read_price_per_1m: 0.2 })
      t.same(body.tiered_pricing.current_tier, tier, `${requestId}: the tier in both names`)
      t.same(body.tiered_pricing.tiers, [tier])
      t.match(body.tiered_pricing, { tier_index: 0, tier_count: 1, source: 'provider' })
    }
  }

  const onlyOneHour = await idOf('only-1h')
  t.equal((await get(`/api/users/me/usage/${onlyOneHour}`, bob.headers)).statusCode, 404, "another user's record is a 404")
  t.equal((await get(`/api/admin/usage/${onlyOneHour}`, {} as never)).statusCode, 401)
  t.equal((await get(`/api/admin/usage/${onlyOneHour}`, ann.headers)).statusCode, 403)
  t.equal((await get('/api/users/me/usage/not-a-uuid', ann.headers)).statusCode, 400)
})
