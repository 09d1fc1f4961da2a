// GET /api/admin/stats/performance/percentiles against exact percentiles: every reported
// p50/p90/p99 is within the stated relative error of PostgreSQL's percentile_disc over
// the raw rows of its bucket (and group), the sample counts are exact, null below 10
// samples; ragged ranges, UTC, Europe/Berlin across the fall-back of 2026-10-25,
// Asia/Kolkata (+05:30); each granularity, filter and grouping. Random latencies from a
// fixed, printed seed.
import t from 'tap'
import { LATENCY_RELATIVE_ERROR } from '../../../src/modules/accounting/model.js'
import { gateway, type Json } from '../gateway/fixtures.js'
import { mulberry32, testSeed } from '../../prng.js'
import { histogramDifferences } from './percentiles-fixtures.js'

const HOUR = 3_600_000
const FINISHED = `status IN ('completed', 'failed', 'cancelled')`
const FROM = Date.parse('2026-10-23T00:00:00Z')
const HOURS = 100

t.test('percentiles equal the raw rows\' percentile_disc within the stated error', async (t) => {
  const g = await gateway(t)
  const random = mulberry32(testSeed(t, 20261205))
  const providers = [await g.provider('alpha'), await g.provider('beta'), await g.provider('doomed')]
  const keys = [await g.standaloneKey(), await g.standaloneKey()]
  const models = ['claude-x', 'gpt-y', 'gem-z']
  // log-uniform latencies from 1 ms to ~5 min, a few 0s and nulls: every bucket's width is exercised
  const latency = () => {
    const roll = random()
    if (roll < 0.05) return null
    if (roll < 0.07) return 0
    return Math.floor(Math.exp(random() * Math.log(300_000)))
  }
  const events: object[] = []
  for (let i = 0; i < 2400; i++) {
    const at = FROM + Math.floor(random() ** 0.7 * HOURS * HOUR)
    const provider = random() < 0.1 ? null : providers[Math.floor(random() * providers.length)]!
    const start = {
      request_id: `r-${i}`, api_key_id: keys[i % 2]!.id, model: models[Math.floor(random() * models.length)]!, created_at: new Date(at).toISOString(),
      ...(provider !== null && { provider_id: provider.id })
    }
    const roll = random()
    // a few never finish (not counted); some start first and complete later (a row updated)
    if (roll < 0.04) { events.push({ type: 'start', ...start }); continue }
    if (roll < 0.2) events.push({ type: 'start', ...start })
    events.push({
      type: 'complete', ...start, status: roll < 0.8 ? 'completed' : roll < 0.93 ? 'failed' : 'cancelled', status_code: roll < 0.8 ? 200 : 500,
      input_tokens: 10, output_tokens: 5, response_time_ms: latency(), first_byte_time_ms: latency()
    })
  }
  for (let from = 0; from < events.length; from += 1000) {
    const results = await g.send(events.slice(from, from + 1000))
    t.same(results.filter((r) => r.outcome !== 'recorded').slice(0, 3), [], 'recorded')
  }
  // ingestion's histograms (rows started, then completed, included) count exactly the raw rows' buckets
  const differences = await histogramDifferences(g.app.pg)
  t.same([differences.model, differences.provider], [[], []], `${differences.pairs} (bucket, latency bucket) counts, as the raw rows`)
  // usage forgets a deleted provider, the rollups keep its id: both read as "no provider"
  await g.adminCall('DELETE', `/api/admin/providers/${providers[2]!.id}`)

  const sql = async (text: string, params: unknown[]) => (await g.app.pg.query(text, params)).rows
  const exact = async (from: string, to: string, where: string, params: unknown[]) => {
    const [r] = await sql(`
      SELECT count(response_time_ms)::int AS rtn, count(first_byte_time_ms)::int AS fbn,
             percentile_disc(0.5) WITHIN GROUP (ORDER BY response_time_ms) AS rt50, percentile_disc(0.9) WITHIN GROUP (ORDER BY response_time_ms) AS rt90,
             percentile_disc(0.99) WITHIN GROUP (ORDER BY response_time_ms) AS rt99, percentile_disc(0.5) WITHIN GROUP (ORDER BY first_byte_time_ms) AS fb50,
             percentile_disc(0.9) WITHIN GROUP (ORDER BY first_byte_time_ms) AS fb90, percentile_disc(0.99) WITHIN GROUP (ORDER BY first_byte_time_ms) AS fb99
        FROM usage WHERE ${FINISHED} AND created_at >= $1 AND created_at < $2 ${where}`, [from, to, ...params])
    return r
  }
  const iso = (ms: number) => new Date(ms).toISOString()
  const ragged = `start_date=${iso(FROM + 5 * HOUR + 17 * 60_000 + 123)}&end_date=${iso(FROM + 97 * HOUR + 41 * 60_000)}`
  const filters: Array<[string, string, unknown[]]> = [
    ['', '', []],
    [`&provider_id=${providers[0]!.id}`, 'AND provider_id = $3', [providers[0]!.id]],
    [`&provider_id=${providers[1]!.name}&model=gpt-y`, 'AND provider_id = $3 AND model = $4', [providers[1]!.id, 'gpt-y']],
    ['&model=gem-z', 'AND model = $3', ['gem-z']]
  ]
  const cases = [
    `${ragged}&timezone=UTC`, `${ragged}&timezone=Europe/Berlin`, `${ragged}&timezone=Asia/Kolkata`, `${ragged}&tz_offset_minutes=330&granularity=week`,
    `${ragged}&granularity=hour&timezone=Asia/Kolkata`, 'start_date=2026-10-24&end_date=2026-10-26&timezone=Europe/Berlin', `${ragged}&granularity=month&timezone=Europe/Berlin`
  ]
  let checked = 0
  let worst = 0
  const compare = (label: string, point: Json, r: Json) => {
    t.equal(point.response_time_samples, r.rtn, `${label}: response time samples`)
    t.equal(point.first_byte_time_samples, r.fbn, `${label}: first byte samples`)
    for (const [field, value, n] of [
      ['p50_response_time_ms', r.rt50, r.rtn], ['p90_response_time_ms', r.rt90, r.rtn], ['p99_response_time_ms', r.rt99, r.rtn],
      ['p50_first_byte_time_ms', r.fb50, r.fbn], ['p90_first_byte_time_ms', r.fb90, r.fbn], ['p99_first_byte_time_ms', r.fb99, r.fbn]
    ] as Array<[string, number | null, number]>) {
      if (n < 10) { t.equal(point[field], null, `${label} ${field}: null below 10 samples`); continue }
      const error = value === 0 ? point[field] : Math.abs(point[field] - value!) / value!
      if (error > worst) worst = error
      if (!(error <= LATENCY_RELATIVE_ERROR)) t.fail(`${label} ${field}: ${point[field]} against exact ${value} (${n} samples)`)
      checked++
    }
  }
  for (const query of cases) {
    for (const [filter, where, params] of filters) {
      const url = `/api/admin/stats/performance/percentiles?${query}${filter}`
      const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
      t.equal(res.statusCode, 200, url)
      const points = res.json()
      for (let i = 1; i < points.length; i++) if (points[i].start !== points[i - 1].end) t.fail(`${url}: buckets meet`)
      for (const p of points) compare(`${url} ${p.date}`, p, await exact(p.start, p.end, where, params))
    }
    // grouped: one point per bucket and group; no provider (or the deleted one) under null
    for (const group of ['provider', 'model']) {
      const url = `/api/admin/stats/performance/percentiles?${query}&group_by=${group}`
      const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
      t.equal(res.statusCode, 200, url)
      const points = res.json()
      const keys = new Set(points.map((p: Json) => p.group_key))
      t.equal(keys.size, group === 'provider' ? 3 : 3, `${url}: the groups`)
      if (group === 'provider') t.ok(keys.has(null) && !keys.has(providers[2]!.id), 'the deleted provider reads as none')
      for (const p of points) {
        const where = p.group_key === null ? 'AND provider_id IS NULL' : group === 'provider' ? 'AND provider_id = $3' : 'AND model = $3'
        compare(`${url} ${p.date} ${String(p.group_key)}`, p, await exact(p.start, p.end, where, p.group_key === null ? [] : [p.group_key]))
        if (group === 'provider' && p.group_key !== null) t.equal(p.group_name, providers.find((x) => x.id === p.group_key)!.name)
      }
    }
  }
  t.comment(`${checked} percentiles compared, worst relative error ${(worst * 100).toFixed(2)} %`)
  t.ok(checked > 500, `${checked} percentiles with 10 samples or more`)

  // Berlin's 2026-10-25 has 25 hours
  const [day] = (await g.app.inject({ method: 'GET', url: '/api/admin/stats/performance/percentiles?start_date=2026-10-25&end_date=2026-10-25&timezone=Europe/Berlin', headers: g.admin.headers })).json()
  t.same([day.start, day.end, day.max_relative_error_percent, day.group_by, day.group_key], ['2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z', 5, 'none', null])

  const refused = async (query: string, field: string) => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/stats/performance/percentiles?${query}`, headers: g.admin.headers })
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().error.field, field, query)
  }
  await refused('start_date=2026-01-01&end_date=2026-03-01&granularity=hour', 'querystring.granularity')
  await refused('granularity=minute', 'querystring.granularity')
  await refused('group_by=user', 'querystring.group_by')
  await refused('timezone=Mars/Olympus', 'querystring.timezone')
  await refused('provider_id=nobody', 'querystring.provider_id')
  await refused('start_date=2026-01-01&end_date=2027-06-01', 'querystring.end_date')
  await refused('start_date=2026-01-02&end_date=2026-01-01', 'querystring.start_date')
  await refused('model=', 'querystring.model')
})
