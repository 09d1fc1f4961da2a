// GET /api/admin/stats/errors/distribution against raw SQL: every trend point's categories
// are a GROUP BY of the failed raw rows of its bucket, the distribution their sum over the
// range; ragged ranges in UTC, Europe/Berlin across the fall-back of 2026-10-25 and
// Asia/Kolkata (+05:30), each grouping; the rollup equals a GROUP BY of the raw rows.
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'
import { mulberry32, testSeed } from '../../prng.js'
import { parentIndexes } from '../../plans.js'
import { signIn } from '../../helper.js'

const HOUR = 3_600_000
const FROM = Date.parse('2026-10-23T00:00:00Z')
const HOURS = 100
const NIL = '00000000-0000-0000-0000-000000000000'

t.test('the errors distribution equals the failed raw rows by category', async (t) => {
  const g = await gateway(t)
  const random = mulberry32(testSeed(t, 20261206))
  const providers = [await g.provider('alpha'), await g.provider('beta'), await g.provider('doomed')]
  const key = await g.standaloneKey()
  const codes = [400, 401, 429, 500, 502, 503, 302, null]
  const events: object[] = []
  for (let i = 0; i < 1500; i++) {
    const provider = random() < 0.1 ? null : providers[Math.floor(random() * providers.length)]!
    const start = {
      request_id: `e-${i}`, api_key_id: key.id, model: 'm', created_at: new Date(FROM + Math.floor(random() * HOURS * HOUR)).toISOString(),
      ...(provider !== null && { provider_id: provider.id })
    }
    const roll = random()
    if (roll < 0.05) { events.push({ type: 'start', ...start }); continue }
    // some fail only after a start: the row changes from in flight to failed
    if (roll < 0.2) events.push({ type: 'start', ...start })
    const failed = roll < 0.6
    const code = failed ? codes[Math.floor(random() * codes.length)] : 200
    events.push({ type: 'complete', ...start, status: failed ? 'failed' : roll < 0.9 ? 'completed' : 'cancelled', ...(code !== null && { status_code: code }), input_tokens: 1, output_tokens: 1 })
  }
  for (let from = 0; from < events.length; from += 1000) {
    const results = await g.send(events.slice(from, from + 1000))
    t.same(results.filter((r) => r.outcome !== 'recorded').slice(0, 3), [], 'recorded')
  }
  const sql = async (text: string, params: unknown[] = []) => (await g.app.pg.query(text, params)).rows
  const rollup = await sql(`SELECT bucket, provider_id, status_code, requests FROM usage_errors_hourly WHERE requests <> 0 ORDER BY 1, 2, 3`)
  const rawRollup = await sql(`SELECT date_trunc('hour', created_at, 'UTC') AS bucket, coalesce(provider_id, $1::uuid) AS provider_id, coalesce(status_code, 0) AS status_code,
      count(*)::int AS requests FROM usage WHERE status = 'failed' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, [NIL])
  t.same(rollup, rawRollup, `usage_errors_hourly: ${rollup.length} rows, the GROUP BY of the failed raw rows`)
  // usage forgets a deleted provider, the rollup keeps its id: both read as none
  await g.adminCall('DELETE', `/api/admin/providers/${providers[2]!.id}`)

  const category: Record<string, string> = {
    status_class: `CASE WHEN status_code IS NULL THEN 'none' WHEN status_code BETWEEN 400 AND 499 THEN '4xx' WHEN status_code BETWEEN 500 AND 599 THEN '5xx' ELSE 'other' END`,
    status_code: `coalesce(status_code::text, 'none')`,
    provider: `coalesce((SELECT name FROM providers p WHERE p.id = usage.provider_id), 'none')`
  }
  const expected = async (from: string, to: string, group: string) => Object.fromEntries((await sql(`
    SELECT ${category[group]!} AS category, count(*)::int AS n FROM usage WHERE status = 'failed' AND created_at >= $1 AND created_at < $2 GROUP BY 1`, [from, to]))
    .map((r) => [r.category, r.n]))
  const iso = (ms: number) => new Date(ms).toISOString()
  const ragged = `start_date=${iso(FROM + 5 * HOUR + 17 * 60_000 + 123)}&end_date=${iso(FROM + 97 * HOUR + 41 * 60_000)}`
  const cases = [
    `${ragged}&timezone=UTC`, `${ragged}&timezone=Europe/Berlin`, `${ragged}&timezone=Asia/Kolkata`, `${ragged}&tz_offset_minutes=330&granularity=week`,
    `${ragged}&granularity=hour&timezone=Asia/Kolkata`, 'start_date=2026-10-24&end_date=2026-10-26&timezone=Europe/Berlin'
  ]
  let points = 0
  for (const query of cases) {
    for (const group of ['', 'status_class', 'status_code', 'provider']) {
      const url = `/api/admin/stats/errors/distribution?${query}${group === '' ? '' : `&group_by=${group}`}`
      const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
      t.equal(res.statusCode, 200, url)
      const body = res.json()
      const by = group === '' ? 'status_class' : group
      t.equal(body.group_by, by)
      for (let i = 1; i < body.trend.length; i++) if (body.trend[i].start !== body.trend[i - 1].end) t.fail(`${url}: buckets meet`)
      for (const p of body.trend as Json[]) {
        const want = await expected(p.start, p.end, by)
        t.same(p.categories, want, `${url} ${p.date}`)
        t.equal(p.total, Object.values(want).reduce((a: number, b) => a + (b as number), 0))
        points++
      }
      const whole = await expected(body.start_date, body.end_date, by)
      t.same(Object.fromEntries(body.distribution.map((d: Json) => [d.category, d.count])), whole, `${url}: the distribution`)
      const counts = body.distribution.map((d: Json) => d.count as number)
      t.same(counts, [...counts].sort((a, b) => b - a), 'most first')
      t.equal(body.total, counts.reduce((a: number, b: number) => a + b, 0))
      if (by === 'provider') t.notOk(body.distribution.some((d: Json) => d.category === 'doomed'), 'the deleted provider reads as none')
    }
  }
  t.ok(points > 100, `${points} trend points compared`)

  // Berlin's 2026-10-25 has 25 hours; an empty day is zero-filled
  const day = (await g.app.inject({ method: 'GET', url: '/api/admin/stats/errors/distribution?start_date=2026-10-25&end_date=2026-10-30&timezone=Europe/Berlin', headers: g.admin.headers })).json()
  t.same([day.trend[0].start, day.trend[0].end], ['2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'])
  t.same([day.trend.length, day.trend[5].date, day.trend[5].total, day.trend[5].categories], [6, '2026-10-30', 0, {}], 'the end date included; a day without requests: zero')

  const refused = async (query: string, field: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/errors/distribution?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().error.field, field, query)
  }
  await refused('group_by=model', 'querystring.group_by')
  await refused('granularity=minute', 'querystring.granularity')
  await refused('start_date=2026-01-01&end_date=2026-03-01&granularity=hour', 'querystring.granularity')
  await refused('timezone=Mars/Olympus', 'querystring.timezone')
  await refused('start_date=2026-01-01&end_date=2027-06-01', 'querystring.end_date')
  await refused('preset=someday', 'querystring.preset')
})

t.test('a user\'s own errors distribution: their failed raw rows only, by category and bucket', async (t) => {
  const g = await gateway(t)
  const random = mulberry32(testSeed(t, 20261210))
  const providers = [await g.provider('alpha'), await g.provider('beta')]
  const people = [await signIn(g.app, 'user'), await signIn(g.app, 'user')]
  const keys = [(await g.userKey(people[0]!.id)).id, (await g.userKey(people[0]!.id)).id, (await g.userKey(people[1]!.id)).id]
  // another user's and a standalone key's failures must never show in a person's answer
  keys.push((await g.standaloneKey()).id)
  const codes = [400, 429, 500, 503, null]
  const events = Array.from({ length: 600 }, (_, i) => {
    const provider = random() < 0.1 ? null : providers[Math.floor(random() * providers.length)]!
    const failed = random() < 0.5
    const code = failed ? codes[Math.floor(random() * codes.length)] : 200
    return {
      type: 'complete', request_id: `own-e-${i}`, api_key_id: keys[Math.floor(random() * keys.length)], model: 'm',
      created_at: new Date(FROM + Math.floor(random() * HOURS * HOUR)).toISOString(), status: failed ? 'failed' : 'completed',
      ...(provider !== null && { provider_id: provider.id }), ...(code !== null && { status_code: code }), input_tokens: 1, output_tokens: 1
    }
  })
  t.same((await g.send(events)).filter((r) => r.outcome !== 'recorded').slice(0, 3), [], 'recorded')
  const iso = (ms: number) => new Date(ms).toISOString()
  const range = `start_date=${iso(FROM + 2 * HOUR + 7 * 60_000)}&end_date=${iso(FROM + 90 * HOUR + 13 * 60_000)}`
  const category: Record<string, string> = {
    status_class: `CASE WHEN status_code IS NULL THEN 'none' WHEN status_code BETWEEN 400 AND 499 THEN '4xx' WHEN status_code BETWEEN 500 AND 599 THEN '5xx' ELSE 'other' END`,
    status_code: `coalesce(status_code::text, 'none')`,
    provider: `coalesce((SELECT name FROM providers p WHERE p.id = usage.provider_id), 'none')`
  }
  let compared = 0
  for (const person of people) {
    for (const [query, group] of [[`${range}&timezone=Asia/Kolkata`, 'status_class'], [`${range}&timezone=Europe/Berlin&group_by=provider`, 'provider'], [`${range}&granularity=hour&group_by=status_code`, 'status_code']] as const) {
      const res = await g.app.inject({ method: 'GET', url: `/api/users/me/stats/errors/distribution?${query}`, headers: person.headers })
      t.equal(res.statusCode, 200, query)
      const body = res.json()
      for (const p of body.trend as Json[]) {
        const want = Object.fromEntries((await g.app.pg.query(`SELECT ${category[group]!} AS category, count(*)::int AS n FROM usage
          WHERE status = 'failed' AND user_id = $3 AND created_at >= $1 AND created_at < $2 GROUP BY 1`, [p.start, p.end, person.id])).rows.map((r) => [r.category, r.n]))
        t.same(p.categories, want, `${query} ${p.date}`)
        compared += Object.keys(want).length
      }
      const all = (await g.app.pg.query(`SELECT count(*)::int AS n FROM usage WHERE status = 'failed' AND user_id = $3 AND created_at >= $1 AND created_at < $2`, [body.start_date, body.end_date, person.id])).rows[0].n
      t.equal(body.total, all, `${query}: the person's ${all} failures, no one else's`)
    }
  }
  t.ok(compared > 50, `${compared} bucket categories compared`)
  const anonymous = await g.app.inject({ method: 'GET', url: `/api/users/me/stats/errors/distribution?${range}` })
  t.equal(anonymous.statusCode, 401, 'signed in only')
  // a table this small could be read whole: the question is which index serves it when one does
  const client = await g.app.pg.connect()
  try {
    await client.query('SET enable_seqscan = off')
    const plan = (await client.query(`EXPLAIN SELECT created_at, provider_id, status_code FROM usage u WHERE u.user_id = $1::uuid AND u.status = 'failed' AND u.created_at >= now() - interval '1 day'`, [people[0]!.id])).rows.map((r) => r['QUERY PLAN']).join('\n')
    // each month's partition through its copy of the index
    const used = await parentIndexes(client, [...plan.matchAll(/ using (\S+) on /g)].map((m) => m[1]!))
    t.ok(used.length > 0 && used.every((name) => name === 'usage_failed_user_idx'), `the partial index serves it (${used.join(', ')})`)
  } finally {
    await client.query('RESET enable_seqscan')
    client.release()
  }
})
