// Daily cost forecast (Aether's GET /api/admin/stats/cost/forecast, keymeter's method
// and intervals beside its line). The method, stated in every answer and in
// docs/statistics.md: ordinary least squares of each local day's cost on a linear trend
// plus day-of-week effects (effects-coded: they sum to zero over a week, so the
// intercept is the week-average level), over the history from its first day with
// traffic; prediction intervals from the residuals' spread, widened by the estimate's
// own uncertainty (leverage) and read from Student's t. With fewer than
// MIN_SEASONAL_DAYS days the weekly effects cannot be told from noise: a plain line
// (Aether's method), and no interval rather than a false one. Deterministic: the same
// history gives the same answer.
import type { Sql } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { bucketsOf } from './buckets.js'
import { seriesSums } from './queries.js'
import { Civil, type Zone } from './range.js'

/** below two weeks (each weekday twice) no weekly effects and no interval */
export const MIN_SEASONAL_DAYS = 14
export const MAX_FORECAST_DAYS = 90
export const MAX_HISTORY_DAYS = 366
const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const
/** standard normal quantiles of the two-sided 80 % and 95 % intervals */
const Z = { 80: 1.2815515655446004, 95: 1.959963984540054 } as const

export type Method = 'linear_trend_weekday_ols' | 'linear_trend' | 'flat'

/** Student's t quantile from the normal one (Cornish–Fisher, three terms: within 0.5 % from 6 degrees of freedom). */
export function tQuantile (z: number, dof: number): number {
  return z + (z ** 3 + z) / (4 * dof) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2) + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * dof ** 3)
}

/** Solves A·x = b (A square, small) by Gaussian elimination with partial pivoting; null when A is singular. */
export function solve (a: number[][], b: number[]): number[] | null {
  const n = b.length
  const m = a.map((row, i) => [...row, b[i]!])
  for (let col = 0; col < n; col++) {
    let pivot = col
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r
    if (Math.abs(m[pivot]![col]!) < 1e-12) return null
    ;[m[col], m[pivot]] = [m[pivot]!, m[col]!]
    for (let r = 0; r < n; r++) {
      if (r === col) continue
      const f = m[r]![col]! / m[col]![col]!
      for (let c = col; c <= n; c++) m[r]![c]! -= f * m[col]![c]!
    }
  }
  return m.map((row, i) => row[n]! / row[i]!)
}

/** A fitted model: its coefficients, and the mean and standard error of day `t`'s prediction. */
export interface Fit {
  method: Method
  slope: number
  intercept: number
  /** additive effect of each weekday (Monday first), null without them */
  weekday: number[] | null
  /** the residuals' standard deviation (n − p degrees of freedom), null without an interval */
  residualSd: number | null
  dof: number
  predict: (t: number) => { mean: number, se: number | null }
}

/**
 * Fits daily values y[0..n) whose day 0 is weekday `firstWeekday` (0 = Monday): the
 * trend and weekday effects by least squares from MIN_SEASONAL_DAYS days, a line below,
 * the one value (or zero) below two days.
 */
export function fitDaily (y: number[], firstWeekday: number): Fit {
  const n = y.length
  if (n < 2) {
    const level = n === 0 ? 0 : y[0]!
    return { method: 'flat', slope: 0, intercept: level, weekday: null, residualSd: null, dof: 0, predict: () => ({ mean: level, se: null }) }
  }
  const seasonal = n >= MIN_SEASONAL_DAYS
  // effects coding: weekday k < 6 is +1 in its column, Sunday −1 in all six
  const row = (t: number): number[] => {
    const x = [1, t]
    if (seasonal) {
      const w = (firstWeekday + t) % 7
      for (let k = 0; k < 6; k++) x.push(w === 6 ? -1 : w === k ? 1 : 0)
    }
    return x
  }
  const p = seasonal ? 8 : 2
  const xtx = Array.from({ length: p }, () => new Array<number>(p).fill(0))
  const xty = new Array<number>(p).fill(0)
  for (let t = 0; t < n; t++) {
    const x = row(t)
    for (let i = 0; i < p; i++) {
      xty[i]! += x[i]! * y[t]!
      for (let j = 0; j < p; j++) xtx[i]![j]! += x[i]! * x[j]!
    }
  }
  // n ≥ 2 distinct days make the line's matrix regular; two weeks make the weekday columns so
  const beta = solve(xtx, xty)!
  const inverse = Array.from({ length: p }, (_, j) => solve(xtx, Array.from({ length: p }, (_, i) => i === j ? 1 : 0))!)
  const dot = (a: number[], b: number[]) => a.reduce((sum, v, i) => sum + v * b[i]!, 0)
  let rss = 0
  for (let t = 0; t < n; t++) rss += (y[t]! - dot(row(t), beta)) ** 2
  const dof = n - p
  const residualSd = seasonal ? Math.sqrt(rss / dof) : null
  const weekday = seasonal ? [...beta.slice(2), -beta.slice(2).reduce((a, b) => a + b, 0)] : null
  return {
    method: seasonal ? 'linear_trend_weekday_ols' : 'linear_trend',
    slope: beta[1]!,
    intercept: beta[0]!,
    weekday,
    residualSd,
    dof,
    predict: (t) => {
      const x = row(t)
      const leverage = dot(x, inverse.map((column) => dot(column, x)))
      return { mean: dot(x, beta), se: residualSd === null ? null : residualSd * Math.sqrt(1 + leverage) }
    }
  }
}

/** Day `t`'s prediction and its 80 % and 95 % intervals (null without a spread), cut at zero: a day costs nothing or more. */
export function predictDay (fit: Fit, t: number) {
  const { mean, se } = fit.predict(t)
  const bound = (level: 80 | 95, sign: 1 | -1) => se === null ? null : Math.max(0, mean + sign * tQuantile(Z[level], fit.dof) * se)
  return { mean: Math.max(0, mean), lower80: bound(80, -1), upper80: bound(80, 1), lower95: bound(95, -1), upper95: bound(95, 1) }
}

/** USD, 6 decimals, never −0 */
const usd6 = (value: number) => Math.round(value * 1e6) / 1e6 + 0

export interface ForecastQuery { days: number, history_days: number }

/**
 * The forecast over the cost of finished requests (all, or one user's keys), by local day
 * of `zone`: the history is the `history_days` whole days before today (today is partial,
 * so it is the forecast's first day), read from the hourly rollups as the time series
 * reads them (raw rows for the hours a zone's midnight cuts).
 */
export async function costForecast (db: Sql, query: ForecastQuery, zone: Zone, userId: string | null, now = new Date()) {
  const today = zone.dayOf(now.getTime())
  const first = Civil.addDays(today, -query.history_days)
  const buckets = bucketsOf({ start: new Date(zone.midnight(first)), end: new Date(zone.midnight(today)), zone }, 'day')
  const sums = await seriesSums(db, buckets, { userId, apiKeyId: null, model: null, providerId: null, apiFormat: null })
  const history = buckets.map((bucket, i) => {
    const s = sums.get(i)
    return { date: bucket.date, total_cost: nanoToUsd(s?.totalCost ?? 0n), total_requests: s?.requests ?? 0 }
  })
  // the days before the first with traffic are before the data, not days of zero cost
  const from = history.findIndex((day) => day.total_requests > 0)
  const used = from === -1 ? [] : history.slice(from)
  const firstUsed = Civil.addDays(first, from === -1 ? query.history_days : from)
  const fit = fitDaily(used.map((day) => day.total_cost), (new Date(firstUsed).getUTCDay() + 6) % 7)
  const forecast = Array.from({ length: query.days }, (_, k) => {
    const day = predictDay(fit, used.length + k)
    const orNull = (value: number | null) => value === null ? null : usd6(value)
    return {
      date: Civil.label(Civil.addDays(today, k)),
      total_cost: usd6(day.mean),
      lower_80: orNull(day.lower80),
      upper_80: orNull(day.upper80),
      lower_95: orNull(day.lower95),
      upper_95: orNull(day.upper95)
    }
  })
  // the weekday columns are Monday … Saturday (Sunday their negated sum), whichever weekday day 0 was
  const effects = fit.weekday === null ? null : Object.fromEntries(WEEKDAYS.map((name, k) => [name, usd6(fit.weekday![k]!)])) as Record<typeof WEEKDAYS[number], number>
  return {
    history,
    forecast,
    slope: usd6(fit.slope),
    intercept: usd6(fit.intercept),
    start_date: Civil.label(first),
    end_date: Civil.label(Civil.addDays(today, query.days - 1)),
    method: fit.method,
    history_days_used: used.length,
    fit_start_date: used.length === 0 ? null : used[0]!.date,
    weekday_effects: effects,
    residual_sd: fit.residualSd === null ? null : usd6(fit.residualSd),
    timezone: zone.name
  }
}
