// The heatmap's rollups (usage_hourly_global, usage_quarter_hourly_global) after real
// ingestion: each equals a GROUP BY over the raw finished rows, summed here in
// TypeScript from the rows read back; in-flight and replaced rows count once or not at
// all; deleting a provider leaves them as they are (its requests still happened); and
// the heatmap's days in a +05:30 zone equal the raw rows grouped by local day.
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'

interface Sums { requests: number, total_tokens: number, total_cost: bigint, actual_total_cost: bigint }

const HOUR_MS = 3_600_000
const QUARTER_MS = 900_000

/** The finished usage rows grouped by the bucket `of` gives, as strings for comparison. */
function grouped (rows: Json[], of: (at: Date) => string): Record<string, Sums> {
  const out: Record<string, Sums> = {}
  for (const row of rows) {
    if (!['completed', 'failed', 'cancelled'].includes(row.status)) continue
    const key = of(row.created_at)
    const sums = out[key] ??= { requests: 0, total_tokens: 0, total_cost: 0n, actual_total_cost: 0n }
    sums.requests += 1
    sums.total_tokens += row.total_tokens
    sums.total_cost += BigInt(row.total_cost)
    sums.actual_total_cost += BigInt(row.actual_total_cost)
  }
  return out
}

const floorTo = (ms: number) => (at: Date) => new Date(Math.floor(at.getTime() / ms) * ms).toISOString()

t.test('the heatmap rollups are the raw finished rows grouped, through ingestion and a provider delete', async (t) => {
  const g = await gateway(t)
  const [first, second] = [await g.provider('first'), await g.provider('second')]
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  const ids = (provider: Json) => ({ provider_id: provider.id })
  // three UTC hours, both sides of 18:30 (a +05:30 midnight), two providers and none
  const at = (hhmm: string) => `2026-03-04T${hhmm}:00.000Z`
  const done = (id: string, created: string, more: object = {}) =>
    ({ type: 'complete', request_id: id, api_key_id: key.id, model: 'm', created_at: at(created), status: 'completed', input_tokens: 1000, output_tokens: 100, ...more })
  await g.send([
    done('a', '17:05', ids(first)),
    done('b', '18:10', { ...ids(second), input_tokens: 2000 }),
    done('c', '18:40', ids(first)),
    done('d', '18:44', { status: 'failed', status_code: 502, output_tokens: 0 }),
    done('e', '19:59', ids(second)),
    // in flight: counted nowhere
    { type: 'start', request_id: 'f', api_key_id: key.id, model: 'm', created_at: at('18:50'), ...ids(first) }
  ])
  // a second batch: a start completed later, and a completion replacing one already counted
  await g.send([{ type: 'start', request_id: 'g', api_key_id: key.id, model: 'm', created_at: at('18:20'), ...ids(first) }])
  await g.send([
    done('g', '18:20', { ...ids(first), output_tokens: 300 }),
    done('b', '18:10', { ...ids(second), input_tokens: 2500 })
  ])

  const check = async (label: string) => {
    const rows = await g.app.prisma.$queryRawUnsafe<Json[]>('SELECT status::text AS status, created_at, total_tokens, total_cost, actual_total_cost FROM usage')
    const stored = async (table: string) => Object.fromEntries((await g.app.prisma.$queryRawUnsafe<Json[]>(
      `SELECT bucket, requests, total_tokens, total_cost, actual_total_cost FROM ${table} WHERE requests <> 0 OR total_tokens <> 0 OR total_cost <> 0 ORDER BY bucket`))
      .map((r) => [r.bucket.toISOString(), { requests: r.requests, total_tokens: Number(r.total_tokens), total_cost: r.total_cost, actual_total_cost: r.actual_total_cost }]))
    t.same(await stored('usage_hourly_global'), grouped(rows, floorTo(HOUR_MS)), `${label}: usage_hourly_global`)
    t.same(await stored('usage_quarter_hourly_global'), grouped(rows, floorTo(QUARTER_MS)), `${label}: usage_quarter_hourly_global`)
    return rows
  }
  const rows = await check('after ingestion')
  t.equal(rows.filter((r) => r.status === 'pending').length, 1, 'one request still in flight')
  const hours = await g.app.prisma.$queryRawUnsafe<Json[]>('SELECT bucket, requests FROM usage_hourly_global ORDER BY bucket')
  t.same(hours.map((h) => [h.bucket.toISOString(), h.requests]), [[at('17:00'), 1], [at('18:00'), 4], [at('19:00'), 1]], 'by hand: the hours\' requests')

  // the heatmap in +05:30: the local day of 2026-03-05 starts at 18:30 UTC on the 4th
  const heatmap = async () => {
    const res = await g.app.inject({ method: 'GET', url: '/api/admin/usage/heatmap?timezone=Asia/Kolkata', headers: g.admin.headers })
    t.equal(res.statusCode, 200, 'heatmap answered')
    return Object.fromEntries((res.json().days as Json[]).filter((d) => d.requests > 0).map((d) => [d.date, d.requests]))
  }
  // by hand: 17:05, 18:10 and 18:20 UTC are the evening of the 4th there; 18:40, 18:44 (failed) and 19:59 the night of the 5th
  t.same(await heatmap(), { '2026-03-04': 3, '2026-03-05': 3 }, 'Asia/Kolkata: the days cut at 18:30 UTC')

  await g.adminCall('DELETE', `/api/admin/providers/${first.id}`)
  await check('after the first provider\'s delete')
  t.same(await heatmap(), { '2026-03-04': 3, '2026-03-05': 3 }, 'the deleted provider\'s requests still happened')
})
