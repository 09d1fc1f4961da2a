// GET /api/admin/models/global (Aether's models page, AETHER.md §12): one entry per model
// with a price in effect, its global price in Aether's tier shape, its providers and its
// all-time finished requests. Expected values are written by hand from the prices and
// requests each test makes.
import t from 'tap'
import { signIn } from '../helper.js'
import { gateway, LONG_AGO } from './gateway/fixtures.js'

const DAY_MS = 86_400_000
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS).toISOString()

t.test('models/global: the catalogue of priced models, with prices, providers and usage', async (t) => {
  const g = await gateway(t)
  const [alpha, beta, gamma, delta] = [await g.provider('alpha'), await g.provider('beta'), await g.provider('gamma'), await g.provider('delta')]
  const user = await g.user()
  const key = await g.userKey(user.id)

  // claude-x: two global versions, the later in two tiers with its own cache prices; alpha and beta price it too
  const v1 = await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const v2 = await g.price({
    model: 'claude-x',
    tiers: [{ up_to: 200_000, input: 2.5, output: 12, cache_write_5m: 3, cache_write_1h: 5, cache_read: 0.25 }, { up_to: null, input: 5, output: 20 }],
    price_per_request_usd: 0.002,
    effective_from: '2021-06-01T00:00:00Z'
  })
  await g.price({ model: 'claude-x', provider_id: alpha.id, tiers: [{ up_to: null, input: 2, output: 10 }] })
  await g.price({ model: 'claude-x', provider_id: beta.id, tiers: [{ up_to: null, input: 1, output: 1 }], effective_from: '2022-02-02T00:00:00Z' })
  // gpt_y: only beta prices it (no global price); gptzy and 50%-off try the LIKE metacharacters; a future price is not in effect
  const gptY = await g.price({ model: 'gpt_y', provider_id: beta.id, tiers: [{ up_to: null, input: 1, output: 2 }] })
  await g.price({ model: 'gptzy', tiers: [{ up_to: null, input: 1, output: 2 }] })
  await g.price({ model: '50%-off', tiers: [{ up_to: null, input: 1, output: 2 }] })
  await g.price({ model: 'future-only', tiers: [{ up_to: null, input: 1, output: 2 }], effective_from: '2999-01-01T00:00:00Z' })
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 9, output: 9 }], effective_from: '2999-01-01T00:00:00Z' })

  const done = (id: string, model: string, providerId: string | null, createdAt: string, status = 'completed') =>
    ({ type: 'complete', request_id: id, api_key_id: key.id, model, provider_id: providerId, created_at: createdAt, status, input_tokens: 10, output_tokens: 5 })
  const results = await g.send([
    // claude-x: 3 finished through alpha lately, 1 through delta 60 days ago, 1 that reached no provider, 1 still in flight
    done('c1', 'claude-x', alpha.id, daysAgo(1)),
    done('c2', 'claude-x', alpha.id, daysAgo(2), 'failed'),
    done('c3', 'claude-x', alpha.id, daysAgo(3), 'cancelled'),
    done('c4', 'claude-x', delta.id, daysAgo(60)),
    done('c5', 'claude-x', null, daysAgo(1), 'failed'),
    { type: 'start', request_id: 'c6', api_key_id: key.id, model: 'claude-x', provider_id: alpha.id, created_at: daysAgo(0) },
    // gpt_y: 2 through gamma lately (gamma has no price for it)
    done('g1', 'gpt_y', gamma.id, daysAgo(5)),
    done('g2', 'gpt_y', gamma.id, daysAgo(6)),
    // a model without a price is not in the catalogue
    done('u1', 'unpriced', alpha.id, daysAgo(1))
  ])
  t.ok(results.every((r) => r.outcome === 'recorded'), 'every event recorded')

  const get = (query = '', headers = g.admin.headers) => g.app.inject({ method: 'GET', url: `/api/admin/models/global${query}`, headers })
  const res = await get()
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.total, 4)
  t.same(body.models.map((m: { name: string }) => m.name), ['50%-off', 'claude-x', 'gpt_y', 'gptzy'], 'by name')

  t.same(body.models[1], {
    id: v2.id,
    name: 'claude-x',
    display_name: 'claude-x',
    description: null,
    is_active: true,
    default_tiered_pricing: {
      tiers: [
        {
          up_to: 200_000, input: 2.5, output: 12, cache_write_5m: 3, cache_write_1h: 5, cache_read: 0.25,
          input_price_per_1m: 2.5, output_price_per_1m: 12, cache_creation_price_per_1m: 3, cache_read_price_per_1m: 0.25,
          cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 5 }]
        },
        {
          // the defaults: 5 × 1.25, 5 × 2, 5 × 0.1
          up_to: null, input: 5, output: 20, cache_write_5m: 6.25, cache_write_1h: 10, cache_read: 0.5,
          input_price_per_1m: 5, output_price_per_1m: 20, cache_creation_price_per_1m: 6.25, cache_read_price_per_1m: 0.5,
          cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: 10 }]
        }
      ]
    },
    default_price_per_request: 0.002,
    // alpha (priced, served) and beta (priced); delta served it 60 days ago only
    provider_count: 2,
    // c1..c5: the in-flight c6 is not finished
    usage_count: 5,
    config: null,
    supported_capabilities: null,
    created_at: new Date(LONG_AGO).toISOString(),
    updated_at: '2022-02-02T00:00:00.000Z'
  })
  t.not(body.models[1].id, v1.id, 'the id is the global version in effect')
  t.same(body.models[2], {
    id: gptY.id,
    name: 'gpt_y',
    display_name: 'gpt_y',
    description: null,
    is_active: true,
    default_tiered_pricing: null,
    default_price_per_request: null,
    // beta prices it, gamma served it
    provider_count: 2,
    usage_count: 2,
    config: null,
    supported_capabilities: null,
    created_at: new Date(LONG_AGO).toISOString(),
    updated_at: new Date(LONG_AGO).toISOString()
  }, 'a model only providers price: no default pricing, the provider price\'s id')
  t.match(body.models[3], { name: 'gptzy', provider_count: 0, usage_count: 0, default_tiered_pricing: { tiers: [{ input_price_per_1m: 1, output_price_per_1m: 2 }] } })

  await t.test('paging, search (case-insensitive, LIKE metacharacters literal), is_active, unknown parameters', async (t) => {
    const names = async (query: string) => {
      const page = await get(query)
      t.equal(page.statusCode, 200, query)
      return { names: page.json().models.map((m: { name: string }) => m.name), total: page.json().total }
    }
    t.same(await names('?skip=1&limit=2'), { names: ['claude-x', 'gpt_y'], total: 4 })
    t.same(await names('?skip=10'), { names: [], total: 4 })
    t.same(await names('?search=CLAUDE'), { names: ['claude-x'], total: 1 })
    t.same(await names('?search=gpt_'), { names: ['gpt_y'], total: 1 }, '_ is not a wildcard')
    t.same(await names(`?search=${encodeURIComponent('%')}`), { names: ['50%-off'], total: 1 }, '% is not a wildcard')
    t.same(await names(`?search=${encodeURIComponent('\\')}`), { names: [], total: 0 }, 'a backslash is literal')
    t.same(await names('?search=future'), { names: [], total: 0 }, 'a price not yet in effect')
    t.same(await names('?search='), { names: ['50%-off', 'claude-x', 'gpt_y', 'gptzy'], total: 4 })
    t.same(await names('?limit=1000&is_active=true'), { names: ['50%-off', 'claude-x', 'gpt_y', 'gptzy'], total: 4 }, 'the forms\' query')
    t.same(await names('?is_active=false'), { names: [], total: 0 }, 'every entry is active')
    t.same(await names('?page=2&sort=name'), { names: ['50%-off', 'claude-x', 'gpt_y', 'gptzy'], total: 4 }, 'unknown parameters ignored')
  })

  await t.test('a deleted provider no longer counts; its requests still do', async (t) => {
    await g.adminCall('DELETE', `/api/admin/providers/${gamma.id}`)
    const model = (await get('?search=gpt_y')).json().models[0]
    t.match(model, { name: 'gpt_y', provider_count: 1, usage_count: 2 })
  })

  await t.test('refusals', async (t) => {
    const user = await signIn(g.app, 'user')
    const refused = async (query: string, status: number, type: string, field?: string, headers: Record<string, string> = g.admin.headers) => {
      const res = await get(query, headers as never)
      t.equal(res.statusCode, status, `${query} → ${status}`)
      t.match(res.json(), { error: { type, message: String }, request_id: String, detail: String })
      if (field !== undefined) t.equal(res.json().error.field, field)
    }
    await refused('', 401, 'unauthorized', undefined, {})
    await refused('', 403, 'forbidden', undefined, user.headers)
    await refused('?limit=0', 400, 'validation_error', 'querystring.limit')
    await refused('?limit=1001', 400, 'validation_error', 'querystring.limit')
    await refused('?skip=-1', 400, 'validation_error', 'querystring.skip')
    await refused(`?search=${'x'.repeat(201)}`, 400, 'validation_error', 'querystring.search')
    await refused('?is_active=maybe', 400, 'validation_error', 'querystring.is_active')
  })
})
