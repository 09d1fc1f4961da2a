// /api/users/me/usage: a user sees their own rows only; another user's record is a
// 404; the admin views refuse users with 403.
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'

t.test('a user reads their own usage, and nobody else\'s', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('alpha')
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id, { name: 'ann-main' })
  const bobKey = await g.userKey(bob.id, { name: 'bob-main' })
  const now = Date.now()
  const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString()
  const request = (id: string, keyId: string, minutesAgo: number, status: string, extra: object = {}) => ({
    type: 'complete', request_id: id, api_key_id: keyId, model: 'claude-x', provider_id: provider.id, created_at: at(minutesAgo),
    status, status_code: status === 'completed' ? 200 : 500, input_tokens: 1000, output_tokens: 100, response_time_ms: 1500, ...extra
  })
  await g.send([
    request('a1', annKey.id, 90, 'completed'),
    request('a2', annKey.id, 60, 'failed', { is_stream: true }),
    { type: 'start', request_id: 'a3', api_key_id: annKey.id, model: 'claude-x', created_at: at(30) },
    request('b1', bobKey.id, 45, 'completed'),
    request('b2', bobKey.id, 20, 'completed')
  ])
  const call = (url: string, headers = ann.headers) => g.app.inject({ method: 'GET', url, headers })

  const own = await call('/api/users/me/usage/records')
  t.equal(own.statusCode, 200)
  t.same(own.json().records.map((r: { request_id: string }) => r.request_id), ['a3', 'a2', 'a1'], 'only hers, newest first')
  t.match(own.json(), { total: 3, total_is_estimate: false })
  t.same((await call('/api/users/me/usage/records?status=error')).json().records.map((r: { request_id: string }) => r.request_id), ['a2'])
  t.same((await call('/api/users/me/usage/records?search=bob')).json().records, [], 'a search does not reach other users')
  t.same((await call(`/api/users/me/usage/records?api_key_id=${bobKey.id}`)).json().records, [], 'nor does a key filter')
  t.equal((await call(`/api/users/me/usage/records?user_id=${bob.id}`)).statusCode, 400, 'no user_id filter here')

  // 1000 × 3 + 100 × 15 = 4500 µUSD a request
  const { activity_heatmap: heatmap, ...totals } = (await call('/api/users/me/usage/stats')).json()
  t.match(heatmap, { total_days: 365, max_requests: Number }, 'with her heatmap (aether-usage.test.ts checks its days)')
  t.same(totals, {
    total_requests: 2, total_tokens: 2200, total_cost: 0.009, avg_response_time: 1.5, error_count: 1, error_rate: 50,
    cache_stats: { cache_creation_tokens: 0, cache_read_tokens: 0, cache_creation_cost: 0, cache_read_cost: 0 }
  }, 'her finished requests only, without the operator\'s cost')
  t.match((await call('/api/users/me/usage/stats', bob.headers)).json(), { total_requests: 2, error_count: 0 })

  const [a1, b1] = await Promise.all(['a1', 'b1'].map((id) => g.app.prisma.usage.findFirstOrThrow({ where: { requestId: id } })))
  const mine = await call(`/api/users/me/usage/${a1!.id}`)
  t.equal(mine.statusCode, 200)
  t.match(mine.json(), { request_id: 'a1', user: { id: ann.id, username: 'ann' }, api_key: { name: 'ann-main' } })
  const theirs = await call(`/api/users/me/usage/${b1!.id}`)
  t.equal(theirs.statusCode, 404, 'another user\'s record does not exist for her')
  t.match(theirs.json(), { error: { type: 'not_found' } })
  t.equal((await call('/api/users/me/usage/nope')).statusCode, 400)

  for (const url of ['/api/admin/usage/stats', '/api/admin/usage/aggregation/stats?group_by=model', '/api/admin/usage/heatmap',
    '/api/admin/usage/records', `/api/admin/usage/${a1!.id}`]) {
    const res = await call(url)
    t.equal(res.statusCode, 403, `${url} → 403 for a user`)
    t.match(res.json(), { error: { type: 'forbidden' } })
  }
  t.equal((await g.app.inject({ method: 'GET', url: '/api/users/me/usage/stats' })).statusCode, 401, 'signed out → 401')
  await g.app.pipeline.readAuditsWritten()
  const audited = await g.app.prisma.auditLog.count({ where: { action: { startsWith: 'own_usage.' }, userId: ann.id } })
  t.ok(audited >= 8, 'every call audited')
})

t.test('heatmap and aggregation refusals', async (t) => {
  const g = await gateway(t)
  const call = (url: string) => g.app.inject({ method: 'GET', url, headers: g.admin.headers })
  const refusals = [
    '/api/admin/usage/heatmap?timezone=Mars/Olympus',
    '/api/admin/usage/aggregation/stats',
    '/api/admin/usage/aggregation/stats?group_by=key',
    '/api/admin/usage/aggregation/stats?group_by=model&limit=0',
    '/api/admin/usage/aggregation/stats?group_by=model&limit=101',
    `/api/admin/usage/stats?start_date=${encodeURIComponent('2024-01-01T00:00:00Z')}&end_date=${encodeURIComponent('2025-01-02T00:00:00Z')}`,
    `/api/admin/usage/stats?start_date=${encodeURIComponent('2025-01-02T00:00:00Z')}&end_date=${encodeURIComponent('2025-01-01T00:00:00Z')}`
  ]
  for (const url of refusals) t.equal((await call(url)).statusCode, 400, `${url} → 400`)
  const empty = (await call('/api/admin/usage/heatmap?timezone=Asia/Kolkata')).json()
  t.match(empty, { total_days: 365, max_requests: 0 })
  t.equal(empty.days.length, 365)
  t.same((await call('/api/admin/usage/aggregation/stats?group_by=provider')).json(), [])
})
