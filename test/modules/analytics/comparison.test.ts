// GET /api/admin/stats/comparison and /api/users/me/stats/comparison: both periods'
// totals from the raw rows inserted here, counted by hand, and the change percentages.
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'

t.test('previous period and a year ago, by hand', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const row = (id: string, createdAt: string, input: number, status = 'completed', responseTime: number | null = 100) => ({
    type: 'complete', request_id: id, api_key_id: key.id, model: 'm', created_at: createdAt, status, input_tokens: input, output_tokens: 0, response_time_ms: responseTime
  })
  await g.send([
    // the range: Berlin 2026-03-29 (23 hours: 28T23:00Z … 29T22:00Z)
    row('c1', '2026-03-28T23:00:00.000Z', 100), row('c2', '2026-03-29T21:59:59.999Z', 300, 'failed', 300),
    // the previous 23 hours: 28T00:00Z … 28T23:00Z
    row('p1', '2026-03-28T00:00:00.000Z', 50, 'completed', null), row('p2', '2026-03-27T23:59:59.999Z', 999),
    // a year earlier: Berlin 2025-03-29 (CET all day; 2025 springs forward on the 30th): 28T23:00Z … 29T23:00Z
    row('y1', '2025-03-29T12:00:00.000Z', 400)
  ])
  const get = async (url: string, headers = g.admin.headers) => {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  const previous = await get('/api/admin/stats/comparison?start_date=2026-03-29&end_date=2026-03-29&timezone=Europe/Berlin')
  t.same(previous, {
    current: { total_requests: 2, error_count: 1, total_tokens: 400, input_tokens: 400, output_tokens: 0, total_cost: 0, total_actual_cost: 0, avg_response_time_ms: 200 },
    comparison: { total_requests: 1, error_count: 0, total_tokens: 50, input_tokens: 50, output_tokens: 0, total_cost: 0, total_actual_cost: 0, avg_response_time_ms: null },
    change_percent: { total_requests: 100, error_count: null, total_tokens: 700, input_tokens: 700, output_tokens: null, total_cost: null, total_actual_cost: null, avg_response_time_ms: null },
    current_start: '2026-03-28T23:00:00.000Z',
    current_end: '2026-03-29T22:00:00.000Z',
    comparison_start: '2026-03-28T00:00:00.000Z',
    comparison_end: '2026-03-28T23:00:00.000Z',
    comparison_type: 'period',
    compare_to: 'previous_period'
  })
  // Aether's comparison_type=year: the same local wall clock a year earlier, 2025-03-29 00:00 … 2025-03-30 00:00 CET
  const year = await get('/api/admin/stats/comparison?start_date=2026-03-29&end_date=2026-03-29&timezone=Europe/Berlin&comparison_type=year')
  t.same([year.comparison_start, year.comparison_end, year.comparison.total_requests, year.change_percent.total_requests, year.compare_to],
    ['2025-03-28T23:00:00.000Z', '2025-03-29T23:00:00.000Z', 1, 100, 'year_ago'])
  // unpriced rows: a cost ranking whose total is zero has no shares
  const board = await get('/api/admin/stats/leaderboard/models?metric=cost&start_date=2026-03-29&end_date=2026-03-29&timezone=Europe/Berlin')
  t.same(board.items, [{ rank: 1, id: 'm', name: 'm', value: 0, requests: 2, tokens: 400, cost: 0, actual_cost: 0, share_percent: null }])
  // a user sees their own keys only (none here), without the operator's cost
  const user = await signIn(g.app, 'user')
  const own = await get('/api/users/me/stats/comparison?start_date=2026-03-29&end_date=2026-03-29&compare_to=year_ago', user.headers)
  t.equal(own.current.total_requests, 0)
  t.notOk('total_actual_cost' in own.current || 'total_actual_cost' in own.change_percent, 'no operator cost')
  const refused = await g.app.inject({ method: 'GET', url: '/api/admin/stats/comparison?start_date=2000-03-01&end_date=2000-03-02&compare_to=year_ago', headers: g.admin.headers })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error.field, 'querystring.compare_to')
})
