// The analytics' read plans (queries.ts readPlan, percentiles.ts dayPlan), worked out by
// hand: which quarter-hours of the cut hours a rollup answers and which raw ranges are
// left, and which UTC days and hours answer the percentiles' whole hours. Every hour of
// the range is counted exactly once in its own bucket, whatever the plan.
import t from 'tap'
import { bucketsOf, type Bucket } from '../../../src/modules/analytics/buckets.js'
import { dayPlan } from '../../../src/modules/analytics/percentiles.js'
import { readPlan } from '../../../src/modules/analytics/queries.js'
import { Zone } from '../../../src/modules/analytics/range.js'

const HOUR = 3_600_000
const iso = (ms: number | Date) => new Date(ms).toISOString()
const at = (text: string) => Date.parse(text)
const bucketsIn = (zone: Zone, from: string, to: string, granularity: 'hour' | 'day' | 'week' | 'month' = 'day') =>
  bucketsOf({ start: new Date(from), end: new Date(to), zone }, granularity)

t.test('readPlan: the quarter-hours of the cut hours, raw rows only where a quarter is cut', async (t) => {
  // Kolkata days, ragged ends: 2026-01-10T05:17Z … 2026-01-12T20:41Z; midnights 18:30Z
  const buckets = bucketsIn(Zone.iana('Asia/Kolkata'), '2026-01-10T05:17:00Z', '2026-01-12T20:41:00Z')
  const plain = readPlan(buckets)
  t.same(plain.cutHours.map(iso), ['2026-01-10T05:00:00.000Z', '2026-01-10T18:00:00.000Z', '2026-01-11T18:00:00.000Z', '2026-01-12T18:00:00.000Z', '2026-01-12T20:00:00.000Z'])
  t.same(plain.quarters, [], 'no quarters unless asked')
  t.same(plain.raw.map((s) => [iso(s.from), iso(s.to)]), [
    ['2026-01-10T05:17:00.000Z', '2026-01-10T06:00:00.000Z'], ['2026-01-10T18:00:00.000Z', '2026-01-10T19:00:00.000Z'],
    ['2026-01-11T18:00:00.000Z', '2026-01-11T19:00:00.000Z'], ['2026-01-12T18:00:00.000Z', '2026-01-12T19:00:00.000Z'],
    ['2026-01-12T20:00:00.000Z', '2026-01-12T20:41:00.000Z']
  ], 'every cut hour raw, clipped to the range')
  const plan = readPlan(buckets, true)
  t.same(plan.quarters.map(iso), [
    '2026-01-10T05:30:00.000Z', '2026-01-10T05:45:00.000Z',
    '2026-01-10T18:00:00.000Z', '2026-01-10T18:15:00.000Z', '2026-01-10T18:30:00.000Z', '2026-01-10T18:45:00.000Z',
    '2026-01-11T18:00:00.000Z', '2026-01-11T18:15:00.000Z', '2026-01-11T18:30:00.000Z', '2026-01-11T18:45:00.000Z',
    '2026-01-12T18:00:00.000Z', '2026-01-12T18:15:00.000Z', '2026-01-12T18:30:00.000Z', '2026-01-12T18:45:00.000Z',
    '2026-01-12T20:00:00.000Z', '2026-01-12T20:15:00.000Z'
  ], 'the midnights\' hours whole from the quarter-hours, the ends\' whole quarters too')
  t.same(plan.raw.map((s) => [iso(s.from), iso(s.to)]), [['2026-01-10T05:17:00.000Z', '2026-01-10T05:30:00.000Z'], ['2026-01-12T20:30:00.000Z', '2026-01-12T20:41:00.000Z']],
    'raw rows: only the ends\' cut quarters')
  t.same(plan.whole, plain.whole)

  // +05:37 (an offset off the quarter-hour, as a local mean time): the midnight's quarter is raw, its hour's other three are not
  const odd = readPlan(bucketsIn(Zone.fixed(337), '2026-01-10T00:00:00Z', '2026-01-11T06:00:00Z'), true)
  t.same(odd.quarters.map(iso), ['2026-01-10T18:00:00.000Z', '2026-01-10T18:30:00.000Z', '2026-01-10T18:45:00.000Z'])
  t.same(odd.raw.map((s) => [iso(s.from), iso(s.to)]), [['2026-01-10T18:15:00.000Z', '2026-01-10T18:30:00.000Z']])
})

/** Each whole hour's total weight per bucket under a day plan (days expanded to their hours): must be 1 in its own bucket, 0 elsewhere. */
function weights (buckets: Bucket[], plan: ReturnType<typeof readPlan>, days: ReturnType<typeof dayPlan>) {
  const w = new Map<string, number>()
  const add = (hour: number, i: number, sign: number) => w.set(`${hour}|${i}`, (w.get(`${hour}|${i}`) ?? 0) + sign)
  for (const d of days.days) for (let h = Date.parse(`${d.day}T00:00:00Z`); h < Date.parse(`${d.day}T00:00:00Z`) + 24 * HOUR; h += HOUR) add(h, d.i, 1)
  for (const h of days.hours) add(h.at, h.i, h.sign)
  const cut = new Set(plan.cutHours.map((h) => h.getTime()))
  const problems: string[] = []
  for (let h = plan.whole.from.getTime(); h < plan.whole.to.getTime(); h += HOUR) {
    const own = buckets.findIndex((b) => b.start <= h && h < b.end)
    for (let i = 0; i < buckets.length; i++) {
      const expected = !cut.has(h) && i === own ? 1 : 0
      if ((w.get(`${h}|${i}`) ?? 0) !== expected) problems.push(`${iso(h)} in bucket ${i}: ${w.get(`${h}|${i}`) ?? 0}`)
    }
  }
  return problems
}

t.test('dayPlan: whole UTC days from the daily rollup, a few hours a day beside them', async (t) => {
  // Berlin, 30 days to a ragged now: each local day is a UTC day, one hour out (the 23:00Z hour goes to the next day), one in
  const berlin = bucketsIn(Zone.iana('Europe/Berlin'), '2026-11-02T23:00:00Z', '2026-12-02T10:17:00Z')
  const plan = readPlan(berlin)
  const days = dayPlan(berlin, plan)
  t.equal(days.days.length, 29, '29 whole UTC days')
  t.same(days.days.slice(0, 2), [{ day: '2026-11-03', i: 0 }, { day: '2026-11-04', i: 1 }], 'UTC day D in local day D')
  t.same(days.hours.filter((h) => h.at >= at('2026-11-03T00:00:00Z') && h.at < at('2026-11-04T00:00:00Z')),
    [{ at: at('2026-11-03T23:00:00Z'), i: 0, sign: -1 }, { at: at('2026-11-03T23:00:00Z'), i: 1, sign: 1 }], '23:00Z moved to the next local day')
  t.ok(days.hours.length <= 29 * 2 + 24 + 10, `${days.hours.length} hourly rows (720 without days)`)
  t.same(weights(berlin, plan, days), [], 'every whole hour once, in its bucket')

  // a DST change (Berlin 2026-10-25, 25 hours), Kolkata (cut hours taken out of the day), New York, weeks, months, hours, a +14 zone
  const cases: Array<[Zone, string, string, 'hour' | 'day' | 'week' | 'month']> = [
    [Zone.iana('Europe/Berlin'), '2026-10-20T05:17:00Z', '2026-10-30T22:41:00Z', 'day'],
    [Zone.iana('Asia/Kolkata'), '2026-01-10T05:17:00Z', '2026-01-20T20:41:00Z', 'day'],
    [Zone.iana('America/New_York'), '2026-03-01T00:00:00Z', '2026-03-20T00:00:00Z', 'day'],
    [Zone.iana('Europe/Berlin'), '2026-01-01T00:00:00Z', '2026-03-01T00:00:00Z', 'week'],
    [Zone.iana('Asia/Kolkata'), '2026-01-01T00:00:00Z', '2026-04-01T00:00:00Z', 'month'],
    [Zone.iana('Europe/Berlin'), '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z', 'hour'],
    [Zone.fixed(840), '2026-01-01T00:00:00Z', '2026-01-10T00:00:00Z', 'day'],
    [Zone.fixed(-720), '2026-01-01T00:00:00Z', '2026-01-10T00:00:00Z', 'day']
  ]
  for (const [zone, from, to, granularity] of cases) {
    const buckets = bucketsIn(zone, from, to, granularity)
    const p = readPlan(buckets)
    const d = dayPlan(buckets, p)
    t.same(weights(buckets, p, d), [], `${zone.name} ${granularity} ${from}…${to}: every whole hour once, in its bucket (${d.days.length} days, ${d.hours.length} hours)`)
    if (granularity === 'hour') t.equal(d.days.length, 0, 'hour buckets read no days')
  }
  const kolkata = dayPlan(bucketsIn(Zone.iana('Asia/Kolkata'), '2026-01-10T05:17:00Z', '2026-01-20T20:41:00Z'), readPlan(bucketsIn(Zone.iana('Asia/Kolkata'), '2026-01-10T05:17:00Z', '2026-01-20T20:41:00Z')))
  t.ok(kolkata.days.length >= 9, `Kolkata reads days too (${kolkata.days.length})`)
})
