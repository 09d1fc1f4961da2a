// A range cut into a series' buckets: local days, ISO weeks (from Monday) and months of
// the range's zone (a DST day is 23 or 25 hours, a +05:30 day starts on the half hour),
// or the rollups' UTC hours; the first and last bucket are cut at the range's ends.
import { Errors } from '../../lib/errors.js'
import { Civil, type AnalyticsRange } from './range.js'

export const GRANULARITIES = ['hour', 'day', 'week', 'month'] as const
export type Granularity = typeof GRANULARITIES[number]

/** hour points over at most this many days (744 points), so an answer stays a chart's size */
export const MAX_HOUR_DAYS = 31
const HOUR = 3_600_000
const DAY = 86_400_000

export interface Bucket {
  /** [start, end), epoch ms */
  start: number
  end: number
  /** the local date of its start (YYYY-MM-DD) */
  date: string
  /** its start on the zone's wall clock (YYYY-MM-DDTHH:mm) */
  local: string
}

/** The start of the next period after the local day `day` starts one (a Wall at 00:00). */
function nextPeriod (granularity: Exclude<Granularity, 'hour'>, day: number): number {
  if (granularity === 'day') return Civil.addDays(day, 1)
  if (granularity === 'week') return Civil.addDays(Civil.weekStart(day), 7)
  return Civil.addMonths(day, 1)
}

/**
 * The range's buckets. Hours are UTC hours, as the rollups keep them: whole local hours
 * in a zone on whole-hour offsets; in a zone off the hour (+05:30) each spans hh:30 to
 * hh:30 local, labelled by its local start.
 */
export function bucketsOf (range: AnalyticsRange, granularity: Granularity): Bucket[] {
  const from = range.start.getTime()
  const to = range.end.getTime()
  const { zone } = range
  if (granularity === 'hour' && to - from > MAX_HOUR_DAYS * DAY) {
    throw Object.assign(new Errors.InvalidInput(`querystring.granularity hour covers at most ${MAX_HOUR_DAYS} days; use day, week or month for a longer range`), { field: 'querystring.granularity' })
  }
  const cuts = [from]
  if (granularity === 'hour') {
    for (let at = Math.floor(from / HOUR) * HOUR + HOUR; at < to; at += HOUR) cuts.push(at)
  } else {
    for (let day = zone.dayOf(from); ;) {
      day = nextPeriod(granularity, day)
      const at = zone.midnight(day)
      if (at >= to) break
      cuts.push(at)
    }
  }
  cuts.push(to)
  return cuts.slice(0, -1).map((start, i) => {
    const wall = new Date(zone.wallOf(start)).toISOString()
    return { start, end: cuts[i + 1]!, date: wall.slice(0, 10), local: wall.slice(0, 16) }
  })
}
