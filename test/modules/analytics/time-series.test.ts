// GET /api/admin/stats/time-series and /api/users/me/stats/time-series: every point
// equals plain sums over the raw rows of its bucket, bucket boundaries are the zone's
// (checked with PostgreSQL's own zone rules, or by hand across a DST change), zero-filled.
import t from 'tap'
import { testSeed } from '../../prng.js'
import { gateway } from '../gateway/fixtures.js'
import { dataSet, HOUR } from '../stats/fixtures.js'
import { signIn } from '../../helper.js'
import { rawPoint } from './series-reference.js'

t.test('a DST day in Berlin and a +05:30 day, by hand', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const at = ['2026-03-27T23:00:00.000Z', '2026-03-29T21:59:59.999Z', '2026-03-29T22:00:00.000Z', '2026-03-29T22:30:00.000Z', '2026-03-28T22:59:59.999Z']
  await g.send(at.map((createdAt, i) => ({
    type: 'complete', request_id: `dst-${i}`, api_key_id: key.id, model: 'm', created_at: createdAt, status: 'completed',
    input_tokens: 10 * (i + 1), output_tokens: 1, response_time_ms: 100 * (i + 1), first_byte_time_ms: i === 0 ? null : 10 * i,
    cache_creation_input_tokens: 3, cache_creation_5m_input_tokens: 1, cache_creation_1h_input_tokens: 2
  })))
  const get = async (query: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/time-series?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 200, query)
    return res.json()
  }
  // Berlin: 03-28 is 27T23:00Z–28T23:00Z (24 h), 03-29 is 28T23:00Z–29T22:00Z (23 h), 03-30 from 29T22:00Z
  const berlin = await get('start_date=2026-03-28&end_date=2026-03-31&timezone=Europe/Berlin')
  t.same(berlin.map((p: any) => [p.date, p.start, p.end, p.total_requests, p.input_tokens]), [
    ['2026-03-28', '2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z', 2, 10 + 50],
    ['2026-03-29', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 1, 20],
    ['2026-03-30', '2026-03-29T22:00:00.000Z', '2026-03-30T22:00:00.000Z', 2, 30 + 40],
    ['2026-03-31', '2026-03-30T22:00:00.000Z', '2026-03-31T22:00:00.000Z', 0, 0]
  ])
  t.same(berlin[0], {
    date: '2026-03-28', total_requests: 2, input_tokens: 60, output_tokens: 2, cache_creation_tokens: 6, cache_read_tokens: 0, total_cost: 0,
    avg_response_time_ms: 300, start: '2026-03-27T23:00:00.000Z', end: '2026-03-28T23:00:00.000Z', local_start: '2026-03-28T00:00', error_count: 0,
    cache_creation_5m_tokens: 2, cache_creation_1h_tokens: 4, total_tokens: 68, total_actual_cost: 0, avg_first_byte_time_ms: 40
  }, 'every field of a point; the first byte averages the one sample')
  t.equal(berlin[3].avg_response_time_ms, null, 'no sample: null')
  // +05:30 (as Aether's offset): 03-29 is 28T18:30Z–29T18:30Z, 03-30 from 29T18:30Z
  const india = await get('start_date=2026-03-29&end_date=2026-03-30&tz_offset_minutes=330')
  t.same(india.map((p: any) => [p.date, p.start, p.total_requests]), [['2026-03-29', '2026-03-28T18:30:00.000Z', 1], ['2026-03-30', '2026-03-29T18:30:00.000Z', 3]])
  // a week from Monday 03-23 (the range starts Saturday 03-28 in Berlin), then the next
  const weeks = await get('start_date=2026-03-28&end_date=2026-03-31&timezone=Europe/Berlin&granularity=week')
  t.same(weeks.map((p: any) => [p.date, p.start, p.end, p.total_requests]), [
    ['2026-03-28', '2026-03-27T23:00:00.000Z', '2026-03-29T22:00:00.000Z', 3],
    ['2026-03-30', '2026-03-29T22:00:00.000Z', '2026-03-31T22:00:00.000Z', 2]
  ])
  const months = await get('start_date=2026-03-28&end_date=2026-04-02&timezone=Europe/Berlin&granularity=month')
  t.same(months.map((p: any) => [p.date, p.start, p.total_requests]), [['2026-03-28', '2026-03-27T23:00:00.000Z', 5], ['2026-04-01', '2026-03-31T22:00:00.000Z', 0]])
  const hours = await get('start_date=2026-03-29T21:30:00Z&end_date=2026-03-29T23:00:00Z&timezone=Europe/Berlin&granularity=hour')
  t.same(hours.map((p: any) => [p.local_start, p.start, p.total_requests]), [
    ['2026-03-29T23:30', '2026-03-29T21:30:00.000Z', 1], ['2026-03-30T00:00', '2026-03-29T22:00:00.000Z', 2]
  ])

  const refused = async (query: string, field: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/time-series?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().error.field, field, query)
  }
  await refused('start_date=2026-01-01&end_date=2026-03-01&granularity=hour', 'querystring.granularity')
  await refused('granularity=minute', 'querystring.granularity')
  await refused('timezone=Mars/Olympus', 'querystring.timezone')
  await refused('tz_offset_minutes=900', 'querystring.tz_offset_minutes')
  await refused('preset=someday', 'querystring.preset')
  await refused('provider_id=nobody', 'querystring.provider_id')
  await refused('start_date=2026-01-01&end_date=2027-06-01', 'querystring.end_date')
})

t.test('every point equals the raw rows of its bucket, in several zones, granularities and filters', async (t) => {
  const hours = 80
  const { g, base, users, keys, providers } = await dataSet(t, { seed: testSeed(t, 20261219), count: 500, hours })
  // first bytes on completions (the data set has none on its finished rows)
  await g.send(Array.from({ length: 40 }, (_v, i) => ({
    type: 'complete', request_id: `fb-${i}`, api_key_id: keys[i % keys.length]!.id, model: 'claude-x', created_at: new Date(base + i * 2 * HOUR + 1234).toISOString(),
    status: 'completed', input_tokens: 5, output_tokens: 5, first_byte_time_ms: 50 + i, provider_id: providers[i % 3]!.id
  })))
  const sql = async (text: string, params: unknown[]) => (await g.app.pg.query(text, params)).rows
  const iso = (ms: number) => new Date(ms).toISOString()
  const ragged = `start_date=${iso(base + 5 * HOUR + 17 * 60_000 + 123)}&end_date=${iso(base + 75 * HOUR + 41 * 60_000)}`
  const filters: Array<[string, string, unknown[]]> = [
    ['', '', []],
    [`&provider_id=${providers[0]!.id}`, 'AND provider_id = $3', [providers[0]!.id]],
    [`&provider_id=${providers[1]!.name}&model=gpt-y`, 'AND provider_id = $3 AND model = $4', [providers[1]!.id, 'gpt-y']],
    ['&api_format=openai:chat', `AND api_format = $3`, ['openai:chat']],
    ['&api_format=', `AND api_format IS NULL`, []],
    [`&user_id=${users[0]!.id}`, 'AND user_id = $3', [users[0]!.id]],
    [`&api_key_id=${keys[6]!.id}&model=claude-x`, 'AND api_key_id = $3 AND model = $4', [keys[6]!.id, 'claude-x']]
  ]
  const cases = [
    `${ragged}&timezone=Europe/Berlin`, `${ragged}&timezone=Asia/Kolkata`, `${ragged}&tz_offset_minutes=345`, `${ragged}&tz_offset_minutes=-300`,
    `${ragged}&granularity=hour&timezone=Asia/Kolkata`, `${ragged}&granularity=week&timezone=America/New_York`, `${ragged}&granularity=month`, 'preset=last7days&timezone=Asia/Kolkata'
  ]
  let points = 0
  let nonEmpty = 0
  for (const query of cases) {
    for (const [filter, where, params] of filters) {
      const url = `/api/admin/stats/time-series?${query}${filter}`
      const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
      t.equal(res.statusCode, 200, url)
      const series = res.json()
      const expected = []
      for (const p of series) expected.push({ date: p.date, start: p.start, end: p.end, local_start: p.local_start, ...await rawPoint(g.app.pg, p.start, p.end, where, params) })
      t.same(series, expected, url)
      for (let i = 1; i < series.length; i++) if (series[i].start !== series[i - 1].end) t.fail(`${url}: buckets meet`)
      points += series.length
      nonEmpty += series.filter((p: any) => p.total_requests > 0).length
    }
    // the day boundaries are the zone's local midnights (PostgreSQL's zone rules)
    if (!query.includes('granularity') && query.includes('timezone=')) {
      const zone = decodeURIComponent(/timezone=([^&]+)/.exec(query)![1]!)
      const series = (await g.app.inject({ method: 'GET', url: `/api/admin/stats/time-series?${query}`, headers: g.admin.headers })).json()
      for (const p of series.slice(1)) {
        const [m] = await sql('SELECT ($1::date::timestamp AT TIME ZONE $2) AS at', [p.date, zone])
        t.equal(p.start, m.at.toISOString(), `${zone} ${p.date} starts at its local midnight`)
      }
    }
  }
  t.ok(points > 100 && nonEmpty > 50, `${points} points, ${nonEmpty} with requests`)

  // a user's own series: their keys only, whatever user_id says; no operator cost
  const [user] = users
  const own = await signIn(g.app, 'user')
  const ownKey = await g.userKey(own.id)
  await g.send([{ type: 'complete', request_id: 'own-1', api_key_id: ownKey.id, model: 'm', created_at: iso(base + 10 * HOUR), status: 'completed', input_tokens: 7, output_tokens: 3 }])
  const res = await g.app.inject({ method: 'GET', url: `/api/users/me/stats/time-series?${ragged}&user_id=${user!.id}&granularity=month`, headers: own.headers })
  t.equal(res.statusCode, 200)
  const mine = res.json()
  t.same(mine.map((p: any) => p.total_requests).reduce((a: number, b: number) => a + b, 0), 1, 'only the caller\'s request')
  t.notOk('total_actual_cost' in mine[0], 'no operator cost for a user')
})
