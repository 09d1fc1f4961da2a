// GET /api/admin/stats/tags: finished requests by the keys' current tags over a ragged
// range (a raw edge, whole hours, whole days, whole hours, a raw edge), every expected
// figure worked out by hand from the rows below.
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'

t.test('spend by tag, from the rollups and the raw edges', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 1.5 })
  // 1 USD per 1M input tokens, 2 per 1M output: input × 1000 + output × 2000 nano-USD; actual × 1.5
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 2 }] })
  const user = await g.user()
  const kA = await g.userKey(user.id as string, { tags: ['a', 'b'] })
  const kB = await g.standaloneKey({ tags: ['b'] })
  const kC = await g.userKey(user.id as string)
  const kD = await g.userKey(user.id as string, { tags: ['c'] })
  const kE = await g.userKey(user.id as string, { tags: ['a'] })
  let n = 0
  const done = (key: Json, at: string, input: number, output: number, status = 'completed') => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, model: 'm', provider_id: provider.id, provider_api_key_id: providerKey.id,
    created_at: at, status, status_code: status === 'completed' ? 200 : 500, input_tokens: input, output_tokens: output
  })
  await g.send([
    done(kA, '2025-03-10T05:20:00Z', 1000, 0), // before the range
    done(kA, '2025-03-10T05:40:00Z', 1000, 100), // leading edge: 1,200,000 nano, 1100 tokens
    done(kB, '2025-03-10T06:10:00Z', 2000, 0), // leading hours: 2,000,000, 2000
    done(kA, '2025-03-11T12:00:00Z', 3000, 500), // whole day: 4,000,000, 3500
    done(kA, '2025-03-11T13:00:00Z', 0, 0, 'failed'), // whole day: a request, nothing spent
    done(kC, '2025-03-12T08:00:00Z', 4000, 0), // whole day: 4,000,000, 4000
    done(kE, '2025-03-12T10:00:00Z', 1000, 0), // whole day: 1,000,000, 1000
    { type: 'start', request_id: 'pending', api_key_id: kB.id, model: 'm', created_at: '2025-03-12T09:00:00Z' }, // not finished: left out
    done(kB, '2025-03-13T03:00:00Z', 1000, 1000), // trailing hours: 3,000,000, 2000
    done(kA, '2025-03-13T17:40:00Z', 500, 0), // trailing edge: 500,000, 500
    done(kC, '2025-03-13T17:50:00Z', 4000, 0), // after the range
    done(kD, '2025-03-13T18:00:00Z', 4000, 0) // after the range: tag c has nothing in it
  ])
  const url = `/api/admin/stats/tags?start_date=${encodeURIComponent('2025-03-10T05:30:00Z')}&end_date=${encodeURIComponent('2025-03-13T17:45:00Z')}`
  const get = async () => {
    const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
    t.equal(res.statusCode, 200, res.body)
    return res.json()
  }
  // kA: 4 requests, 5100 tokens, 5,700,000 nano; kB: 2, 4000, 5,000,000; kC: 1, 4000, 4,000,000; kE: 1, 1000, 1,000,000
  t.same(await get(), {
    items: [
      { tag: 'b', requests: 6, tokens: 9100, cost: 0.0107, actual_cost: 0.01605, keys_count: 2 },
      { tag: 'a', requests: 5, tokens: 6100, cost: 0.0067, actual_cost: 0.01005, keys_count: 2 },
      { tag: null, requests: 1, tokens: 4000, cost: 0.004, actual_cost: 0.006, keys_count: 1 }
    ],
    start_date: '2025-03-10T05:30:00.000Z',
    end_date: '2025-03-13T17:45:00.000Z',
    timezone: g.app.config.APP_TIMEZONE
  }, 'a key with two tags counts in both; a key without under null')

  // the current tags: kE deleted (its usage keeps its history without it), kC tagged now
  const deleted = await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${kE.id as string}`, headers: g.admin.headers })
  t.equal(deleted.statusCode, 200)
  const tagged = await g.app.inject({ method: 'PUT', url: `/api/admin/api-keys/${kC.id as string}`, headers: g.admin.headers, payload: { tags: ['c'] } })
  t.equal(tagged.statusCode, 200)
  t.same((await get()).items, [
    { tag: 'b', requests: 6, tokens: 9100, cost: 0.0107, actual_cost: 0.01605, keys_count: 2 },
    { tag: 'a', requests: 4, tokens: 5100, cost: 0.0057, actual_cost: 0.00855, keys_count: 1 },
    { tag: 'c', requests: 1, tokens: 4000, cost: 0.004, actual_cost: 0.006, keys_count: 1 },
    { tag: null, requests: 1, tokens: 1000, cost: 0.001, actual_cost: 0.0015, keys_count: 0 }
  ], 'a deleted key\'s usage under null, not counted as a key')

  const empty = await g.app.inject({ method: 'GET', url: '/api/admin/stats/tags?start_date=2024-01-01&end_date=2024-01-31', headers: g.admin.headers })
  t.same(empty.json().items, [])
  for (const bad of ['preset=today&start_date=2025-01-01', 'start_date=2024-01-01&end_date=2025-06-01', 'preset=someday', 'timezone=Mars/Base']) {
    t.equal((await g.app.inject({ method: 'GET', url: `/api/admin/stats/tags?${bad}`, headers: g.admin.headers })).statusCode, 400, bad)
  }
})
