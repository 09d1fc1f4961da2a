// How a range is cut into rollup spans and raw edges (src/lib/spans.ts), for the admin
// statistics and the key holders' stats alike.
import t from 'tap'
import { dayPlan, hourPlan } from '../../src/lib/spans.js'

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
