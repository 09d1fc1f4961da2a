// GET /api/users/me/stats/leaderboard/{api-keys,models,providers}: the caller's own keys
// only, equal to a ranking computed here from the raw rows of that user (dense rank,
// shares), over a ragged range of whole days, hours and raw edges; never another user's
// keys, and no operator cost for a non-admin.
import t from 'tap'
import { signIn } from '../../helper.js'
import { testSeed } from '../../prng.js'
import { dataSet, HOUR, MODELS, prng } from '../stats/fixtures.js'
import { rankRows } from './board-reference.js'

const FINISHED = `u.status IN ('completed', 'failed', 'cancelled')`

t.test('own leaderboards equal the raw-row ranking of the caller\'s keys', async (t) => {
  const { g, base, providers } = await dataSet(t, { seed: testSeed(t, 20261903), count: 400, hours: 80 })
  const rand = prng(7)
  // two signed-in users with keys and traffic beside the data set's
  const people = [await signIn(g.app, 'user'), await signIn(g.app, 'user'), await signIn(g.app, 'admin')]
  const keysOf = new Map<string, string[]>()
  let n = 0
  for (const person of people) {
    const keys = [(await g.userKey(person.id)).id, (await g.userKey(person.id)).id, (await g.userKey(person.id)).id]
    keysOf.set(person.id, keys)
    await g.send(Array.from({ length: 60 }, () => ({
      type: 'complete', request_id: `own-${n++}`, api_key_id: rand.pick(keys), model: rand.pick(MODELS), created_at: new Date(base + rand.int(80 * HOUR)).toISOString(),
      status: rand.next() < 0.8 ? 'completed' : 'failed', input_tokens: rand.int(5000), output_tokens: rand.int(1000),
      ...(rand.next() < 0.9 && { provider_id: rand.pick(providers).id })
    })))
  }
  const from = new Date(base + 3 * HOUR + 11 * 60_000 + 7).toISOString()
  const to = new Date(base + 77 * HOUR + 59 * 60_000).toISOString()
  const reference = async (board: string, userId: string, metric: 'requests' | 'tokens' | 'cost', withActual: boolean) => {
    const source: Record<string, string> = {
      'api-keys': `SELECT u.api_key_id::text AS id, n.name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u JOIN api_keys n ON n.id = u.api_key_id`,
      models: `SELECT u.model AS id, u.model AS name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u`,
      providers: `SELECT u.provider_id::text AS id, n.name, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u JOIN providers n ON n.id = u.provider_id`
    }
    const rows = (await g.app.pg.query(`SELECT id, name, count(*)::bigint AS requests, sum(total_tokens)::bigint AS tokens, sum(total_cost)::bigint AS cost, sum(actual_total_cost)::bigint AS actual
      FROM (${source[board]} WHERE ${FINISHED} AND u.created_at >= $1 AND u.created_at < $2 AND u.user_id = $3) x GROUP BY id, name`, [from, to, userId])).rows
    return rankRows(rows, metric, 'desc', withActual)
  }
  for (const [i, person] of people.entries()) {
    const admin = i === 2
    for (const [board, metric] of [['api-keys', 'requests'], ['models', 'cost'], ['providers', 'tokens']] as const) {
      const url = `/api/users/me/stats/leaderboard/${board}?start_date=${from}&end_date=${to}&metric=${metric}&limit=100`
      const res = await g.app.inject({ method: 'GET', url, headers: person.headers })
      t.equal(res.statusCode, 200, url)
      const expected = await reference(board, person.id, metric, admin)
      t.ok(expected.length > 1, `${board}: ${expected.length} entries`)
      t.same(res.json(), { items: expected, total: expected.length, metric, order: 'desc', limit: 100, offset: 0, start_date: from, end_date: to }, `${board} of user ${i}`)
      if (board === 'api-keys') t.ok(res.json().items.every((item: any) => keysOf.get(person.id)!.includes(item.id)), 'only the caller\'s keys')
    }
  }
  const refused = await g.app.inject({ method: 'GET', url: '/api/users/me/stats/leaderboard/models?limit=0', headers: people[0]!.headers })
  t.equal(refused.statusCode, 400)
  t.equal((await g.app.inject({ method: 'GET', url: '/api/users/me/stats/leaderboard/models' })).statusCode, 401)
})
