// Calendar days in IANA time zones, for "per day" answers cut at local midnight.
import { isTimeZone } from '../config.js'
import { Errors } from '../http/errors.js'

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

/** Every date from `first` to `last` inclusive (YYYY-MM-DD strings). */
export function datesBetween (first: string, last: string): string[] {
  const out: string[] = []
  for (let day = new Date(`${first}T00:00:00Z`); day.toISOString().slice(0, 10) <= last; day = new Date(day.getTime() + 86_400_000)) {
    out.push(day.toISOString().slice(0, 10))
  }
  return out
}

/** A time zone from a request, or a 400 naming the field. */
export function requireTimeZone (zone: string, field = 'query.timezone'): string {
  if (!isTimeZone(zone)) throw Object.assign(new Errors.InvalidInput(`${field}: unknown IANA time zone "${zone}"`), { field })
  return zone
}

export interface Range { start: Date, end: Date }

/** start_date / end_date with defaults (the last `defaultDays` days), ordered and bounded. */
export function dateRange (query: { start_date?: string, end_date?: string }, defaultDays: number, maxDays: number, now = new Date()): Range {
  const end = query.end_date === undefined ? now : new Date(query.end_date)
  const start = query.start_date === undefined ? new Date(end.getTime() - defaultDays * 86_400_000) : new Date(query.start_date)
  if (start >= end) throw new Errors.InvalidInput('start_date must be before end_date')
  if (end.getTime() - start.getTime() > maxDays * 86_400_000) throw new Errors.InvalidInput(`the range may span at most ${maxDays} days`)
  return { start, end }
}
