// The errors distribution (Aether's /errors/distribution): failed requests (model.ts
// FAILED, the rollups' `errors` rule) by category — status class, HTTP status or
// provider — over the range, and per bucket as a zero-filled trend in the range's zone.
// Whole UTC hours from usage_errors_hourly; the hours a bucket boundary cuts from
// usage_errors_quarter_hourly by quarter-hour, and raw rows where a quarter is cut (the
// ragged ends, an offset off the quarter-hour), as the time series reads them (readPlan).
// One user's own: their failed raw rows, through a partial index of failed rows only.
import sql, { raw } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { FAILED } from '../accounting/model.js'
import { NIL_UUID } from '../accounting/rules.js'
import { bucketsOf, type Bucket, type Granularity } from './buckets.js'
import { cutHourRows, readPlan } from './queries.js'
import type { AnalyticsRange } from './range.js'

export type ErrorCategory = 'status_class' | 'status_code' | 'provider'

/**
 * A failed request's category, over p.status_code (0: none) and p.provider_id (nil:
 * none): 4xx / 5xx / other / none; the status itself; the provider's name, or none for
 * no provider or a deleted one (usage forgets it, the rollup keeps its id).
 */
const CATEGORY: Record<ErrorCategory, string> = {
  status_class: `CASE WHEN p.status_code = 0 THEN 'none' WHEN p.status_code BETWEEN 400 AND 499 THEN '4xx' WHEN p.status_code BETWEEN 500 AND 599 THEN '5xx' ELSE 'other' END`,
  status_code: `CASE WHEN p.status_code = 0 THEN 'none' ELSE p.status_code::text END`,
  provider: `coalesce((SELECT n.name FROM providers n WHERE n.id = p.provider_id), 'none')`
}

// categories are a map's keys: never equal
const byCountThenName = (a: [string, number], b: [string, number]) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)

/** Every failed request of the range (all users' when `userId` is null), by bucket and category. */
export async function errorDistribution (db: Sql, range: AnalyticsRange, granularity: Granularity, groupBy: ErrorCategory, userId: string | null = null) {
  const buckets = bucketsOf(range, granularity)
  const bounds = [...buckets.map((b) => new Date(b.start)), new Date(buckets[buckets.length - 1]!.end)]
  const { rows } = await db.query(sql`
    SELECT width_bucket(p.at, ${bounds}::timestamptz[]) - 1 AS i, ${raw(CATEGORY[groupBy])} AS category, sum(p.n)::bigint AS n
      FROM ${userId === null ? allFailures(buckets) : failuresOf(userId, bounds[0]!, bounds[bounds.length - 1]!)} p
     GROUP BY 1, 2 HAVING sum(p.n) <> 0`)
  return answer(range, buckets, groupBy, rows as Array<{ i: number, category: string, n: string }>)
}

/** Every user's failures as (at, provider_id, status_code, n) from the errors rollups, raw rows where a quarter-hour is cut. */
function allFailures (buckets: Bucket[]) {
  const plan = readPlan(buckets, true)
  return sql`(
        -- whole hours: usage_errors_hourly's primary key (bucket, …); those a boundary cuts are read raw below
        SELECT r.bucket AS at, r.provider_id, r.status_code, r.requests AS n FROM usage_errors_hourly r
         WHERE r.bucket >= ${plan.whole.from} AND r.bucket < ${plan.whole.to} AND r.bucket <> ALL(${plan.cutHours}::timestamptz[])
        UNION ALL
        -- usage_errors_quarter_hourly primary key (bucket, …): the cut hours' quarter-hours
        SELECT r.bucket, r.provider_id, r.status_code, r.requests FROM usage_errors_quarter_hourly r WHERE r.bucket = ANY(${plan.quarters}::timestamptz[])
        UNION ALL
        -- usage (created_at): one range per quarter-hour cut inside
        SELECT u.created_at, coalesce(u.provider_id, ${NIL_UUID}::uuid), coalesce(u.status_code, 0), 1
          FROM ${cutHourRows(plan, sql`AND ${raw(FAILED.raw('u'))}`)}
      )`
}

/**
 * One user's failures, raw: no rollup keeps the user with the status (usage_errors_hourly
 * is hour × provider × status), and failures are a few percent of the rows.
 * usage_failed_user_idx (user_id, created_at) include (provider_id, status_code) where status = 'failed'.
 */
function failuresOf (userId: string, from: Date, to: Date) {
  return sql`(
        SELECT u.created_at AS at, coalesce(u.provider_id, ${NIL_UUID}::uuid) AS provider_id, coalesce(u.status_code, 0) AS status_code, 1 AS n
          FROM usage u WHERE u.user_id = ${userId}::uuid AND ${raw(FAILED.raw('u'))} AND u.created_at >= ${from} AND u.created_at < ${to}
      )`
}

function answer (range: AnalyticsRange, buckets: Bucket[], groupBy: ErrorCategory, rows: Array<{ i: number, category: string, n: string }>) {
  const perBucket = buckets.map(() => new Map<string, number>())
  const totals = new Map<string, number>()
  for (const row of rows) {
    const n = Number(row.n)
    perBucket[row.i]!.set(row.category, n)
    totals.set(row.category, (totals.get(row.category) ?? 0) + n)
  }
  const distribution = [...totals.entries()].sort(byCountThenName)
  return {
    distribution: distribution.map(([category, count]) => ({ category, count })),
    trend: buckets.map((bucket, i) => {
      const categories = Object.fromEntries([...perBucket[i]!.entries()].sort(byCountThenName))
      return {
        date: bucket.date,
        total: Object.values(categories).reduce((a, b) => a + b, 0),
        categories,
        start: new Date(bucket.start).toISOString(),
        end: new Date(bucket.end).toISOString(),
        local_start: bucket.local
      }
    }),
    total: distribution.reduce((sum, [, n]) => sum + n, 0),
    group_by: groupBy,
    start_date: range.start.toISOString(),
    end_date: range.end.toISOString()
  }
}
