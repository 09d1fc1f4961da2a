// GET /api/admin/usage/records: every filter, every status category, literal search,
// paging bounds, the key's masked display and has_fallback.
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'
import { recordFilter, records } from '../../../src/modules/stats/service.js'

const T0 = Date.parse('2025-03-10T08:00:00Z')
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString()

t.test('records: filters, status categories, search, paging', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const a = await g.user({ username: 'ann' })
  const b = await g.user({ username: 'bob' })
  const [a1, a2, b1] = [await g.userKey(a.id, { name: 'ann-main' }), await g.userKey(a.id, { name: 'ann-ci' }), await g.userKey(b.id, { name: 'bob-main' })]
  const done = { input_tokens: 10, output_tokens: 5 }
  await g.send([
    {
      type: 'complete', request_id: 'r1', api_key_id: a1.id, model: 'gpt_4%x\\y', provider_id: alpha.id, is_stream: true, created_at: at(1), status: 'completed', status_code: 200, ...done,
      candidates: [{ candidate_index: 0, provider_id: beta.id, status: 'failed', status_code: 500 }, { candidate_index: 1, provider_id: alpha.id, status: 'success' }]
    },
    { type: 'complete', request_id: 'r2', api_key_id: a2.id, model: 'gpt14ax', provider_id: alpha.id, created_at: at(2), status: 'failed', status_code: 500, error_message: 'boom', ...done },
    { type: 'complete', request_id: 'r3', api_key_id: b1.id, model: 'claude-x', provider_id: beta.id, is_stream: true, created_at: at(3), status: 'cancelled', status_code: 499, ...done },
    { type: 'start', request_id: 'r4', api_key_id: b1.id, model: 'claude-x', is_stream: true, created_at: at(4) },
    { type: 'start', request_id: 'r5', api_key_id: a1.id, model: 'claude-x', provider_id: beta.id, created_at: at(5) },
    { type: 'stream', request_id: 'r5', first_byte_time_ms: 120 },
    {
      type: 'complete', request_id: 'r6', api_key_id: b1.id, model: 'gpt14ax', provider_id: beta.id, created_at: at(6), status: 'completed', status_code: 200, ...done,
      candidates: [{ candidate_index: 0, provider_id: alpha.id, status: 'skipped', skip_reason: 'quota' }, { candidate_index: 1, provider_id: beta.id, status: 'success' }]
    },
    { type: 'complete', request_id: 'r7', api_key_id: a2.id, model: 'claude-x', provider_id: alpha.id, created_at: at(7), status: 'completed', status_code: 200, ...done }
  ])
  const list = async (query: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/records?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200, query)
    return res.json() as { records: Json[], total: number, limit: number, offset: number, total_is_estimate: boolean }
  }
  const ids = async (query: string) => {
    const page = await list(query)
    t.equal(page.total, page.records.length, `${query}: total`)
    return page.records.map((r) => r.request_id as string)
  }

  const all = await list('')
  t.same(all.records.map((r) => r.request_id), ['r7', 'r6', 'r5', 'r4', 'r3', 'r2', 'r1'], 'newest first')
  t.match(all, { total: 7, limit: 100, offset: 0, total_is_estimate: false })

  const r1 = all.records.find((r) => r.request_id === 'r1')!
  t.match(r1, {
    user_id: a.id, username: 'ann', provider: 'alpha', model: 'gpt_4%x\\y', is_stream: true, status: 'completed', status_code: 200,
    input_tokens: 10, output_tokens: 5, total_tokens: 15, cost: 0, actual_cost: 0, has_fallback: true, created_at: at(1)
  })
  t.same(r1.api_key, { id: a1.id, name: 'ann-main', display: a1.key_display }, 'the key, with its masked display')
  t.match(r1.api_key.display, /^sk-\w{4}…\w{4}$/)
  t.same(all.records.filter((r) => r.has_fallback).map((r) => r.request_id), ['r1'], 'a skipped candidate is no fallback')
  t.match(all.records.find((r) => r.request_id === 'r4'), { provider: null, status: 'pending', first_byte_time_ms: null })

  const page = await list('limit=2&offset=2')
  t.same(page.records.map((r) => r.request_id), ['r5', 'r4'])
  t.match(page, { total: 7, limit: 2, offset: 2 })

  const filters: Array<[string, string[]]> = [
    [`start_date=${encodeURIComponent(at(2))}&end_date=${encodeURIComponent(at(5))}`, ['r4', 'r3', 'r2']],
    [`start_date=${encodeURIComponent(at(6))}`, ['r7', 'r6']],
    [`end_date=${encodeURIComponent(at(2))}`, ['r1']],
    [`user_id=${b.id}`, ['r6', 'r4', 'r3']],
    ['username=ann', ['r7', 'r5', 'r2', 'r1']],
    ['username=nobody', []],
    ['model=gpt14ax', ['r6', 'r2']],
    ['provider=beta', ['r6', 'r5', 'r3']],
    [`api_key_id=${a2.id}`, ['r7', 'r2']],
    ['status=stream', ['r4', 'r3', 'r1']],
    ['status=standard', ['r7', 'r6', 'r5', 'r2']],
    ['status=error', ['r3', 'r2']],
    ['status=pending', ['r4']],
    ['status=streaming', ['r5']],
    ['status=completed', ['r7', 'r6', 'r1']],
    ['status=failed', ['r2']],
    ['status=active', ['r5', 'r4']],
    ['model=claude-x&status=active&username=bob', ['r4']]
  ]
  for (const [query, expected] of filters) t.same(await ids(query), expected, query)

  const searches: Array<[string, string[]]> = [
    ['gpt_4%x', ['r1']], // as a LIKE pattern it would match gpt14ax too
    ['_', ['r1']],
    ['%', ['r1']],
    ['\\', ['r1']],
    ['x\\y', ['r1']],
    ['gpt14ax', ['r6', 'r2']],
    ['ALPHA', ['r7', 'r2', 'r1']], // provider, case-insensitive
    ['ann-ci', ['r7', 'r2']], // key name
    ['bob', ['r6', 'r4', 'r3']], // username (and key name)
    ['alpha gpt', ['r2', 'r1']], // every keyword must match
    ['  beta   claude  bob ', ['r3']],
    ['alpha zzz', []]
  ]
  for (const [search, expected] of searches) t.same(await ids(`search=${encodeURIComponent(search)}`), expected, `search "${search}"`)
  // a search is found through one keyword's ids (users, keys, models, providers): pages and counts through them too
  t.same(await ids(`search=${encodeURIComponent('ann alpha')}`), ['r7', 'r2', 'r1'], 'two keywords, driven by either')
  t.same((await list('search=alpha&limit=1&offset=1')).records.map((r) => r.request_id), ['r2'], 'a later page of a search')
  t.match(await list('search=alpha&limit=1&offset=1'), { total: 3, total_is_estimate: false }, 'its total, counted')
  const searchCapped = await records(g.app.pg, recordFilter({ search: 'alpha', limit: 1, offset: 0 }), 1, 0, 2)
  t.match(searchCapped, { total_is_estimate: true }, 'more matches than the cap: estimated')
  t.ok(searchCapped.total >= 3, 'never below what was counted')
  t.same(await ids(`search=alpha&username=ann`), ['r7', 'r2', 'r1'], 'with a user filter, that index drives')

  for (const query of ['limit=0', 'limit=501', 'offset=-1', 'offset=1000001', 'status=weird', 'user_id=nope', 'start_date=2025-03-10T08:00:00',
    `search=${encodeURIComponent('a b c d e f g h i j k')}`, `start_date=${encodeURIComponent(at(5))}&end_date=${encodeURIComponent(at(5))}`]) {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/records?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, `${query} → 400`)
    t.match(res.json(), { error: { type: /validation_error|invalid_input/ } })
  }
  t.same(await ids(`search=${encodeURIComponent('a b c d e f g h i j')}`), [], 'ten keywords are allowed')
  t.same((await list('limit=500&offset=1000000')).records, [], 'the bounds themselves are allowed')

  // past the exact-count cap, the total is the planner's estimate, flagged (statistics first: the estimate is the planner's)
  await g.app.pg.query('ANALYZE usage')
  const capped = await records(g.app.pg, recordFilter({ limit: 2, offset: 0 }), 2, 0, 3)
  t.equal(capped.records.length, 2)
  t.equal(capped.total_is_estimate, true)
  t.ok(capped.total >= 4, 'never below what was counted')
  const exact = await records(g.app.pg, recordFilter({ limit: 2, offset: 0, username: 'bob' }), 2, 0, 3)
  t.match(exact, { total: 3, total_is_estimate: false }, 'at the cap, still exact')
  t.match(await records(g.app.pg, recordFilter({ limit: 2, offset: 0 }), 2, 0, 0), { total: 7, total_is_estimate: true }, 'far beyond the cap: the estimate alone, no count')

  // a deleted provider's rows keep its name (provider_id set NULL): still found by it
  await g.adminCall('DELETE', `/api/admin/providers/${beta.id as string}`)
  t.same(await ids('search=beta'), ['r6', 'r5', 'r3'], "search by a deleted provider's stored name")
  t.same(await ids(`search=${encodeURIComponent('beta bob')}`), ['r6', 'r3'], '… with another keyword')
})
