// Latency percentiles (Aether's /performance/percentiles): p50/p90/p99 of response time
// and time to first byte per bucket of the range, from the latency histograms the daily
// and hourly rollups keep (accounting/model.ts HISTOGRAMS), never from a scan of raw
// rows: the hours a bucket boundary cuts (a +05:30 midnight) from the quarter-hour
// rollups' histograms, raw rows only for a quarter-hour cut inside (the range's ragged
// ends), as the time series reads them (readPlan). Whole UTC days come from the daily rollup with their few hours that belong
// to another bucket moved by their hourly rows (dayPlan), so a 30-day range merges ~30
// histograms a group plus a few hours a day, not ~720. Buckets wholly settled
// (accounting/rules.ts settledBefore) are kept per app (SettledPercentiles) while
// rollup_late_writes stands, as the heatmap's settled days are: an answer then reads only
// its live and uncached buckets.
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { LATENCY_RELATIVE_ERROR, latencyOfBucket } from '../accounting/model.js'
import { finishedSql, settledBefore } from '../accounting/rules.js'
import { bucketsOf, type Bucket, type Granularity } from './buckets.js'
import { cutHourRows, readPlan, type ReadPlan } from './queries.js'
import type { AnalyticsRange } from './range.js'

/** below this many samples a percentile is null (Aether's rule) */
export const MIN_SAMPLES = 10
const QUANTILES = [0.5, 0.9, 0.99] as const

export type PercentileGroup = 'none' | 'provider' | 'model'

export interface PercentileFilter { providerId: string | null, model: string | null }

/** bucket → count */
type Counts = Map<number, number>

/**
 * The values at percentile_disc(q) of the histogram's samples, for each q in increasing
 * order: the bucket holding the ceil(q × n)-th smallest (the same double arithmetic
 * PostgreSQL uses), reported as latencyOfBucket; nulls below MIN_SAMPLES. One sort of the
 * buckets for all of them.
 */
export function percentilesOf (counts: Counts | undefined, qs: readonly number[]): Array<number | null> {
  let n = 0
  for (const c of counts?.values() ?? []) n += c
  if (counts === undefined || n < MIN_SAMPLES) return qs.map(() => null)
  const sorted = [...counts.keys()].sort((a, b) => a - b)
  const out: Array<number | null> = []
  let seen = 0
  let k = 0
  for (const q of qs) {
    const rank = Math.max(1, Math.ceil(q * n))
    while (seen < rank) seen += counts.get(sorted[k++]!)!
    out.push(latencyOfBucket(sorted[k - 1]!))
  }
  return out
}

const samples = (counts: Counts | undefined) => [...counts?.values() ?? []].reduce((a, b) => a + b, 0)

/**
 * The rollups and their indexes: usage_daily_model / usage_hourly_model (primary keys
 * (day, …) / (bucket, …)) for a model filter or per model; usage_daily_provider /
 * usage_hourly_provider ((day, provider_id) / (bucket, provider_id)) for a provider filter or
 * per provider; usage_daily_provider / usage_hourly_global ((day, …) / (bucket)) otherwise.
 * The cut hours' quarters: usage_quarter_hourly_model (bucket, …) with a filter or a group,
 * usage_quarter_hourly_global (bucket) otherwise.
 */
function rollupsOf (filter: PercentileFilter, group: PercentileGroup) {
  if (filter.model !== null || group === 'model') return { daily: 'usage_daily_model', hourly: 'usage_hourly_model', quarterly: 'usage_quarter_hourly_model' }
  if (filter.providerId !== null || group === 'provider') return { daily: 'usage_daily_provider', hourly: 'usage_hourly_provider', quarterly: 'usage_quarter_hourly_model' }
  return { daily: 'usage_daily_provider', hourly: 'usage_hourly_global', quarterly: 'usage_quarter_hourly_global' }
}

const HOUR = 3_600_000
const DAY = 86_400_000

/** What a read plan's whole hours are read as: UTC days (YYYY-MM-DD) and hours (epoch ms), each added to a bucket (index) with a sign. */
export interface DayPlan {
  days: Array<{ day: string, i: number }>
  hours: Array<{ at: number, i: number, sign: 1 | -1 }>
}

/**
 * A read plan's whole hours as daily and hourly rollup rows. A UTC day inside the whole
 * hours counts in the bucket holding its noon when that bucket holds more than half of
 * its hours (not cut): then each of its other hours is taken out of that bucket by its
 * hourly row, and added to its own bucket unless cut (the raw rows or quarter-hours add
 * it). Every other whole hour counts in its bucket. A day of Europe/Berlin is one UTC day
 * and ±1 or 2 hours; hour buckets never use days.
 */
export function dayPlan (buckets: Bucket[], plan: ReadPlan): DayPlan {
  const cut = new Set(plan.cutHours.map((h) => h.getTime()))
  const from = plan.whole.from.getTime()
  const to = plan.whole.to.getTime()
  let k = 0
  // buckets in order, asked in increasing instants but for each day's noon (then back to its first hour)
  const bucketOf = (at: number) => {
    while (k > 0 && buckets[k]!.start > at) k--
    while (buckets[k]!.end <= at) k++
    return k
  }
  const days: DayPlan['days'] = []
  const hours: DayPlan['hours'] = []
  for (let day = Math.floor(from / DAY) * DAY; day < to; day += DAY) {
    const own = []
    for (let at = Math.max(day, from); at < Math.min(day + DAY, to); at += HOUR) own.push({ at, cut: cut.has(at), i: cut.has(at) ? -1 : bucketOf(at) })
    const whole = day >= from && day + DAY <= to
    const noon = whole ? bucketOf(day + DAY / 2) : -1
    if (whole && own.filter((h) => h.i === noon).length > 12) {
      days.push({ day: new Date(day).toISOString().slice(0, 10), i: noon })
      for (const h of own) {
        if (h.i === noon) continue
        hours.push({ at: h.at, i: noon, sign: -1 })
        if (!h.cut) hours.push({ at: h.at, i: h.i, sign: 1 })
      }
    } else {
      for (const h of own) if (!h.cut) hours.push({ at: h.at, i: h.i, sign: 1 })
    }
  }
  return { days, hours }
}

/** A group's key: a provider that still exists (a deleted one's and no provider's: null, as usage forgets them) or the model. */
function groupKey (group: PercentileGroup, alias: 'r' | 'u'): Fragment {
  if (group === 'none') return raw('NULL::text')
  if (group === 'model') return raw(`${alias}.model`)
  return alias === 'r' ? raw('pr.id::text') : raw('u.provider_id::text')
}

/** A rollup row's provider, joined once per row: a subquery in the select list would run once per histogram element. */
const providerOf = (group: PercentileGroup): Fragment => group === 'provider' ? raw('LEFT JOIN providers pr ON pr.id = r.provider_id') : empty

function predicates (filter: PercentileFilter, alias: 'r' | 'u'): Fragment {
  const parts: Fragment[] = []
  if (filter.providerId !== null) parts.push(sql`${raw(alias)}.provider_id = ${filter.providerId}::uuid`)
  if (filter.model !== null) parts.push(sql`${raw(alias)}.model = ${filter.model}`)
  return parts.length === 0 ? empty : sql`AND ${join(parts, ' AND ')}`
}

/** A bucket's histograms per group key (null: ungrouped, or no provider). */
type Cells = Map<string | null, { rt: Counts, fb: Counts }>

/**
 * Each bucket's histograms of response time and first byte per group, for a run of
 * adjacent buckets, and rollup_late_writes read in the same snapshot.
 */
async function histograms (db: Sql, buckets: Bucket[], filter: PercentileFilter, group: PercentileGroup): Promise<{ cells: Cells[], writes: string }> {
  const plan = readPlan(buckets, true)
  const { days, hours } = dayPlan(buckets, plan)
  const tables = rollupsOf(filter, group)
  const bounds = [...buckets.map((b) => new Date(b.start)), new Date(buckets[buckets.length - 1]!.end)]
  const { rows } = await db.query(sql`
    SELECT p.i, p.g, p.b, sum(p.rt)::bigint AS rt, sum(p.fb)::bigint AS fb
      FROM (
        -- whole UTC days, by the daily rollup's primary key (day, …): both histograms side by side, element o is bucket o - 1
        SELECT d.i, ${groupKey(group, 'r')} AS g, x.o - 1 AS b, coalesce(x.rt, 0) AS rt, coalesce(x.fb, 0) AS fb
          FROM unnest(${days.map((d) => d.day)}::date[], ${days.map((d) => d.i)}::int[]) d(day, i)
          JOIN ${raw(tables.daily)} r ON r.day = d.day ${providerOf(group)}
          CROSS JOIN LATERAL unnest(r.response_time_hist, r.first_byte_time_hist) WITH ORDINALITY x(rt, fb, o)
         WHERE (x.rt <> 0 OR x.fb <> 0) ${predicates(filter, 'r')}
        UNION ALL
        -- whole hours (those a boundary cuts are read by quarter-hour below), by the hourly rollup's primary key (bucket, …): added to their bucket, or taken out of their day's
        SELECT h.i, ${groupKey(group, 'r')}, x.o - 1, h.sign * coalesce(x.rt, 0), h.sign * coalesce(x.fb, 0)
          FROM unnest(${hours.map((h) => new Date(h.at))}::timestamptz[], ${hours.map((h) => h.i)}::int[], ${hours.map((h) => h.sign)}::int[]) h(at, i, sign)
          JOIN ${raw(tables.hourly)} r ON r.bucket = h.at ${providerOf(group)}
          CROSS JOIN LATERAL unnest(r.response_time_hist, r.first_byte_time_hist) WITH ORDINALITY x(rt, fb, o)
         WHERE r.bucket >= ${plan.whole.from} AND r.bucket < ${plan.whole.to} AND (x.rt <> 0 OR x.fb <> 0) ${predicates(filter, 'r')}
        UNION ALL
        -- the cut hours' quarter-hours, by the quarter-hour rollup's primary key (bucket, …): each lies in one bucket
        SELECT width_bucket(r.bucket, ${bounds}::timestamptz[]) - 1, ${groupKey(group, 'r')}, x.o - 1, coalesce(x.rt, 0), coalesce(x.fb, 0)
          FROM ${raw(tables.quarterly)} r ${providerOf(group)}
          CROSS JOIN LATERAL unnest(r.response_time_hist, r.first_byte_time_hist) WITH ORDINALITY x(rt, fb, o)
         WHERE r.bucket = ANY(${plan.quarters}::timestamptz[]) AND (x.rt <> 0 OR x.fb <> 0) ${predicates(filter, 'r')}
        UNION ALL
        -- usage (created_at): one range per quarter-hour cut inside, each row one sample of each latency it has
        SELECT width_bucket(u.created_at, ${bounds}::timestamptz[]) - 1, ${groupKey(group, 'u')}, v.b, v.rt, v.fb
          FROM ${cutHourRows(plan, sql`AND ${finishedSql('u')} ${predicates(filter, 'u')}`)}
          CROSS JOIN LATERAL (VALUES (latency_bucket(u.response_time_ms), 1, 0), (latency_bucket(u.first_byte_time_ms), 0, 1)) v(b, rt, fb)
         WHERE v.b IS NOT NULL
      ) p
     GROUP BY 1, 2, 3 HAVING sum(p.rt) <> 0 OR sum(p.fb) <> 0
    UNION ALL
    -- rollup_late_writes primary key: one row, bucket index -1
    SELECT -1, NULL, 0, writes, 0 FROM rollup_late_writes`)
  const cells: Cells[] = buckets.map(() => new Map())
  let writes = ''
  for (const row of rows as Array<{ i: number, g: string | null, b: number, rt: string, fb: string }>) {
    if (row.i === -1) { writes = row.rt; continue }
    const byGroup = cells[row.i]!
    let cell = byGroup.get(row.g)
    if (cell === undefined) byGroup.set(row.g, cell = { rt: new Map(), fb: new Map() })
    if (row.rt !== '0') cell.rt.set(row.b, Number(row.rt))
    if (row.fb !== '0') cell.fb.set(row.b, Number(row.fb))
  }
  return { cells, writes }
}

/** histogram entries kept at most (each a bucket's count in one group's histogram; ~100 B each with the maps) */
const MAX_KEPT = 500_000

/**
 * The settled buckets' histograms, per app: a bucket that ends before settledBefore(now)
 * changes only with a late write, which moves rollup_late_writes; every answer reads that
 * count with its live buckets, and forgets all it keeps when it moved. A bucket's
 * histograms depend on its span, the filter and the grouping alone (not on the zone or
 * the rest of the range), so that is the key. Least recently used first out.
 */
export class SettledPercentiles {
  readonly #kept = new Map<string, { cells: Cells, size: number }>()
  #writes: string | null = null
  #size = 0

  constructor (private readonly maxKept = MAX_KEPT) {}

  /** the kept cells of a bucket, while `writes` is what they were read under */
  get (key: string): Cells | undefined {
    const entry = this.#kept.get(key)
    if (entry === undefined) return undefined
    this.#kept.delete(key)
    this.#kept.set(key, entry)
    return entry.cells
  }

  get writes (): string | null { return this.#writes }

  /** the count read now: what was kept under another is forgotten */
  observe (writes: string): void {
    if (writes === this.#writes) return
    this.#kept.clear()
    this.#size = 0
    this.#writes = writes
  }

  keep (key: string, cells: Cells): void {
    let size = 1
    for (const cell of cells.values()) size += cell.rt.size + cell.fb.size
    if (size > this.maxKept) return
    const old = this.#kept.get(key)
    if (old !== undefined) { this.#kept.delete(key); this.#size -= old.size }
    while (this.#size + size > this.maxKept) {
      const [oldest, entry] = this.#kept.entries().next().value!
      this.#kept.delete(oldest)
      this.#size -= entry.size
    }
    this.#kept.set(key, { cells, size })
    this.#size += size
  }
}

/** The buckets' histograms: the kept ones from `settled`, the rest read, one statement per run of adjacent buckets. */
async function cellsOf (db: Sql, buckets: Bucket[], filter: PercentileFilter, group: PercentileGroup, settled: SettledPercentiles | undefined, now: Date): Promise<Cells[]> {
  if (settled === undefined) return (await histograms(db, buckets, filter, group)).cells
  const before = settledBefore(now).getTime()
  const keyOf = (b: Bucket) => `${b.start}|${b.end}|${filter.providerId ?? ''}|${filter.model ?? ''}|${group}`
  const assumed = settled.writes
  const cells: Array<Cells | undefined> = buckets.map((b) => assumed === null || b.end > before ? undefined : settled.get(keyOf(b)))
  const runs: Array<{ from: number, to: number }> = []
  for (const [i, kept] of cells.entries()) {
    if (kept !== undefined) continue
    const last = runs[runs.length - 1]
    if (last !== undefined && last.to === i) last.to = i + 1
    else runs.push({ from: i, to: i + 1 })
  }
  const read = await Promise.all(runs.map((run) => histograms(db, buckets.slice(run.from, run.to), filter, group)))
  const counts = runs.length === 0
    ? [String((await db.query('SELECT writes FROM rollup_late_writes')).rows[0].writes)]
    : read.map((r) => r.writes)
  const usedKept = runs.length !== 1 || runs[0]!.to - runs[0]!.from !== buckets.length
  if (!usedKept && assumed !== counts[0]) settled.observe(counts[0]!)
  // a late write since the kept buckets were read (or between these statements): all of it again, in one statement
  else if (counts.some((w) => w !== assumed)) {
    const all = await histograms(db, buckets, filter, group)
    settled.observe(all.writes)
    for (const [i, b] of buckets.entries()) if (b.end <= before) settled.keep(keyOf(b), all.cells[i]!)
    return all.cells
  }
  for (const [k, run] of runs.entries()) {
    for (let i = run.from; i < run.to; i++) {
      cells[i] = read[k]!.cells[i - run.from]!
      if (buckets[i]!.end <= before) settled.keep(keyOf(buckets[i]!), cells[i]!)
    }
  }
  return cells as Cells[]
}

/** A bucket's cells with the providers not in `named` added into no provider's (new maps: kept cells are shared). */
function withoutGone (byGroup: Cells, named: Map<string, string>): Cells {
  const out: Cells = new Map()
  for (const [key, cell] of byGroup) {
    const target = key === null || named.has(key) ? key : null
    const into = out.get(target)
    if (into === undefined) { out.set(target, { rt: new Map(cell.rt), fb: new Map(cell.fb) }); continue }
    for (const [b, c] of cell.rt) into.rt.set(b, (into.rt.get(b) ?? 0) + c)
    for (const [b, c] of cell.fb) into.fb.set(b, (into.fb.get(b) ?? 0) + c)
  }
  return out
}

/** The percentiles per bucket (per group and bucket when grouped), zero-filled: Aether's fields, keymeter's beside them. */
export async function percentiles (db: Sql, range: AnalyticsRange, granularity: Granularity, filter: PercentileFilter, group: PercentileGroup, settled?: SettledPercentiles, now = new Date()) {
  const buckets = bucketsOf(range, granularity)
  let cellsByBucket = await cellsOf(db, buckets, filter, group, settled, now)
  const named = new Map<string, string>()
  if (group === 'provider') {
    const ids = [...new Set(cellsByBucket.flatMap((byGroup) => [...byGroup.keys()]))].filter((k) => k !== null)
    const { rows } = await db.query(sql`SELECT id::text AS id, name FROM providers WHERE id = ANY(${ids}::uuid[])`)
    for (const row of rows as Array<{ id: string, name: string }>) named.set(row.id, row.name)
    // a provider deleted since a kept bucket was read: its histograms are no provider's, as a read now gives them
    if (ids.some((id) => !named.has(id))) cellsByBucket = cellsByBucket.map((byGroup) => withoutGone(byGroup, named))
  }
  const groups = new Set<string | null>(cellsByBucket.flatMap((byGroup) => [...byGroup.keys()]))
  // no provider (or a deleted one) last
  const keys: Array<string | null> = group === 'none' ? [null] : [...groups].sort((a, b) => a === null ? 1 : b === null || a < b ? -1 : 1)
  const items = []
  for (const [i, bucket] of buckets.entries()) {
    for (const key of keys) {
      const cell = cellsByBucket[i]!.get(key)
      const [rt50, rt90, rt99] = percentilesOf(cell?.rt, QUANTILES)
      const [fb50, fb90, fb99] = percentilesOf(cell?.fb, QUANTILES)
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
