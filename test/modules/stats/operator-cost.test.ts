// The operator's cost (actual_*, the provider key's rate_multiplier, name and id, the
// savings against it) is the admins' to see: a regular user and a key holder find none
// of it anywhere in any answer about their usage, with a provider key at rate 1.5 so the
// values would differ; admins still read it, right, on the admin paths and on their own.
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'

/** The operator's fields, by name */
const OPERATOR = /(^|_)actual(_|$)|^rate_multiplier$|^api_key_name$|^provider_api_key_id$|^cost_savings$/

/** Every key of the JSON at any depth, with its path */
function keysOf (value: unknown, at = '$'): string[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => keysOf(item, `${at}[${i}]`))
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, inner]) => [`${at}.${key}`, ...keysOf(inner, `${at}.${key}`)])
}
const operatorKeys = (value: unknown) => keysOf(value).filter((path) => OPERATOR.test(path.slice(path.lastIndexOf('.') + 1)))

t.test('a regular user and a key holder see none of the operator\'s cost; admins see it', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 1.5 })
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id, { name: 'ann-main' })
  const bobKey = await g.userKey(bob.id)
  const adminKey = await g.userKey(g.admin.id)
  const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString()
  const done = (id: string, keyId: string, minutesAgo: number) => ({
    type: 'complete', request_id: id, api_key_id: keyId, model: 'claude-x', provider_id: provider.id, provider_api_key_id: providerKey.id,
    created_at: at(minutesAgo), status: 'completed', status_code: 200, input_tokens: 2000, output_tokens: 0, cache_read_input_tokens: 0, response_time_ms: 1000,
    candidates: [{ candidate_index: 0, provider_id: provider.id, provider_api_key_id: providerKey.id, status: 'success', latency_ms: 900 }]
  })
  await g.send([
    done('a1', annKey.id, 20), done('a2', annKey.id, 10), done('b1', bobKey.id, 15), done('m1', adminKey.id, 5),
    { type: 'start', request_id: 'a-live', api_key_id: annKey.id, model: 'claude-x', provider_id: provider.id, provider_api_key_id: providerKey.id, created_at: at(1) }
  ])
  const ids = Object.fromEntries((await g.app.prisma.usage.findMany({ select: { id: true, requestId: true } })).map((r) => [r.requestId, r.id]))
  const get = async (url: string, headers: Record<string, string>) => {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, `${url} → 200 ${res.statusCode === 200 ? '' : res.body}`)
    return res.json() as Json
  }
  const keyHolder = { authorization: `Bearer ${annKey.key as string}` }
  const post = async (url: string, payload: object) => {
    const res = await g.app.inject({ method: 'POST', url, headers: keyHolder, payload })
    t.equal(res.statusCode, 200, url)
    return res.json() as Json
  }

  // by hand: 2000 input tokens at USD 3 per 1M = 0.006 a request; × 1.5 = 0.009 for the operator
  const userPaths = ['/api/users/me/usage', '/api/users/me/usage/stats', '/api/users/me/usage/records', `/api/users/me/usage/${ids.a1!}`,
    '/api/users/me/usage/active', `/api/users/me/usage/active?ids=${ids['a-live']!},${ids.a1!}`, '/api/dashboard/stats', '/api/dashboard/daily-stats',
    '/api/users/me/usage/cache-affinity/ttl-analysis', '/api/users/me/usage/cache-affinity/hit-analysis', '/api/users/me/usage/cache-affinity/interval-timeline',
    '/api/users/me/usage/interval-timeline', '/api/users/me/api-keys', `/api/users/me/api-keys/${annKey.id as string}`, '/api/users/me']
  const seen: Record<string, Json> = {}
  for (const url of userPaths) {
    seen[url] = await get(url, ann.headers)
    t.same(operatorKeys(seen[url]), [], `${url}: nothing of the operator's for a user`)
  }
  for (const [url, body] of [['/api/key-stats/user-stats', {}], ['/api/key-stats/user-model-stats', { period: 'daily' }]] as const) {
    t.same(operatorKeys(await post(url, body)), [], `${url}: nothing of the operator's for a key holder`)
  }
  t.same(operatorKeys(await get('/api/key-stats/usage-details', keyHolder)), [], 'usage-details: nothing of the operator\'s')

  // what the user does see: her own cost
  t.match(seen['/api/users/me/usage/stats'], { total_requests: 2, total_cost: 0.012 }, 'her cost, not the operator\'s')
  t.same(seen['/api/users/me/usage/records']!.records.map((r: Json) => [r.request_id, r.cost]), [['a-live', 0], ['a2', 0.006], ['a1', 0.006]], 'her records and their cost')
  t.match(seen[`/api/users/me/usage/${ids.a1!}`], { request_id: 'a1', cost: 0.006, total_cost: 0.006, input_cost: 0.006, input_price_per_1m: 3, candidates: [{ status: 'success' }] })
  t.match(seen['/api/users/me/usage'], { total_cost: 0.012, summary_by_model: [{ model: 'claude-x', total_cost_usd: 0.012 }] })
  t.same(seen['/api/users/me/usage/active']!.requests.map((r: Json) => r.request_id), ['a-live'])

  // admins: the admin paths, everyone's
  const records = await get('/api/admin/usage/records', g.admin.headers)
  t.same(records.records.filter((r: Json) => r.status === 'completed').map((r: Json) => [r.request_id, r.cost, r.actual_cost, r.rate_multiplier, r.api_key_name]),
    [['m1', 0.006, 0.009, 1.5, providerKey.name], ['a2', 0.006, 0.009, 1.5, providerKey.name], ['b1', 0.006, 0.009, 1.5, providerKey.name], ['a1', 0.006, 0.009, 1.5, providerKey.name]],
    'the records carry the operator\'s cost, multiplier and key')
  t.match(await get('/api/admin/usage/stats', g.admin.headers), { total_cost: 0.024, total_actual_cost: 0.036 })
  t.match(await get(`/api/admin/usage/${ids.a1!}`, g.admin.headers), {
    actual_total_cost: 0.009, actual_input_cost: 0.009, rate_multiplier: 1.5, api_key_name: providerKey.name, provider_api_key_id: providerKey.id,
    candidates: [{ provider_api_key_id: providerKey.id }]
  })
  t.match(await get('/api/admin/usage/active', g.admin.headers), { requests: [{ request_id: 'a-live', actual_cost: 0 }] })
  const heatmap = await get('/api/admin/usage/heatmap', g.admin.headers)
  t.equal(Math.round(heatmap.days.reduce((sum: number, d: Json) => sum + d.actual_total_cost, 0) * 1e6), 36_000, 'the heatmap\'s days carry it')
  const home = await get('/api/dashboard/stats', g.admin.headers)
  t.match(home, { cost_stats: { total_cost: 0.024, total_actual_cost: 0.036, cost_savings: -0.012 }, today: { actual_cost: Number } }, 'the admin\'s home page')

  // admins on their own paths: their own requests' operator cost
  t.match(await get('/api/users/me/usage', g.admin.headers), { total_actual_cost: 0.009, summary_by_model: [{ actual_total_cost_usd: 0.009 }], records: [{ request_id: 'm1', actual_cost: 0.009 }] })
  const ownStats = await get('/api/users/me/usage/stats', g.admin.headers)
  t.match(ownStats, { total_cost: 0.006, total_actual_cost: 0.009 })
  t.equal(ownStats.activity_heatmap.days.reduce((sum: number, d: Json) => sum + d.actual_total_cost, 0), 0.009, 'and in their heatmap')
  t.match(await get('/api/users/me/usage/records', g.admin.headers), { records: [{ request_id: 'm1', actual_cost: 0.009, rate_multiplier: 1.5, api_key_name: providerKey.name }] })
  t.match(await get(`/api/users/me/usage/${ids.m1!}`, g.admin.headers), { actual_total_cost: 0.009, rate_multiplier: 1.5, provider_api_key_id: providerKey.id })

  // the OpenAPI document says so: on a user path the operator's fields are optional, on the admin's required
  const doc = (await g.app.inject({ method: 'GET', url: '/openapi.json' })).json()
  const okSchema = (path: string) => doc.paths[path].get.responses['200'].content['application/json'].schema
  t.notOk(okSchema('/api/users/me/usage/records').properties.records.items.required.includes('actual_cost'), 'own records: actual_cost optional')
  t.notOk(okSchema('/api/users/me/usage/{usage_id}').required.includes('rate_multiplier'), 'own detail: rate_multiplier optional')
  t.notOk(okSchema('/api/users/me/usage/stats').required.includes('total_actual_cost'), 'own stats: total_actual_cost optional')
  // the admin's record is the shared UsageRecord component
  const adminRecord = okSchema('/api/admin/usage/records').properties.records.items
  t.equal(adminRecord.$ref, '#/components/schemas/UsageRecord')
  t.ok(doc.components.schemas.UsageRecord.required.includes('actual_cost'), 'admin records: actual_cost required')
})
