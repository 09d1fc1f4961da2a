// Latency percentiles (Aether's /performance/percentiles): p50/p90/p99 of response time
// and time to first byte per bucket of the range, from the latency histograms the hourly
// rollups keep (accounting/model.ts HISTOGRAMS), never from a scan of raw rows — except
// the hours a bucket boundary cuts, read raw as the time series reads them (readPlan).
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { LATENCY_RELATIVE_ERROR, latencyOfBucket } from '../accounting/model.js'
import { finishedSql } from '../accounting/rules.js'
import { bucketsOf, type Granularity } from './buckets.js'
import { cutHourRows, readPlan } from './queries.js'
import type { AnalyticsRange } from './range.js'

/** below this many samples a percentile is null (Aether's rule) */
export const MIN_SAMPLES = 10
const QUANTILES = [0.5, 0.9, 0.99] as const

export type PercentileGroup = 'none' | 'provider' | 'model'

export interface PercentileFilter { providerId: string | null, model: string | null }

/** bucket → count */
type Counts = Map<number, number>

/**
 * The value at percentile_disc(q) of the histogram's samples: the bucket holding the
 * ceil(q × n)-th smallest (the same double arithmetic PostgreSQL uses), reported as
 * latencyOfBucket; null below MIN_SAMPLES.
 */
export function percentileOf (counts: Counts | undefined, q: number): number | null {
  let n = 0
  for (const c of counts?.values() ?? []) n += c
  if (counts === undefined || n < MIN_SAMPLES) return null
  const rank = Math.max(1, Math.ceil(q * n))
  let seen = 0
  const sorted = [...counts.entries()].sort(([a], [b]) => a - b)
  for (const [bucket, c] of sorted) {
    seen += c
    if (seen >= rank) return latencyOfBucket(bucket)
  }
  /* c8 ignore next 2 */
  return null
}

const samples = (counts: Counts | undefined) => [...counts?.values() ?? []].reduce((a, b) => a + b, 0)

/**
 * The rollup and its index: usage_hourly_model (primary key (bucket, …)) for a model
 * filter or per model; usage_hourly_provider (bucket, provider_id) otherwise.
 */
const rollupOf = (filter: PercentileFilter, group: PercentileGroup) => filter.model !== null || group === 'model' ? 'usage_hourly_model' : 'usage_hourly_provider'

/** A group's key: a provider that still exists (a deleted one's and no provider's: null, as usage forgets them) or the model. */
function groupKey (group: PercentileGroup, alias: 'r' | 'u'): Fragment {
  if (group === 'none') return raw('NULL::text')
  if (group === 'model') return raw(`${alias}.model`)
  return alias === 'r' ? raw('(SELECT p.id::text FROM providers p WHERE p.id = r.provider_id)') : raw('u.provider_id::text')
}

function predicates (filter: PercentileFilter, alias: 'r' | 'u'): Fragment {
  const parts: Fragment[] = []
  if (filter.providerId !== null) parts.push(sql`${raw(alias)}.provider_id = ${filter.providerId}::uuid`)
  if (filter.model !== null) parts.push(sql`${raw(alias)}.model = ${filter.model}`)
  return parts.length === 0 ? empty : sql`AND ${join(parts, ' AND ')}`
}

/** Each (series bucket, group)'s histograms of response time and first byte. */
async function histograms (db: Sql, range: AnalyticsRange, granularity: Granularity, filter: PercentileFilter, group: PercentileGroup) {
  const buckets = bucketsOf(range, granularity)
  const plan = readPlan(buckets)
  const bounds = [...buckets.map((b) => new Date(b.start)), new Date(buckets[buckets.length - 1]!.end)]
  const { rows } = await db.query(sql`
    SELECT p.i, p.g, p.b, sum(p.rt)::bigint AS rt, sum(p.fb)::bigint AS fb
      FROM (
        -- whole hours (those a boundary cuts are read raw below): both histograms side by side, element o is bucket o - 1
        SELECT width_bucket(r.bucket, ${bounds}::timestamptz[]) - 1 AS i, ${groupKey(group, 'r')} AS g, x.o - 1 AS b, coalesce(x.rt, 0) AS rt, coalesce(x.fb, 0) AS fb
          FROM ${raw(rollupOf(filter, group))} r CROSS JOIN LATERAL unnest(r.response_time_hist, r.first_byte_time_hist) WITH ORDINALITY x(rt, fb, o)
         WHERE r.bucket >= ${plan.whole.from} AND r.bucket < ${plan.whole.to} AND r.bucket <> ALL(${plan.cutHours}::timestamptz[]) ${predicates(filter, 'r')}
           AND (x.rt <> 0 OR x.fb <> 0)
        UNION ALL
        -- usage (created_at): one range per cut hour, each row one sample of each latency it has
        SELECT width_bucket(u.created_at, ${bounds}::timestamptz[]) - 1, ${groupKey(group, 'u')}, v.b, v.rt, v.fb
          FROM ${cutHourRows(plan, sql`AND ${finishedSql('u')} ${predicates(filter, 'u')}`)}
          CROSS JOIN LATERAL (VALUES (latency_bucket(u.response_time_ms), 1, 0), (latency_bucket(u.first_byte_time_ms), 0, 1)) v(b, rt, fb)
         WHERE v.b IS NOT NULL
      ) p
     GROUP BY 1, 2, 3 HAVING sum(p.rt) <> 0 OR sum(p.fb) <> 0`)
  const cells = new Map<string, { rt: Counts, fb: Counts }>()
  const groups = new Set<string | null>()
  for (const row of rows as Array<{ i: number, g: string | null, b: number, rt: string, fb: string }>) {
    groups.add(row.g)
    const id = `${row.i}|${row.g ?? ''}`
    let cell = cells.get(id)
    if (cell === undefined) cells.set(id, cell = { rt: new Map(), fb: new Map() })
    if (row.rt !== '0') cell.rt.set(row.b, Number(row.rt))
    if (row.fb !== '0') cell.fb.set(row.b, Number(row.fb))
  }
  return { buckets, cells, groups }
}

/** The percentiles per bucket (per group and bucket when grouped), zero-filled: Aether's fields, keymeter's beside them. */
export async function percentiles (db: Sql, range: AnalyticsRange, granularity: Granularity, filter: PercentileFilter, group: PercentileGroup) {
  const { buckets, cells, groups } = await histograms(db, range, granularity, filter, group)
  // no provider (or a deleted one) last
  const keys: Array<string | null> = group === 'none' ? [null] : [...groups].sort((a, b) => a === null ? 1 : b === null || a < b ? -1 : 1)
  const named = new Map<string, string>()
  if (group === 'provider') {
    const { rows } = await db.query(sql`SELECT id::text AS id, name FROM providers WHERE id = ANY(${keys.filter((k) => k !== null)}::uuid[])`)
    for (const row of rows as Array<{ id: string, name: string }>) named.set(row.id, row.name)
  }
  const items = []
  for (const [i, bucket] of buckets.entries()) {
    for (const key of keys) {
      const cell = cells.get(`${i}|${key ?? ''}`)
      const [rt50, rt90, rt99] = QUANTILES.map((q) => percentileOf(cell?.rt, q))
      const [fb50, fb90, fb99] = QUANTILES.map((q) => percentileOf(cell?.fb, q))
      items.push({
        date: bucket.date,
        p50_response_time_ms: rt50!,
        p90_response_time_ms: rt90!,
        p99_response_time_ms: rt99!,
        p50_first_byte_time_ms: fb50!,
        p90_first_byte_time_ms: fb90!,
        p99_first_byte_time_ms: fb99!,
        start: new Date(bucket.start).toISOString(),
        end: new Date(bucket.end).toISOString(),
        local_start: bucket.local,
        response_time_samples: samples(cell?.rt),
        first_byte_time_samples: samples(cell?.fb),
        max_relative_error_percent: LATENCY_RELATIVE_ERROR * 100,
        group_by: group,
        group_key: key,
        group_name: key === null ? null : group === 'provider' ? named.get(key) ?? null : key
      })
    }
  }
  return items
}
