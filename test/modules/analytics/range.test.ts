// The analytics time range (src/modules/analytics/range.ts): every expected instant is
// worked out by hand from the zone's rules, written in the comment beside it.
import t from 'tap'
import { Civil, presetRange, resolveRange, Zone, zoneOf, type RangeQuery } from '../../../src/modules/analytics/range.js'
import type { TimeZones } from '../../../src/lib/time.js'

const berlin = Zone.iana('Europe/Berlin')
const kolkata = Zone.iana('Asia/Kolkata')
const iso = (ms: number | Date) => new Date(ms).toISOString()
const range = (query: RangeQuery, zone: Zone, now = '2026-12-02T10:00:00Z') => {
  const r = resolveRange(query, zone, new Date(now))
  return [iso(r.start), iso(r.end)]
}

t.test('dates are local days: a DST day is 23 or 25 hours, +05:30 starts on the half hour', async (t) => {
  // Berlin springs forward 2026-03-29 02:00 CET → 03:00 CEST: midnight is 23:00Z before, 22:00Z after
  t.same(range({ start_date: '2026-03-29', end_date: '2026-03-29' }, berlin), ['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'])
  // and falls back 2026-10-25 03:00 CEST → 02:00 CET: 25 hours
  t.same(range({ start_date: '2026-10-25', end_date: '2026-10-25' }, berlin), ['2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'])
  // India, UTC+05:30 all year, by name and as Aether's offset
  t.same(range({ start_date: '2026-01-15', end_date: '2026-01-15' }, kolkata), ['2026-01-14T18:30:00.000Z', '2026-01-15T18:30:00.000Z'])
  t.same(range({ start_date: '2026-01-15', end_date: '2026-01-15' }, Zone.fixed(330)), ['2026-01-14T18:30:00.000Z', '2026-01-15T18:30:00.000Z'])
  // west of UTC: -300 is UTC-5
  t.same(range({ start_date: '2026-01-15', end_date: '2026-01-16' }, Zone.fixed(-300)), ['2026-01-15T05:00:00.000Z', '2026-01-17T05:00:00.000Z'])
  // instants are taken as given, and may mix with a date
  t.same(range({ start_date: '2026-01-15T10:20:30+02:00', end_date: '2026-01-15' }, berlin), ['2026-01-15T08:20:30.000Z', '2026-01-15T23:00:00.000Z'])
  t.same(range({ start_date: '2026-01-15T10:20:30.5Z', end_date: '2026-01-15T11:00:00Z' }, berlin), ['2026-01-15T10:20:30.500Z', '2026-01-15T11:00:00.000Z'])
  // no end: up to now, now included
  t.same(range({ start_date: '2026-12-01' }, berlin), ['2026-11-30T23:00:00.000Z', '2026-12-02T10:00:00.001Z'])
})

t.test('a midnight a spring-forward skips starts its day at the end of the gap', async (t) => {
  // Chile springs forward 2026-09-06 at 00:00 (-04) → 01:00 (-03): the day starts at 04:00Z
  const santiago = Zone.iana('America/Santiago')
  t.equal(iso(santiago.midnight(Date.UTC(2026, 8, 6))), '2026-09-06T04:00:00.000Z')
  t.equal(iso(santiago.midnight(Date.UTC(2026, 8, 7))), '2026-09-07T03:00:00.000Z')
  // a wall time a fall-back repeats is its first occurrence: Berlin 2026-10-25 02:30 is 00:30Z (CEST), not 01:30Z
  t.equal(iso(berlin.instantOf(Date.UTC(2026, 9, 25, 2, 30))), '2026-10-25T00:30:00.000Z')
  t.equal(berlin.offsetMinutes(Date.parse('2026-07-01T00:00:00Z')), 120)
  t.equal(Zone.fixed(-90).name, '-01:30')
  t.equal(Zone.fixed(330).name, '+05:30')
})

t.test('presets in the zone at a fixed now (Wednesday 2026-12-02 11:00 in Berlin)', async (t) => {
  const now = Date.parse('2026-12-02T10:00:00Z')
  const preset = (p: Parameters<typeof presetRange>[0], zone = berlin) => presetRange(p, zone, now).map(iso)
  const soFar = '2026-12-02T10:00:00.001Z'
  t.same(preset('today'), ['2026-12-01T23:00:00.000Z', soFar])
  t.same(preset('yesterday'), ['2026-11-30T23:00:00.000Z', '2026-12-01T23:00:00.000Z'])
  // today and the 6 days before: from 2026-11-26
  t.same(preset('last7days'), ['2026-11-25T23:00:00.000Z', soFar])
  // from 2026-11-03
  t.same(preset('last30days'), ['2026-11-02T23:00:00.000Z', soFar])
  // from 2026-09-04, still summer time (CEST): 22:00Z
  t.same(preset('last90days'), ['2026-09-03T22:00:00.000Z', soFar])
  // ISO weeks from Monday 2026-11-30
  t.same(preset('this_week'), ['2026-11-29T23:00:00.000Z', soFar])
  t.same(preset('last_week'), ['2026-11-22T23:00:00.000Z', '2026-11-29T23:00:00.000Z'])
  t.same(preset('this_month'), ['2026-11-30T23:00:00.000Z', soFar])
  // November: its first midnight is after the fall-back (CET)
  t.same(preset('last_month'), ['2026-10-31T23:00:00.000Z', '2026-11-30T23:00:00.000Z'])
  t.same(preset('this_year'), ['2025-12-31T23:00:00.000Z', soFar])
  // UTC-5 at 03:00Z is still 2026-12-01 22:00: today is the 1st
  t.same(presetRange('today', Zone.fixed(-300), Date.parse('2026-12-02T03:00:00Z')).map(iso), ['2026-12-01T05:00:00.000Z', '2026-12-02T03:00:00.001Z'])
  // +05:30: 15:30 local on the 2nd
  t.same(preset('today', kolkata), ['2026-12-01T18:30:00.000Z', soFar])
  // January: last_month is the previous year's December
  t.same(presetRange('last_month', berlin, Date.parse('2026-01-10T00:00:00Z')).map(iso), ['2025-11-30T23:00:00.000Z', '2025-12-31T23:00:00.000Z'])
  // no preset and no dates: the last 30 days
  t.same(range({}, berlin), ['2026-11-02T23:00:00.000Z', soFar])
  t.same(range({ preset: 'yesterday' }, berlin), ['2026-11-30T23:00:00.000Z', '2026-12-01T23:00:00.000Z'])
})

t.test('every bad value is a 400 naming its field', async (t) => {
  const refusal = (query: RangeQuery, field: string, message: RegExp) => {
    t.throws(() => resolveRange(query, berlin, new Date('2026-12-02T10:00:00Z')), { code: 'KM_INVALID_INPUT', statusCode: 400, field, message }, `${JSON.stringify(query)}`)
  }
  refusal({ preset: 'today', start_date: '2026-01-01' }, 'querystring.preset', /cannot be given/)
  refusal({ end_date: '2026-01-01' }, 'querystring.start_date', /required with end_date/)
  refusal({ start_date: '2026-02-30', end_date: '2026-03-01' }, 'querystring.start_date', /calendar date/)
  refusal({ start_date: '2026-01-01', end_date: '2026-1-2' }, 'querystring.end_date', /YYYY-MM-DD/)
  refusal({ start_date: '2026-01-01T00:00:00', end_date: '2026-01-02' }, 'querystring.start_date', /offset/)
  refusal({ start_date: '1999-12-31', end_date: '2000-01-02' }, 'querystring.start_date', /from 2000/)
  refusal({ start_date: '2026-01-01', end_date: '3000-01-01' }, 'querystring.end_date', /before 3000/)
  refusal({ start_date: '2026-01-02', end_date: '2026-01-01' }, 'querystring.start_date', /before end_date/)
  refusal({ start_date: '2026-01-01T10:00:00Z', end_date: '2026-01-01T10:00:00Z' }, 'querystring.start_date', /before end_date/)
  // 2024 is a leap year: its 366 days pass, a day more does not
  t.same(range({ start_date: '2024-01-01', end_date: '2024-12-31' }, berlin), ['2023-12-31T23:00:00.000Z', '2024-12-31T23:00:00.000Z'])
  refusal({ start_date: '2024-01-01', end_date: '2025-01-01' }, 'querystring.end_date', /at most 366 days/)
  // 366 local days from winter into summer are an hour short of 366 × 24 h, and pass; an instant a minute later does not
  // (2025-03-29 is CET, 2026-03-30 CEST: 2025-03-28T23:00Z … 2026-03-29T22:00Z)
  t.same(range({ start_date: '2025-03-29', end_date: '2026-03-29' }, berlin), ['2025-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'])
  refusal({ start_date: '2025-03-29', end_date: '2026-03-29T22:01:00Z' }, 'querystring.end_date', /at most 366 days/)
})

t.test('the zone: timezone wins, else the offset, else APP_TIMEZONE', async (t) => {
  const zones = { require: (zone: string) => zone === 'europe/berlin' ? 'Europe/Berlin' : zone } as unknown as TimeZones
  t.equal(zoneOf({ timezone: 'europe/berlin', tz_offset_minutes: 60 }, zones, 'UTC').name, 'Europe/Berlin')
  t.equal(zoneOf({ tz_offset_minutes: 480 }, zones, 'UTC').name, '+08:00')
  t.equal(zoneOf({}, zones, 'Asia/Kolkata').name, 'Asia/Kolkata')
})

t.test('civil calendar', async (t) => {
  // 2026-12-06 is a Sunday: its ISO week began Monday 2026-11-30
  t.equal(Civil.label(Civil.weekStart(Date.UTC(2026, 11, 6))), '2026-11-30')
  t.equal(Civil.label(Civil.weekStart(Date.UTC(2026, 10, 30))), '2026-11-30')
  t.equal(Civil.label(Civil.addMonths(Date.UTC(2026, 11, 15), 1)), '2027-01-01')
})
