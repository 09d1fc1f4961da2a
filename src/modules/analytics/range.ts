// The time range every analytics route takes, resolved here and nowhere else: dates or
// instants, or a preset, in a zone (an IANA name, or Aether's fixed tz_offset_minutes),
// as the half-open [start, end) the queries read; and the zone's calendar (local
// midnights, ISO weeks from Monday, months), so series buckets are cut by the same rule.
import Type from 'typebox'
import { Errors } from '../../lib/errors.js'
import { EARLIEST_INSTANT, INSTANT_LIMIT, isBoundedInstant, type TimeZones } from '../../lib/time.js'

export const PRESETS = ['today', 'yesterday', 'last7days', 'last30days', 'last90days', 'this_week', 'last_week', 'this_month', 'last_month', 'this_year'] as const
export type Preset = typeof PRESETS[number]

/** the widest range, in local days */
export const MAX_RANGE_DAYS = 366
/** the preset when neither a preset nor dates are given */
export const DEFAULT_PRESET: Preset = 'last30days'
/** the widest fixed offset a zone has (UTC−12 … UTC+14), in minutes */
const MAX_OFFSET_MINUTES = 14 * 60

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/
const MINUTE = 60_000
const DAY = 86_400_000

/** The query fields of every analytics route (Aether's names; other parameters are ignored, not refused: AETHER.md §1). */
export const RangeQueryFields = {
  start_date: Type.Optional(Type.String({ maxLength: 40, description: `YYYY-MM-DD (that local day's midnight) or an ISO 8601 instant with offset; from ${EARLIEST_INSTANT}, before ${INSTANT_LIMIT}` })),
  end_date: Type.Optional(Type.String({ maxLength: 40, description: 'YYYY-MM-DD (through the end of that local day) or an ISO 8601 instant with offset (excluded); default: now' })),
  preset: Type.Optional(Type.Union([
    Type.Literal('today'), Type.Literal('yesterday'), Type.Literal('last7days'), Type.Literal('last30days'), Type.Literal('last90days'),
    Type.Literal('this_week'), Type.Literal('last_week'), Type.Literal('this_month'), Type.Literal('last_month'), Type.Literal('this_year')
  ], {
    description: `instead of dates, in the zone: today, this_week (from Monday), this_month, this_year and lastNdays (N local days, today included) run to now; yesterday, last_week, last_month are whole. Default ${DEFAULT_PRESET} when no date is given`
  })),
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone for local days; default APP_TIMEZONE; wins over tz_offset_minutes' })),
  tz_offset_minutes: Type.Optional(Type.Integer({
    minimum: -MAX_OFFSET_MINUTES,
    maximum: MAX_OFFSET_MINUTES,
    description: 'a fixed offset in minutes EAST of UTC, as a browser\'s -new Date().getTimezoneOffset() (UTC+8 is 480, UTC-5 is -300); used when timezone is absent'
  }))
}

export interface RangeQuery { start_date?: string, end_date?: string, preset?: Preset, timezone?: string, tz_offset_minutes?: number }

/** A local wall-clock time as the epoch milliseconds it would be in UTC (a "civil" instant). */
type Wall = number

/** A zone's calendar: an IANA zone (DST included) or a fixed offset. */
export class Zone {
  private readonly format: Intl.DateTimeFormat | null

  private constructor (readonly name: string, private readonly fixedMinutes: number | null) {
    this.format = fixedMinutes === null
      ? new Intl.DateTimeFormat('en-US', { timeZone: name, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
      : null
  }

  static iana (name: string): Zone { return new Zone(name, null) }

  /** A fixed offset, minutes east of UTC; named as ISO writes it (+05:30). */
  static fixed (minutes: number): Zone {
    const sign = minutes < 0 ? '-' : '+'
    const abs = Math.abs(minutes)
    return new Zone(`${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`, minutes)
  }

  /** The zone's offset at an instant, in whole minutes east of UTC. */
  offsetMinutes (ms: number): number {
    if (this.format === null) return this.fixedMinutes!
    const parts = Object.fromEntries(this.format.formatToParts(new Date(ms)).map((p) => [p.type, p.value]))
    const wall = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second))
    return Math.round((wall - Math.floor(ms / 1000) * 1000) / MINUTE)
  }

  /** The wall clock at an instant. */
  wallOf (ms: number): Wall { return ms + this.offsetMinutes(ms) * MINUTE }

  /**
   * The instant a wall-clock time names, from the offsets a day either side (no zone
   * changes offset twice in two days): a time a fall-back repeats is its first
   * occurrence; one a spring-forward skips is read with the offset before the gap, so a
   * skipped midnight starts its day at the end of the gap.
   */
  instantOf (wall: Wall): number {
    const before = wall - this.offsetMinutes(wall - DAY) * MINUTE
    const after = wall - this.offsetMinutes(wall + DAY) * MINUTE
    const names = (ms: number) => this.wallOf(ms) === wall
    if (names(before) && names(after)) return Math.min(before, after)
    if (names(after)) return after
    return before
  }

  /** The local midnight starting a civil date (a Wall at 00:00). */
  midnight (day: Wall): number { return this.instantOf(day) }

  /** The civil date (a Wall at 00:00) holding an instant. */
  dayOf (ms: number): Wall { return Math.floor(this.wallOf(ms) / DAY) * DAY }
}

/** Civil-date arithmetic on Walls at 00:00. */
export const Civil = {
  addDays: (day: Wall, n: number): Wall => day + n * DAY,
  /** the Monday of the ISO week holding the day */
  weekStart: (day: Wall): Wall => day - ((new Date(day).getUTCDay() + 6) % 7) * DAY,
  monthStart: (day: Wall): Wall => { const d = new Date(day); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) },
  addMonths: (day: Wall, n: number): Wall => { const d = new Date(day); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, 1) },
  yearStart: (day: Wall): Wall => Date.UTC(new Date(day).getUTCFullYear(), 0, 1),
  /** YYYY-MM-DD */
  label: (wall: Wall): string => new Date(wall).toISOString().slice(0, 10)
}

/** A resolved range: [start, end) and the zone its local days are cut in. */
export interface AnalyticsRange { start: Date, end: Date, zone: Zone }

const invalid = (field: string, message: string) => Object.assign(new Errors.InvalidInput(`${field} ${message}`), { field })

/** The zone of a request: timezone (an IANA name PostgreSQL and Intl both know), else tz_offset_minutes, else APP_TIMEZONE. */
export function zoneOf (query: RangeQuery, zones: TimeZones, appTimeZone: string): Zone {
  if (query.timezone !== undefined) return Zone.iana(zones.require(query.timezone, 'querystring.timezone'))
  if (query.tz_offset_minutes !== undefined) return Zone.fixed(query.tz_offset_minutes)
  return Zone.iana(appTimeZone)
}

/** A start_date or end_date: a date's local midnight (end: the next one), or the instant. */
function bound (value: string, field: 'start_date' | 'end_date', zone: Zone): number {
  const name = `querystring.${field}`
  const date = DATE.exec(value)
  let ms: number
  if (date !== null) {
    const day = Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]))
    if (Civil.label(day) !== value) throw invalid(name, `is not a calendar date: ${value}`)
    ms = zone.midnight(field === 'end_date' ? Civil.addDays(day, 1) : day)
  } else if (INSTANT.test(value)) {
    ms = Date.parse(value)
  } else {
    throw invalid(name, 'must be a date (YYYY-MM-DD) or an ISO 8601 instant with an offset (Z or ±hh:mm)')
  }
  if (!isBoundedInstant(ms)) throw invalid(name, `must be from ${EARLIEST_INSTANT} and before ${INSTANT_LIMIT}`)
  return ms
}

/** A preset's [start, end) in the zone at `now`: periods holding now run to now (included), past ones are whole. */
export function presetRange (preset: Preset, zone: Zone, now: number): [number, number] {
  const today = zone.dayOf(now)
  const soFar = now + 1
  const at = (day: Wall) => zone.midnight(day)
  switch (preset) {
    case 'today': return [at(today), soFar]
    case 'yesterday': return [at(Civil.addDays(today, -1)), at(today)]
    case 'last7days': return [at(Civil.addDays(today, -6)), soFar]
    case 'last30days': return [at(Civil.addDays(today, -29)), soFar]
    case 'last90days': return [at(Civil.addDays(today, -89)), soFar]
    case 'this_week': return [at(Civil.weekStart(today)), soFar]
    case 'last_week': return [at(Civil.addDays(Civil.weekStart(today), -7)), at(Civil.weekStart(today))]
    case 'this_month': return [at(Civil.monthStart(today)), soFar]
    case 'last_month': return [at(Civil.addMonths(today, -1)), at(Civil.monthStart(today))]
    case 'this_year': return [at(Civil.yearStart(today)), soFar]
  }
}

/**
 * The range of an analytics request: a preset, or start_date (required with end_date)
 * and end_date (default now), never both; start before end and at most MAX_RANGE_DAYS
 * local days apart (a DST change may make that an hour more or less than 366 × 24 h).
 */
export function resolveRange (query: RangeQuery, zone: Zone, now = new Date()): AnalyticsRange {
  const dated = query.start_date !== undefined || query.end_date !== undefined
  if (dated && query.preset !== undefined) throw invalid('querystring.preset', 'cannot be given with start_date or end_date')
  let start: number
  let end: number
  if (!dated) {
    [start, end] = presetRange(query.preset ?? DEFAULT_PRESET, zone, now.getTime())
  } else {
    if (query.start_date === undefined) throw invalid('querystring.start_date', 'is required with end_date')
    start = bound(query.start_date, 'start_date', zone)
    end = query.end_date === undefined ? now.getTime() + 1 : bound(query.end_date, 'end_date', zone)
  }
  if (start >= end) throw invalid('querystring.start_date', 'must be before end_date')
  if (end > zone.instantOf(zone.wallOf(start) + MAX_RANGE_DAYS * DAY)) throw invalid('querystring.end_date', `must be at most ${MAX_RANGE_DAYS} days after start_date`)
  return { start: new Date(start), end: new Date(end), zone }
}
