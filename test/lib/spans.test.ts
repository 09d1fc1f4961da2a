// How a range is cut into rollup spans and raw edges (src/lib/spans.ts), for the admin
// statistics and the key holders' stats alike.
import t from 'tap'
import { dayPlan, hourPlan, quarterCut } from '../../src/lib/spans.js'
import { mulberry32, testSeed } from '../prng.js'

t.test('dayPlan: raw edges, whole UTC hours, whole UTC days', async (t) => {
  // the cut points, in order: raw [start, hourStart), hourly [hourStart, dayStart), daily [dayStart, dayEnd), hourly [dayEnd, hourEnd), raw [hourEnd, end)
  const parts = (start: string, end: string) => {
    const p = dayPlan({ start: new Date(start), end: new Date(end) })
    t.same([p.edges[0].to, p.hours[0].to, p.days.to, p.hours[1].to], [p.hours[0].from, p.days.from, p.hours[1].from, p.edges[1].from], 'the spans meet')
    const cuts = { start: p.edges[0].from, hourStart: p.hours[0].from, dayStart: p.days.from, dayEnd: p.days.to, hourEnd: p.hours[1].to, end: p.edges[1].to }
    return Object.fromEntries(Object.entries(cuts).map(([k, v]) => [k, v.toISOString()]))
  }
  // Kathmandu's day: 18:15 UTC to 18:15 UTC — no whole UTC day inside, hours 19:00..18:00
  t.same(parts('2026-03-09T18:15:00.000Z', '2026-03-10T18:15:00.000Z'), {
    start: '2026-03-09T18:15:00.000Z', hourStart: '2026-03-09T19:00:00.000Z', dayStart: '2026-03-10T18:00:00.000Z',
    dayEnd: '2026-03-10T18:00:00.000Z', hourEnd: '2026-03-10T18:00:00.000Z', end: '2026-03-10T18:15:00.000Z'
  })
  // a month in Kathmandu: whole days in the middle, whole hours and raw minutes at both ends
  t.same(parts('2026-02-28T18:15:00.000Z', '2026-03-31T18:15:00.000Z'), {
    start: '2026-02-28T18:15:00.000Z', hourStart: '2026-02-28T19:00:00.000Z', dayStart: '2026-03-01T00:00:00.000Z',
    dayEnd: '2026-03-31T00:00:00.000Z', hourEnd: '2026-03-31T18:00:00.000Z', end: '2026-03-31T18:15:00.000Z'
  })
  // UTC: days only
  t.same(parts('2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z'), {
    start: '2026-03-01T00:00:00.000Z', hourStart: '2026-03-01T00:00:00.000Z', dayStart: '2026-03-01T00:00:00.000Z',
    dayEnd: '2026-04-01T00:00:00.000Z', hourEnd: '2026-04-01T00:00:00.000Z', end: '2026-04-01T00:00:00.000Z'
  })
  // inside one hour: all raw
  t.same(parts('2026-03-01T10:05:00.000Z', '2026-03-01T10:55:00.000Z'), {
    start: '2026-03-01T10:05:00.000Z', hourStart: '2026-03-01T10:55:00.000Z', dayStart: '2026-03-01T10:55:00.000Z',
    dayEnd: '2026-03-01T10:55:00.000Z', hourEnd: '2026-03-01T10:55:00.000Z', end: '2026-03-01T10:55:00.000Z'
  })
})

t.test('hourPlan: whole hours, two raw edges; no whole hour → all raw', async (t) => {
  const plan = (start: string, end: string) => {
    const p = hourPlan({ start: new Date(start), end: new Date(end) })
    return [p.edges[0].from, p.edges[0].to, p.hours.from, p.hours.to, p.edges[1].from, p.edges[1].to].map((d) => d.toISOString().slice(11, 16))
  }
  t.same(plan('2026-03-01T10:05:00.000Z', '2026-03-01T13:30:00.000Z'), ['10:05', '11:00', '11:00', '13:00', '13:00', '13:30'])
  t.same(plan('2026-03-01T10:40:00.000Z', '2026-03-01T11:20:00.000Z'), ['10:40', '11:20', '11:20', '11:20', '11:20', '11:20'])
})

t.test('quarterCut: whole quarter-hours inside the hour edges, raw only inside a quarter', async (t) => {
  const cut = (start: string, end: string) => {
    const c = quarterCut({ start: new Date(start), end: new Date(end) })
    const hm = (s: { from: Date, to: Date }) => `${s.from.toISOString().slice(11, 16)}-${s.to.toISOString().slice(11, 16)}`
    return { quarters: c.quarters.map(hm), ragged: c.ragged.map(hm) }
  }
  t.same(cut('2026-03-01T10:05:00.000Z', '2026-03-01T13:30:00.000Z'), { quarters: ['10:15-11:00', '13:00-13:30'], ragged: ['10:05-10:15', '13:30-13:30'] }, 'hours inside')
  t.same(cut('2026-03-01T10:40:00.000Z', '2026-03-01T11:20:00.000Z'), { quarters: ['10:45-11:15', '11:20-11:20'], ragged: ['10:40-10:45', '11:15-11:20'] }, 'no whole hour')
  t.same(cut('2026-03-01T10:05:00.000Z', '2026-03-01T10:10:00.000Z'), { quarters: ['10:10-10:10', '10:10-10:10'], ragged: ['10:05-10:10', '10:10-10:10'] }, 'inside one quarter: all raw')
  t.same(cut('2026-03-09T18:15:00.000Z', '2026-03-10T18:15:00.000Z'), { quarters: ['18:15-19:00', '18:00-18:15'], ragged: ['18:15-18:15', '18:15-18:15'] }, "Kathmandu's day: no raw row")

  // with dayPlan's days and hours, every instant of a range falls in exactly one span (fixed seed, printed)
  const random = mulberry32(testSeed(t))
  const MINUTE = 60_000
  for (let i = 0; i < 300; i++) {
    const start = Date.UTC(2026, 2, 1) + Math.floor(random() * 5 * 24 * 60) * MINUTE + Math.floor(random() * 60) * 1000
    const end = start + Math.floor(random() * [20, 200, 4000][i % 3]!) * MINUTE + Math.floor(random() * 60) * 1000
    const range = { start: new Date(start), end: new Date(end) }
    const p = dayPlan(range)
    const q = quarterCut(range)
    const spans = [p.days, ...p.hours, ...q.quarters, ...q.ragged].filter((s) => s.from < s.to).sort((a, b) => a.from.getTime() - b.from.getTime())
    let at = start
    for (const s of spans) {
      if (s.from.getTime() !== at) break
      at = s.to.getTime()
    }
    if (at !== end) t.fail(`[${range.start.toISOString()}, ${range.end.toISOString()}): the spans do not tile it`)
    for (const s of q.quarters) if (s.from < s.to && (s.from.getTime() % 900_000 !== 0 || s.to.getTime() % 900_000 !== 0)) t.fail('a quarter run off the quarter-hour')
    // a raw edge lies inside one quarter-hour, or the range holds no whole one (then at most two cut ones)
    const whole = q.quarters.some((s) => s.from < s.to) || p.days.from < p.days.to || p.hours.some((s) => s.from < s.to)
    for (const s of q.ragged) if (s.to.getTime() - s.from.getTime() >= (whole ? 900_000 : 1_800_000)) t.fail(`[${range.start.toISOString()}, ${range.end.toISOString()}): a raw edge too long`)
  }
  t.pass('300 ranges tiled')
})
