// Calendar days in IANA time zones, for "per day" answers cut at local midnight, and
// the bounds every date the API accepts must fall within.
import type pg from 'pg'
import { Errors } from './errors.js'

/**
 * Every date input is an instant in [EARLIEST_INSTANT, INSTANT_LIMIT): years 2000 through
 * 2999 in UTC, so each local date in any zone has a four-digit year (ISO strings sort)
 * and PostgreSQL and Date agree on it.
 */
export const EARLIEST_INSTANT = '2000-01-01T00:00:00Z'
export const INSTANT_LIMIT = '3000-01-01T00:00:00Z'
const EARLIEST_MS = Date.parse(EARLIEST_INSTANT)
const LIMIT_MS = Date.parse(INSTANT_LIMIT)
const DAY_MS = 86_400_000
/** No per-day answer lists more days than this (a year and a day, plus a zone's offset at each end) */
export const MAX_LISTED_DAYS = 400

/** Whether Intl knows the zone (PostgreSQL may still refuse it: see TimeZones). */
export function isTimeZone (zone: string): boolean {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone !== ''
  } catch {
    return false
  }
}

/** Whether an instant is inside the bounds every date input must respect. */
export function isBoundedInstant (ms: number): boolean {
  return Number.isFinite(ms) && ms >= EARLIEST_MS && ms < LIMIT_MS
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** The local calendar date (YYYY-MM-DD) of an instant in a time zone. */
export function localDate (instant: Date, timeZone: string): string {
  let format = formatters.get(timeZone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' })
    formatters.set(timeZone, format)
  }
  return format.format(instant)
}

/** A YYYY-MM-DD date as the epoch milliseconds of its UTC midnight (NaN if it is not one). */
function dayNumber (date: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date)
  return match === null ? Number.NaN : Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]))
}

/** Every date from `first` to `last` inclusive (YYYY-MM-DD strings), at most MAX_LISTED_DAYS. */
export function datesBetween (first: string, last: string): string[] {
  const from = dayNumber(first)
  const to = dayNumber(last)
  if (Number.isNaN(from) || Number.isNaN(to)) throw new Error(`not a date range: ${first}..${last}`)
  if ((to - from) / DAY_MS >= MAX_LISTED_DAYS) throw new Error(`more than ${MAX_LISTED_DAYS} days: ${first}..${last}`)
  const out: string[] = []
  for (let day = from; day <= to; day += DAY_MS) out.push(new Date(day).toISOString().slice(0, 10))
  return out
}

/**
 * The time zones both PostgreSQL (pg_timezone_names, read once at boot) and Intl accept,
 * by lower-cased name: day boundaries are cut both in SQL and in Node, and both look
 * zone names up case-insensitively.
 */
export class TimeZones {
  private constructor (private readonly names: ReadonlyMap<string, string>) {}

  static async load (db: Pick<pg.Pool, 'query'>): Promise<TimeZones> {
    const { rows } = await db.query<{ name: string }>('SELECT name FROM pg_timezone_names')
    return new TimeZones(new Map(rows.filter((r) => isTimeZone(r.name)).map((r) => [r.name.toLowerCase(), r.name])))
  }

  /** PostgreSQL's spelling of the zone, or undefined when either side refuses it. */
  find (zone: string): string | undefined {
    return this.names.get(zone.toLowerCase())
  }

  /** A time zone from a request, in PostgreSQL's spelling, or a 400 naming the field. */
  require (zone: string, field = 'query.timezone'): string {
    const found = this.find(zone)
    if (found === undefined) throw Object.assign(new Errors.InvalidInput(`${field}: unknown time zone "${zone}" (an IANA name PostgreSQL knows, e.g. Europe/Paris)`), { field })
    return found
  }
}

export interface Range { start: Date, end: Date }

/** start_date / end_date with defaults (the last `defaultDays` days), ordered and bounded. */
export function dateRange (query: { start_date?: string, end_date?: string }, defaultDays: number, maxDays: number, now = new Date()): Range {
  const endMs = query.end_date === undefined ? now.getTime() : Date.parse(query.end_date)
  // a default start never reaches before the bound (the schema bounds each given date)
  const startMs = query.start_date === undefined ? Math.max(endMs - defaultDays * DAY_MS, EARLIEST_MS) : Date.parse(query.start_date)
  for (const [ms, field] of [[endMs, 'querystring.end_date'], [startMs, 'querystring.start_date']] as const) {
    if (!isBoundedInstant(ms)) throw Object.assign(new Errors.InvalidInput(`${field} must be from ${EARLIEST_INSTANT} and before ${INSTANT_LIMIT}`), { field })
  }
  if (startMs >= endMs) throw Object.assign(new Errors.InvalidInput('start_date must be before end_date'), { field: 'querystring.start_date' })
  if (endMs - startMs > maxDays * DAY_MS) throw Object.assign(new Errors.InvalidInput(`the range may span at most ${maxDays} days`), { field: 'querystring.start_date' })
  return { start: new Date(startMs), end: new Date(endMs) }
}
