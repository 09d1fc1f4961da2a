// How a range [start, end) is read: whole rollup buckets where they fit, raw usage
// rows for the ragged ends. Shared by the admin statistics and the key holders' stats. Rollup buckets are UTC quarter-hours, hours and days, so
// the cuts are on epoch multiples of those whatever the caller's offset. Every span is
// half-open and may be empty (from = to), so each query has a fixed shape.
import type { Range } from './time.js'

export interface Span { from: Date, to: Date }

/** Whole hours from an hourly rollup, two ragged edges from raw rows. */
export interface HourPlan { hours: Span, edges: [Span, Span] }

/** Whole UTC days from the daily rollup, the whole hours beside them, the raw edges. */
export interface DayPlan { days: Span, hours: [Span, Span], edges: [Span, Span] }

const QUARTER = 900_000
const HOUR = 3_600_000
const DAY = 86_400_000

/** The whole units inside [from, to), and what is left before and after them. */
function carve (from: number, to: number, unit: number): { whole: Span, before: Span, after: Span } {
  const first = Math.ceil(from / unit) * unit
  const last = Math.floor(to / unit) * unit
  const span = (a: number, b: number): Span => ({ from: new Date(a), to: new Date(b) })
  // no whole unit (both ends inside one unit, or across one boundary): all of it is an edge
  if (first >= last) return { whole: span(to, to), before: span(from, to), after: span(to, to) }
  return { whole: span(first, last), before: span(from, first), after: span(last, to) }
}

export function hourPlan (range: Range): HourPlan {
  const h = carve(range.start.getTime(), range.end.getTime(), HOUR)
  return { hours: h.whole, edges: [h.before, h.after] }
}

export function dayPlan (range: Range): DayPlan {
  const h = carve(range.start.getTime(), range.end.getTime(), HOUR)
  const d = carve(h.whole.from.getTime(), h.whole.to.getTime(), DAY)
  return { days: d.whole, hours: [d.before, d.after], edges: [h.before, h.after] }
}

/**
 * The hour edges of a range cut again by quarter-hour, for a reader that has a quarter-hour
 * rollup: the whole quarter-hours inside them, and the ragged rest to read raw (less than a
 * quarter-hour at each end where the hour edges hold up to an hour, or under two cut ones when
 * the range holds no whole quarter-hour: the raw part grows with the requests a minute). With hourPlan's or dayPlan's hours and days they cover the range
 * once. Named apart from `edges`, so a plan holding both still reads right where only the
 * hour edges are known.
 */
export interface QuarterCut { quarters: [Span, Span], ragged: [Span, Span] }

export function quarterCut (range: Range): QuarterCut {
  const from = range.start.getTime()
  const to = range.end.getTime()
  const q = carve(from, to, QUARTER)
  const h = carve(from, to, HOUR)
  const span = (a: number, b: number): Span => ({ from: new Date(a), to: new Date(b) })
  const [qFrom, qTo] = [q.whole.from.getTime(), q.whole.to.getTime()]
  // no whole hour: the whole quarters are one run; else the runs before and after the hours
  const quarters: [Span, Span] = h.whole.from.getTime() >= h.whole.to.getTime() || qFrom >= qTo
    ? [q.whole, span(to, to)]
    : [span(qFrom, h.whole.from.getTime()), span(h.whole.to.getTime(), qTo)]
  return { quarters, ragged: [q.before, q.after] }
}

export type QuarterHourPlan = HourPlan & QuarterCut
export type QuarterDayPlan = DayPlan & QuarterCut

/** hourPlan with the hour edges cut again by quarter-hour */
export const quarterHourPlan = (range: Range): QuarterHourPlan => ({ ...hourPlan(range), ...quarterCut(range) })

/** dayPlan with the hour edges cut again by quarter-hour */
export const quarterDayPlan = (range: Range): QuarterDayPlan => ({ ...dayPlan(range), ...quarterCut(range) })
