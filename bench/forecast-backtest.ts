// The cost forecast's backtest (docs/statistics.md): on the seed's data set, the method
// of analytics/forecast.ts fitted on the 56 days before a cut and scored on the 14 days
// after it, at several cuts (a rolling origin, each a week apart), against two simple
// baselines: Aether's straight line and the seasonal-naive forecast (the same weekday a
// week earlier). Prints MAE and MAPE per horizon range and the intervals' coverage.
//
// node --import tsx bench/forecast-backtest.ts [--rows N] [--cuts K]
// (the database as bench/stats.ts's: BENCH_DATABASE_URL, else the embedded bench
// cluster; seeded with N rows over the seed's 90 days when empty)
import { parseArgs } from 'node:util'
import pg from 'pg'
import { fitDaily, predictDay } from '../src/modules/analytics/forecast.js'
import { database, prepare } from './stats.js'

const HISTORY = 56
const HORIZON = 14
const { values } = parseArgs({ options: { rows: { type: 'string', default: '200000' }, cuts: { type: 'string', default: '3' } } })
const rows = Number(values.rows)
const cuts = Number(values.cuts)

const { url, stop } = await database(rows, false)
try {
  await prepare(url, rows, false)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  // each whole UTC day's cost, from the provider rollup (the series' source for all traffic); the last, partial day left out
  const { rows: days } = await pool.query(`
    SELECT d::date AS day, COALESCE(s.cost, 0)::float8 / 1e9 AS cost
      FROM generate_series((SELECT min(bucket) FROM usage_hourly_provider)::date, (SELECT max(bucket) FROM usage_hourly_provider)::date - 1, interval '1 day') d
      LEFT JOIN (SELECT (bucket AT TIME ZONE 'UTC')::date AS day, sum(total_cost) AS cost FROM usage_hourly_provider GROUP BY 1) s ON s.day = d::date
     ORDER BY 1`)
  await pool.end()
  const cost = days.map((d) => Number(d.cost))
  // the first day is partial too (the seed's window starts mid-day)
  const series = cost.slice(1)
  const firstDay = new Date(days[1]!.day)
  console.log(`${rows} rows: ${series.length} whole days from ${firstDay.toISOString().slice(0, 10)}, mean ${(series.reduce((a, b) => a + b, 0) / series.length).toFixed(2)} USD a day`)
  if (series.length < HISTORY + HORIZON) throw new Error(`need ${HISTORY + HORIZON} days, have ${series.length}`)

  const score = { method: [] as number[], line: [] as number[], naive: [] as number[], ape: [] as number[], lineApe: [] as number[], naiveApe: [] as number[] }
  let in80 = 0
  let in95 = 0
  let n = 0
  for (let c = 0; c < cuts; c++) {
    const end = series.length - HORIZON - c * 7
    if (end - HISTORY < 0) break
    const history = series.slice(end - HISTORY, end)
    const weekday = (new Date(firstDay.getTime() + (end - HISTORY) * 86_400_000).getUTCDay() + 6) % 7
    const fit = fitDaily(history, weekday)
    // Aether's line over the whole history: the same least squares without the weekday columns
    const xs = history.map((_, i) => i)
    const mx = (HISTORY - 1) / 2
    const my = history.reduce((a, b) => a + b, 0) / HISTORY
    const slope = xs.reduce((s, x, i) => s + (x - mx) * (history[i]! - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0)
    for (let h = 0; h < HORIZON; h++) {
      const actual = series[end + h]!
      const p = predictDay(fit, HISTORY + h)
      const linear = Math.max(0, my + slope * (HISTORY + h - mx))
      const naive = history[HISTORY - 7 + (h % 7)]!
      score.method.push(Math.abs(p.mean - actual))
      score.line.push(Math.abs(linear - actual))
      score.naive.push(Math.abs(naive - actual))
      if (actual > 0) {
        score.ape.push(Math.abs(p.mean - actual) / actual)
        score.lineApe.push(Math.abs(linear - actual) / actual)
        score.naiveApe.push(Math.abs(naive - actual) / actual)
      }
      if (actual >= p.lower80! && actual <= p.upper80!) in80++
      if (actual >= p.lower95! && actual <= p.upper95!) in95++
      n++
    }
  }
  const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`
  console.log(`${n / HORIZON} cuts × ${HORIZON} days held out, fitted on the ${HISTORY} days before each cut`)
  console.log(`trend + weekday OLS:  MAE ${mean(score.method).toFixed(2)} USD  MAPE ${pct(mean(score.ape))}  80 % interval covers ${pct(in80 / n)}, 95 % covers ${pct(in95 / n)}`)
  console.log(`straight line:        MAE ${mean(score.line).toFixed(2)} USD  MAPE ${pct(mean(score.lineApe))}`)
  console.log(`seasonal naive (t-7): MAE ${mean(score.naive).toFixed(2)} USD  MAPE ${pct(mean(score.naiveApe))}`)
} finally {
  await stop()
}
