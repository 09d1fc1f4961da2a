// Every statistic served from rollups equals the straightforward computation over the
// raw rows (written here, plain GROUP BYs over usage and request_candidates), for
// whole-hour ranges, ragged ranges, ranges inside one hour, and the heatmap in zones
// whose midnight is and is not on a UTC hour.
import t from 'tap'
import { testSeed } from '../../prng.js'
import { dataSet, HOUR, isoWithOffset } from './fixtures.js'

const FINISHED = `status IN ('completed', 'failed', 'cancelled')`
const MIN = 60_000
const num = (v: unknown) => Number(v ?? 0)
const usd = (v: unknown) => Number(BigInt(String(v ?? 0))) / 1e9
const pct = (x: number, of: number) => of === 0 ? 0 : Math.round(x / of * 10_000) / 100
const avg1 = (sum: unknown, count: unknown) => num(count) === 0 ? 0 : Math.round(num(sum) / num(count) * 10) / 10

t.test('rollup-served statistics equal the raw-row computation', async (t) => {
  // the ragged range's bounds, and local midnights of zones off the hour, get rows on and beside them
  const hours = 72
  const base = Math.floor(Date.now() / HOUR) * HOUR - hours * HOUR
  const ranges: Array<[string, number, number]> = [
    ['whole hours', base + 5 * HOUR, base + 50 * HOUR],
    ['ragged (10:17:23.456 → two days later 15:42:01)', base + 10 * HOUR + 17 * MIN + 23_456, base + 63 * HOUR + 42 * MIN + 1000],
    ['inside one hour', base + 20 * HOUR + 5 * MIN, base + 20 * HOUR + 55 * MIN],
    ['across one hour boundary, no whole hour', base + 30 * HOUR + 40 * MIN, base + 31 * HOUR + 20 * MIN],
    ['nearly everything, whole UTC days inside', base + 90 * MIN, base + 71 * HOUR + 59 * MIN],
    ['ragged start, whole-hour end', base + 7 * HOUR + 59 * MIN + 59_999, base + 40 * HOUR]
  ]
  const instants = ranges.flatMap(([, from, to]) => [from, to])
  for (let day = -1; day <= 4; day++) {
    const midnight = Math.floor(base / 86_400_000) * 86_400_000 + day * 86_400_000
    instants.push(midnight - 330 * MIN, midnight - 345 * MIN) // Asia/Kolkata, Asia/Kathmandu
  }
  const { g } = await dataSet(t, { seed: testSeed(t, 20240607), count: 700, hours, instants })
  const { app, admin } = g
  const sql = async (text: string, params: unknown[]) => (await app.pg.query(text, params)).rows
  const get = async (url: string, headers = admin.headers) => {
    const res = await app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  // the stats' totals; their activity_heatmap (AETHER.md §4.1) is checked in aether-usage.test.ts
  const totalsOf = ({ activity_heatmap: _, ...totals }: Record<string, unknown>) => totals

  const rawStats = async (from: Date, to: Date, userId: string | null) => {
    const [r] = await sql(`
      SELECT count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS errors, sum(total_tokens) AS tokens,
             sum(total_cost) AS cost, sum(actual_total_cost) AS actual, sum(response_time_ms) AS rt_sum, count(response_time_ms) AS rt_count,
             sum(cache_creation_input_tokens) AS cc_tokens, sum(cache_read_input_tokens) AS cr_tokens,
             sum(cache_creation_cost) AS cc_cost, sum(cache_read_cost) AS cr_cost
        FROM usage WHERE ${FINISHED} AND created_at >= $1 AND created_at < $2 AND ($3::uuid IS NULL OR user_id = $3)`, [from, to, userId])
    return {
      total_requests: num(r.requests),
      total_tokens: num(r.tokens),
      total_cost: usd(r.cost),
      total_actual_cost: usd(r.actual),
      avg_response_time: num(r.rt_count) === 0 ? 0 : Math.round(num(r.rt_sum) / num(r.rt_count)) / 1000,
      error_count: num(r.errors),
      error_rate: pct(num(r.errors), num(r.requests)),
      cache_stats: { cache_creation_tokens: num(r.cc_tokens), cache_read_tokens: num(r.cr_tokens), cache_creation_cost: usd(r.cc_cost), cache_read_cost: usd(r.cr_cost) }
    }
  }

  const rawGrouped = async (groupBy: string, from: Date, to: Date) => {
    const reached = `u.${FINISHED} AND u.provider_id IS NOT NULL AND u.created_at >= $1 AND u.created_at < $2`
    if (groupBy === 'model') {
      return (await sql(`SELECT model, count(*) AS n, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual
                           FROM usage u WHERE ${reached} GROUP BY model ORDER BY n DESC, model`, [from, to]))
        .map((r) => ({ model: r.model, request_count: num(r.n), total_tokens: num(r.tokens), total_cost: usd(r.cost), actual_cost: usd(r.actual) }))
    }
    if (groupBy === 'api_format') {
      return (await sql(`SELECT api_format, count(*) AS n, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual,
                                sum(response_time_ms) AS rt_sum, count(response_time_ms) AS rt_count
                           FROM usage u WHERE ${reached} GROUP BY api_format ORDER BY n DESC, COALESCE(api_format, '')`, [from, to]))
        .map((r) => ({
          api_format: r.api_format, request_count: num(r.n), total_tokens: num(r.tokens), total_cost: usd(r.cost), actual_cost: usd(r.actual), avg_response_time_ms: avg1(r.rt_sum, r.rt_count)
        }))
    }
    if (groupBy === 'user') {
      return (await sql(`SELECT u.user_id, us.email, us.username, count(*) AS n, sum(u.total_tokens) AS tokens, sum(u.total_cost) AS cost
                           FROM usage u JOIN users us ON us.id = u.user_id WHERE ${reached}
                          GROUP BY u.user_id, us.email, us.username ORDER BY n DESC, u.user_id`, [from, to]))
        .map((r) => ({ user_id: r.user_id, email: r.email, username: r.username, request_count: num(r.n), total_tokens: num(r.tokens), total_cost: usd(r.cost) }))
    }
    // provider: tokens and costs from its requests; attempts from the candidates sent, or the request itself when none was reported
    const spent = await sql(`SELECT provider_id, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual
                               FROM usage u WHERE ${reached} GROUP BY provider_id`, [from, to])
    const tried = await sql(`
      SELECT provider_id, count(*) AS attempts, count(*) FILTER (WHERE ok) AS ok, count(*) FILTER (WHERE failed) AS failed,
             sum(latency) AS latency_sum, count(latency) AS latency_count
        FROM (SELECT provider_id, status = 'success' AS ok, status = 'failed' AS failed, latency_ms AS latency FROM request_candidates
               WHERE status NOT IN ('skipped', 'available') AND provider_id IS NOT NULL AND created_at >= $1 AND created_at < $2
              UNION ALL
              SELECT u.provider_id, u.status <> 'failed', u.status = 'failed', u.response_time_ms FROM usage u
               WHERE ${reached}
                 AND (SELECT count(*) FROM request_candidates c WHERE c.request_id = u.request_id AND c.status NOT IN ('skipped', 'available')) = 0) a
       GROUP BY provider_id`, [from, to])
    const names = new Map((await sql('SELECT id, name FROM providers', [])).map((r) => [r.id as string, r.name as string]))
    const ids = [...new Set([...spent, ...tried].map((r) => r.provider_id as string))].filter((id) => names.has(id))
    return ids.map((id) => {
      const s = spent.find((r) => r.provider_id === id) ?? {}
      const a = tried.find((r) => r.provider_id === id) ?? {}
      return {
        provider_id: id,
        provider: names.get(id),
        request_count: num(a.attempts),
        total_tokens: num(s.tokens),
        total_cost: usd(s.cost),
        actual_cost: usd(s.actual),
        avg_response_time_ms: avg1(a.latency_sum, a.latency_count),
        success_rate: pct(num(a.ok), num(a.attempts)),
        error_count: num(a.failed)
      }
    }).sort((x, y) => y.request_count - x.request_count || (x.provider_id < y.provider_id ? -1 : 1))
  }

  const users = (await sql('SELECT id FROM users ORDER BY id', [])).map((r) => r.id as string)
  const sessions = new Map<string, { authorization: string }>()
  let checked = 0
  for (const [name, from, to] of ranges) {
    // one bound written with an offset other than Z: the range is the same instants
    const q = `start_date=${encodeURIComponent(isoWithOffset(from, '+05:30'))}&end_date=${encodeURIComponent(new Date(to).toISOString())}`
    const [start, end] = [new Date(from), new Date(to)]
    t.same(totalsOf(await get(`/api/admin/usage/stats?${q}`)), await rawStats(start, end, null), `${name}: stats`)
    for (const groupBy of ['model', 'user', 'provider', 'api_format']) {
      const served = await get(`/api/admin/usage/aggregation/stats?group_by=${groupBy}&limit=100&${q}`)
      t.same(served, await rawGrouped(groupBy, start, end), `${name}: by ${groupBy}`)
      checked += served.length
    }
    const limited = await get(`/api/admin/usage/aggregation/stats?group_by=model&limit=2&${q}`)
    t.same(limited, (await rawGrouped('model', start, end)).slice(0, 2), `${name}: limit`)
    for (const id of users) {
      const signedIn = await app.inject({ method: 'GET', url: `/api/users/me/usage/stats?${q}`, headers: await asUser(id) })
      // a regular user's answer leaves out the operator's cost (accounting/visibility.ts); an admin's keeps it
      const { total_actual_cost: operator, ...own } = await rawStats(start, end, id)
      const admin = (await sql('SELECT role FROM users WHERE id = $1', [id]))[0]!.role === 'admin'
      t.same(totalsOf(signedIn.json()), admin ? { ...own, total_actual_cost: operator } : own, `${name}: /users/me/usage/stats of ${id}`)
    }
  }
  t.ok(checked > 40, 'the aggregations had rows to compare')

  // the default range: the last 30 days, which holds every row
  const everything = await rawStats(new Date(Date.now() - 30 * 86_400_000), new Date(Date.now() + 1), null)
  t.same(totalsOf(await get('/api/admin/usage/stats')), everything, 'default range')
  t.ok(everything.total_requests > 500 && everything.error_count > 0 && everything.cache_stats.cache_read_cost > 0, 'a data set worth comparing')

  for (const zone of ['UTC', 'Asia/Shanghai', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu']) {
    const served = await get(`/api/admin/usage/heatmap?timezone=${encodeURIComponent(zone)}`)
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date())
    const byDay = new Map((await sql(`
      SELECT to_char((created_at AT TIME ZONE $1)::date, 'YYYY-MM-DD') AS day, count(*) AS n, sum(total_tokens) AS tokens,
             sum(total_cost) AS cost, sum(actual_total_cost) AS actual
        FROM usage WHERE ${FINISHED} GROUP BY 1`, [zone])).map((r) => [r.day as string, r]))
    const days = Array.from({ length: 365 }, (_, i) => {
      const date = new Date(Date.parse(`${today}T00:00:00Z`) - (364 - i) * 86_400_000).toISOString().slice(0, 10)
      const r = byDay.get(date)
      return { date, requests: num(r?.n), total_tokens: num(r?.tokens), total_cost: usd(r?.cost), actual_total_cost: usd(r?.actual) }
    })
    t.same(served, { start_date: days[0]!.date, end_date: today, total_days: 365, max_requests: Math.max(...days.map((d) => d.requests)), days }, `heatmap in ${zone}`)
    t.equal(days.filter((d) => d.requests > 0).length >= 3, true, `${zone}: rows on several days`)
  }

  /** a session for a user made through the admin API (the fixtures' password) */
  async function asUser (id: string) {
    let headers = sessions.get(id)
    if (headers === undefined) {
      const { username } = (await sql('SELECT username FROM users WHERE id = $1', [id]))[0]!
      const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: username, password: 'correct-horse-battery' } })
      headers = { authorization: `Bearer ${res.json().access_token as string}` }
      sessions.set(id, headers)
    }
    return headers
  }
})
