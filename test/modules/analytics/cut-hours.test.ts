// The hours a local midnight cuts (+05:30, +05:45): a time series and the errors
// distribution read them from the quarter-hour rollups (usage_quarter_hourly_global
// unfiltered, usage_quarter_hourly_model by model, provider or api_format,
// usage_errors_quarter_hourly), a user's series and an offset off the quarter-hour from raw
// rows. Every answer equals a GROUP BY of the raw rows; then the raw rows of the cut
// hours are changed behind the rollups' back, and only the answers that read raw rows move.
import t from 'tap'
import { testSeed } from '../../prng.js'
import { rollupsAndRaw } from '../gateway/fixtures.js'
import { dataSet, HOUR } from '../stats/fixtures.js'
import { FINISHED, rawPoint } from './series-reference.js'

const QUARTER = 900_000
const NIL = '00000000-0000-0000-0000-000000000000'

t.test('cut hours: the quarter-hour rollups answer but for a user\'s series, raw rows a user\'s', async (t) => {
  const hours = 96
  const local = (offsetMinutes: number, dayShift: number, minutes: number, base: number) => {
    // the instant `minutes` after the local midnight of the day `dayShift` after base's (in a zone offsetMinutes east)
    const day = Math.floor((base + offsetMinutes * 60_000) / 86_400_000) + dayShift
    return day * 86_400_000 - offsetMinutes * 60_000 + minutes * 60_000
  }
  const anchor = Math.floor(Date.now() / HOUR) * HOUR - hours * HOUR
  // rows on either side of Kolkata's and Kathmandu's midnights, inside the hours they cut
  const instants = [1, 2, 3].flatMap((d) => [-29, -1, 0, 14, 29].flatMap((m) => [local(330, d, m, anchor), local(345, d, m, anchor)]))
  const { g, base, users, keys, providers } = await dataSet(t, { seed: testSeed(t, 20261207), count: 900, hours, instants })
  const sql = async (text: string, params: unknown[] = []) => (await g.app.pg.query(text, params)).rows
  const iso = (ms: number) => new Date(ms).toISOString()
  // and beside each, a row every filter below matches (users[0]'s key, claude-x, the second provider,
  // openai:chat): each filter's cut hours hold rows wherever the clock puts the midnights
  await g.send(instants.filter((at) => at >= base && at < base + hours * HOUR).map((at, i) => ({
    type: 'complete', request_id: `cut-${i}`, api_key_id: keys[0]!.id, model: 'claude-x', created_at: iso(at + 7_000), api_format: 'openai:chat',
    provider_id: providers[1]!.id, status: i % 2 === 0 ? 'completed' : 'failed', status_code: i % 2 === 0 ? 200 : 502, input_tokens: 100 + i, output_tokens: 7
  })))

  // the new rollups equal GROUP BYs of the raw rows (the provider-keyed ones keep the deleted provider's id, which the raw rows lost: read as none)
  const { usage_quarter_hourly_global: global } = await rollupsAndRaw(g.app)
  t.ok(global!.raw.length > 0, 'usage_quarter_hourly_global: rows to compare')
  t.same(global!.rollup, global!.raw, 'usage_quarter_hourly_global = GROUP BY of the raw rows')
  const provider = (column: string) => `CASE WHEN ${column} IN (SELECT id FROM providers) THEN ${column} ELSE '${NIL}'::uuid END`
  const errorsRollup = await sql(`SELECT bucket, ${provider('provider_id')} AS p, status_code, sum(requests)::int AS n FROM usage_errors_quarter_hourly GROUP BY 1, 2, 3 HAVING sum(requests) <> 0 ORDER BY 1, 2, 3`)
  const errorsRaw = await sql(`SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket, coalesce(provider_id, '${NIL}') AS p, coalesce(status_code, 0) AS status_code, count(*)::int AS n
                                 FROM usage WHERE status = 'failed' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`)
  t.ok(errorsRaw.length > 50, `usage_errors_quarter_hourly: ${errorsRaw.length} rows`)
  t.same(errorsRollup, errorsRaw, 'usage_errors_quarter_hourly = GROUP BY of the failed raw rows')
  const modelRollup = await sql(`SELECT bucket, ${provider('provider_id')} AS p, model, api_format, sum(requests)::int AS n, sum(input_tokens)::bigint AS input, sum(total_cost)::bigint AS cost
                                    FROM usage_quarter_hourly_model GROUP BY 1, 2, 3, 4 HAVING sum(requests) <> 0 ORDER BY 1, 2, 3, 4`)
  const modelRaw = await sql(`SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket, coalesce(provider_id, '${NIL}') AS p, model, coalesce(api_format, '') AS api_format,
                                     count(*)::int AS n, sum(input_tokens)::bigint AS input, sum(total_cost)::bigint AS cost
                                FROM usage WHERE ${FINISHED} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`)
  t.same(modelRollup, modelRaw, 'usage_quarter_hourly_model = GROUP BY of the finished raw rows')
  const dailyRollup = await sql(`SELECT day, ${provider('provider_id')} AS p, sum(requests)::int AS n FROM usage_daily_provider GROUP BY 1, 2 HAVING sum(requests) <> 0 ORDER BY 1, 2`)
  const dailyRaw = await sql(`SELECT (created_at AT TIME ZONE 'UTC')::date AS day, coalesce(provider_id, '${NIL}') AS p, count(*)::int AS n FROM usage WHERE ${FINISHED} GROUP BY 1, 2 ORDER BY 1, 2`)
  t.same(dailyRollup, dailyRaw, 'usage_daily_provider = GROUP BY of the finished raw rows')

  const errorsOf = async (from: string, to: string) => Object.fromEntries((await sql(`
    SELECT CASE WHEN coalesce(status_code, 0) = 0 THEN 'none' WHEN status_code BETWEEN 400 AND 499 THEN '4xx' WHEN status_code BETWEEN 500 AND 599 THEN '5xx' ELSE 'other' END AS c, count(*)::int AS n
      FROM usage WHERE status = 'failed' AND created_at >= $1 AND created_at < $2 GROUP BY 1`, [from, to])).map((r) => [r.c, r.n]))

  // whole quarters at both ends, and ragged ends (a quarter cut inside: raw)
  const ranges = [`start_date=${iso(base + 2 * HOUR + QUARTER)}&end_date=${iso(base + 90 * HOUR + 3 * QUARTER)}`,
    `start_date=${iso(base + 5 * HOUR + 17 * 60_000 + 123)}&end_date=${iso(base + 93 * HOUR + 41 * 60_000)}`]
  const zones = ['timezone=Asia/Kolkata', 'timezone=Asia/Kathmandu', 'tz_offset_minutes=337', 'tz_offset_minutes=-570']
  const filters: Array<[string, string, unknown[]]> = [['', '', []], [`&user_id=${users[0]!.id}`, 'AND user_id = $3', [users[0]!.id]],
    ['&model=claude-x', 'AND model = $3', ['claude-x']], [`&provider_id=${providers[1]!.id}&api_format=openai:chat`, 'AND provider_id = $3 AND api_format = $4', [providers[1]!.id, 'openai:chat']]]
  const answers = new Map<string, unknown>()
  const read = async (url: string) => {
    const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  let points = 0
  for (const range of ranges) {
    for (const zone of zones) {
      for (const granularity of ['day', 'week']) {
        for (const [filter, where, params] of filters) {
          const url = `/api/admin/stats/time-series?${range}&${zone}&granularity=${granularity}${filter}`
          const series = await read(url)
          const expected = []
          for (const p of series) expected.push({ date: p.date, start: p.start, end: p.end, local_start: p.local_start, ...await rawPoint(g.app.pg, p.start, p.end, where, params) })
          t.same(series, expected, url)
          answers.set(url, series)
          points += series.length
        }
        const url = `/api/admin/stats/errors/distribution?${range}&${zone}&granularity=${granularity}`
        const errors = await read(url)
        for (const p of errors.trend) t.same(p.categories, await errorsOf(p.start, p.end), `${url} ${p.date}`)
        answers.set(url, errors)
      }
    }
  }
  t.ok(points > 20, `${points} points compared`)

  // the raw rows of every hour a +05:30 / +05:45 midnight cuts change, the rollups not: an
  // answer from the quarter-hours stays, one from raw rows follows the rows
  // (not the hours of the ranges' ends, read raw wherever a quarter is cut)
  const ends = [2, 90, 5, 93].map((h) => base + h * HOUR)
  const cut = [...new Set(instants.map((at) => Math.floor(at / HOUR) * HOUR))].filter((h) => h >= base && h < base + hours * HOUR && !ends.includes(h))
  const changed = await sql(`UPDATE usage SET input_tokens = input_tokens + 1000000, status_code = 200 + coalesce(status_code, 0) % 100
                              WHERE ${FINISHED} AND date_trunc('hour', created_at, 'UTC') = ANY($1::timestamptz[]) RETURNING status`, [cut.map(iso)])
  t.ok(changed.some((r) => r.status === 'failed'), `${changed.length} rows changed behind the rollups, failed ones among them`)
  for (const [url, before] of answers) {
    const after = await read(url)
    // −09:30's midnights cut 09:00Z, so the changed hours are whole hours from the hourly rollups there
    const cutThere = !url.includes('tz_offset_minutes=-570')
    const rawThere = cutThere && (url.includes('user_id=') || url.includes('tz_offset_minutes=337'))
    if (!rawThere) t.same(after, before, `${url}: ${cutThere ? 'read from the quarter-hour rollups' : 'whole hours'}`)
    // (a week may have no midnight inside the range)
    else if (url.includes('granularity=day')) t.notSame(after, before, `${url}: read from the raw rows`)
  }
})
