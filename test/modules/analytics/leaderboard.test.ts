// GET /api/admin/stats/leaderboard/*: every page equals a ranking computed here from the
// raw rows (plain GROUP BYs, dense rank and shares in TypeScript), over a ragged range
// that holds whole UTC days, whole hours and raw edges.
import t from 'tap'
import { testSeed } from '../../prng.js'
import { dataSet, HOUR } from '../stats/fixtures.js'
import { rankRows } from './board-reference.js'

const FINISHED = `u.status IN ('completed', 'failed', 'cancelled')`

t.test('leaderboards equal the raw-row ranking', async (t) => {
  const { g, base, users, providers } = await dataSet(t, { seed: testSeed(t, 20261220), count: 600, hours: 80 })
  const from = new Date(base + 3 * HOUR + 11 * 60_000 + 7).toISOString()
  const to = new Date(base + 77 * HOUR + 59 * 60_000).toISOString()
  const reference = async (board: string, metric: 'requests' | 'tokens' | 'cost', order: 'asc' | 'desc', extra: string, params: unknown[]) => {
    const source: Record<string, string> = {
      users: `SELECT u.user_id::text AS id, n.username AS name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u JOIN users n ON n.id = u.user_id WHERE u.provider_id IS NOT NULL`,
      'api-keys': `SELECT u.api_key_id::text AS id, n.name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u JOIN api_keys n ON n.id = u.api_key_id WHERE TRUE`,
      models: `SELECT u.model AS id, u.model AS name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u WHERE TRUE`,
      providers: `SELECT u.provider_id::text AS id, n.name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u JOIN providers n ON n.id = u.provider_id WHERE TRUE`
    }
    const rows = (await g.app.pg.query(`SELECT id, name, count(*)::bigint AS requests, sum(total_tokens)::bigint AS tokens, sum(total_cost)::bigint AS cost, sum(actual_total_cost)::bigint AS actual
      FROM (${source[board]} AND ${FINISHED} AND u.created_at >= $1 AND u.created_at < $2 ${extra}) x GROUP BY id, name`, [from, to, ...params])).rows
    return { total: rows.length, items: rankRows(rows, metric, order, true) }
  }
  const cases: Array<[string, 'requests' | 'tokens' | 'cost', 'asc' | 'desc', number, number, string, string, unknown[]]> = [
    ['users', 'requests', 'desc', 100, 0, '', '', []],
    ['users', 'cost', 'desc', 2, 1, '', '', []],
    ['api-keys', 'tokens', 'desc', 100, 0, '', '', []],
    ['api-keys', 'requests', 'asc', 100, 0, `&user_id=${users[1]!.id}`, 'AND u.user_id = $3', [users[1]!.id]],
    ['models', 'cost', 'desc', 100, 0, '', '', []],
    ['models', 'requests', 'desc', 100, 0, `&provider_id=${providers[0]!.name}`, 'AND u.provider_id = $3', [providers[0]!.id]],
    ['providers', 'requests', 'desc', 100, 0, '', '', []],
    ['providers', 'tokens', 'desc', 1, 5, '', '', []]
  ]
  for (const [board, metric, order, limit, offset, filter, extra, params] of cases) {
    const url = `/api/admin/stats/leaderboard/${board}?start_date=${from}&end_date=${to}&metric=${metric}&order=${order}&limit=${limit}&offset=${offset}${filter}`
    const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
    t.equal(res.statusCode, 200, url)
    const expected = await reference(board, metric, order, extra, params)
    t.ok(expected.total > 1, `${board}: ${expected.total} entries`)
    t.same(res.json(), { items: expected.items.slice(offset, offset + limit), total: expected.total, metric, order, limit, offset, start_date: from, end_date: to }, url)
  }
  const refused = await g.app.inject({ method: 'GET', url: '/api/admin/stats/leaderboard/users?limit=101', headers: g.admin.headers })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().error.field, 'querystring.limit')
  const defaults = (await g.app.inject({ method: 'GET', url: '/api/admin/stats/leaderboard/models?preset=last7days', headers: g.admin.headers })).json()
  t.same([defaults.metric, defaults.order, defaults.limit, defaults.offset], ['requests', 'desc', 10, 0])
})
