// The interval timeline's even sample against the rule computed here from the raw usage
// rows: each hour's share of the limit (cumulative rounding), its equal slots (the current
// hour's up to `now`), the first point of each slot by (created_at, request_id). Ties in
// time across users and within one, late arrivals, points after `now`, one user's view.
import t from 'tap'
import { intervalTimeline } from '../../../src/modules/cache/service.js'
import { mulberry32, testSeed } from '../../prng.js'
import { gateway, type Json } from '../gateway/fixtures.js'

const MIN = 60_000
const HOUR = 60 * MIN

interface RawPoint { at: number, rid: string, userId: string, model: string, gap: number }

/** Timeline points from completed usage rows: each request whose gap to its user's previous one is at most 120 minutes. */
function pointsOf (rows: Array<{ user_id: string, created_at: Date, request_id: string, model: string }>): RawPoint[] {
  const byUser = new Map<string, typeof rows>()
  for (const row of rows) byUser.set(row.user_id, [...byUser.get(row.user_id) ?? [], row])
  const points: RawPoint[] = []
  for (const [userId, list] of byUser) {
    list.sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || (a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : 0))
    list.forEach((row, i) => {
      const gap = i === 0 ? Infinity : row.created_at.getTime() - list[i - 1]!.created_at.getTime()
      if (gap <= 120 * MIN) points.push({ at: row.created_at.getTime(), rid: row.request_id, userId, model: row.model, gap })
    })
  }
  return points.sort((a, b) => a.at - b.at || (a.rid < b.rid ? -1 : 1))
}

/** The documented sample of the points dated from `from` on, at `now`. */
function expectedSample (all: RawPoint[], from: number, now: number, limit: number) {
  const points = all.filter((p) => p.at >= from)
  if (points.length <= limit) return { total: points.length, points }
  const hours = new Map<number, number>()
  for (const p of points) hours.set(Math.floor(p.at / HOUR) * HOUR, (hours.get(Math.floor(p.at / HOUR) * HOUR) ?? 0) + 1)
  const chosen: RawPoint[] = []
  let seen = 0
  for (const [start, count] of [...hours].sort((a, b) => a[0] - b[0])) {
    const share = Math.floor((seen + count) * limit / points.length) - Math.floor(seen * limit / points.length)
    seen += count
    const end = Math.min(start + HOUR, now + 1)
    for (let k = 0; k < share; k++) {
      const lo = start + Math.floor((end - start) * k / share)
      const hi = start + Math.floor((end - start) * (k + 1) / share)
      const first = points.find((p) => p.at >= lo && p.at < hi)
      if (first !== undefined) chosen.push(first)
    }
  }
  return { total: points.length, points: chosen }
}

const shown = (points: RawPoint[]) => points.map((p) => ({ x: new Date(p.at).toISOString(), y: Math.round(p.gap / MIN * 100) / 100, user_id: p.userId, model: p.model }))

t.test('interval-timeline sample: the first point of each slot, as computed from the raw rows', async (t) => {
  const rng = mulberry32(testSeed(t))
  const g = await gateway(t)
  const base = Math.floor(Date.now() / HOUR) * HOUR - 30 * HOUR
  const events: Json[] = []
  const users: Json[] = []
  let firstTimes: number[] = []
  for (let u = 0; u < 3; u++) {
    const user = await g.user()
    const key = await g.userKey(user.id)
    users.push(user)
    // user 2 repeats most of user 0's times exactly (ties across users), and every user has same-millisecond pairs
    const times: number[] = u === 2 ? firstTimes.filter(() => rng() < 0.7) : [base + Math.floor(rng() * 20 * MIN)]
    if (u !== 2) {
      while (times.at(-1)! < base + 9 * HOUR) {
        const r = rng()
        times.push(times.at(-1)! + (r < 0.01 ? 125 * MIN + Math.floor(rng() * 60 * MIN) : r < 0.1 ? 0 : Math.floor(rng() * rng() * 4 * MIN) + Math.floor(rng() * 1000)))
      }
    }
    if (u === 0) firstTimes = times
    times.forEach((at, i) => events.push({
      type: 'complete', request_id: `${key.id}-${String(i).padStart(4, '0')}`, api_key_id: key.id, model: rng() < 0.5 ? 'm1' : 'm2',
      created_at: new Date(at).toISOString(), status: 'completed', input_tokens: 100, output_tokens: 10
    }))
  }
  // random batches in random order: many requests arrive after later ones of their timeline
  events.sort(() => rng() - 0.5)
  for (let i = 0; i < events.length;) {
    const size = 1 + Math.floor(rng() * 80)
    await g.send(events.slice(i, i + size))
    i += size
  }

  const { rows } = await g.app.pg.query(`SELECT user_id, created_at, request_id, model FROM usage WHERE status = 'completed'`)
  const raw = pointsOf(rows)
  t.ok(raw.length > 400, `${raw.length} points in all`)

  // `now` inside the data: the current hour is cut up to it, and the points after it have no slot
  const now = base + 6 * HOUR + 1_234_567
  const from = Math.floor(now / HOUR) * HOUR - 5 * HOUR
  t.ok(raw.some((p) => p.at > now), 'some points come after now')
  // limit 50: over 6 points a slot, each slot probed; the others in one scan
  for (const limit of [50, 100, 137, 250]) {
    const got = await intervalTimeline(g.app.pg, { hours: 5, limit }, null, new Date(now))
    const want = expectedSample(raw, from, now, limit)
    t.ok(want.total > limit, `${want.total} points in the window, over ${limit}`)
    t.equal(got.total_points, want.total, `limit ${limit}: total`)
    t.same(got.points, shown(want.points), `limit ${limit}: the same ${want.points.length} points`)
  }

  // one user's timeline, and a whole window in the past through HTTP
  const one = users[0]!.id as string
  const mine = raw.filter((p) => p.userId === one)
  const got = await intervalTimeline(g.app.pg, { hours: 5, limit: 100, user_id: one }, null, new Date(now))
  const want = expectedSample(mine, from, now, 100)
  t.ok(want.total > 100, `user: ${want.total} points`)
  t.same({ total: got.total_points, points: got.points }, { total: want.total, points: shown(want.points) }, 'one user: the same sample')
  const realNow = Date.now()
  const res = await g.adminCall('GET', '/api/admin/usage/cache-affinity/interval-timeline?hours=48&limit=150')
  const whole = expectedSample(raw, Math.floor(realNow / HOUR) * HOUR - 48 * HOUR, realNow, 150)
  t.same({ total: res.total_points, points: res.points }, { total: whole.total, points: shown(whole.points) }, 'the whole data set, over HTTP')
})

t.test('interval-timeline sample: a point on a slot edge that is not a whole millisecond opens that slot', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const start = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR
  // `now` 1233 ms into its hour: 100 slots of 12.34 ms, so slot k starts at ⌊12.34·k⌋ ms
  const now = start + 1233
  const edges = Array.from({ length: 100 }, (_, k) => Math.floor(1234 * k / 100))
  const offsets = [...new Set([...edges, ...Array.from({ length: 176 }, (_, i) => 7 * i + 3)])].sort((a, b) => a - b)
  const times = [start - 10 * MIN, ...offsets.map((d) => start + d)]
  await g.send(times.map((at, i) => ({
    type: 'complete', request_id: `${key.id}-${String(i).padStart(4, '0')}`, api_key_id: key.id, model: 'm1',
    created_at: new Date(at).toISOString(), status: 'completed', input_tokens: 100, output_tokens: 10
  })))
  const { rows } = await g.app.pg.query(`SELECT user_id, created_at, request_id, model FROM usage WHERE status = 'completed'`)
  const want = expectedSample(pointsOf(rows), start - HOUR, now, 100)
  t.equal(want.points.length, 100, 'every slot has its edge point')
  t.same(want.points.map((p) => p.at - start), edges, 'the rule picks the edge points')
  const got = await intervalTimeline(g.app.pg, { hours: 1, limit: 100 }, null, new Date(now))
  t.same(got.points, shown(want.points), 'the same points')
})
