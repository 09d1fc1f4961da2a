// Rollups are kept as deltas: a finished usage row contributes one request, its
// tokens and costs to its hour (and day); an update of a row adds "after − before".
// Written in the same transaction as the rows, they are never behind and never
// count a request twice — even when a late completion replaces a timed-out one.
import sql, { join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { ATTEMPTS, bucketsOf, DIMENSIONS, finestKey, HISTOGRAM_NAMES, HISTOGRAMS, histogramsOf, latencyBucket, MEASURES, PROVIDER_MONTH, ROLLUPS, summedColumns, type Buckets, type HistogramName, type MeasureName, type Rollup, type RollupSource, type RollupTable } from './model.js'
import { isFinished, isLateWrite, NIL_UUID } from './rules.js'
import { keyTenantSql } from './tenant.js'

export type { RollupSource }

/** A batch's sums at one grain: counts as numbers, money as bigint nano-USD (model.ts). */
type Measures = Record<MeasureName, number | bigint>

/** model.ts's finest bucket: every bucket of a row (quarter, hour, day) is a function of its quarter-hour */
const QUARTER_MS = 900_000

/** listed once, not per row: accumulate runs for every row of every batch */
const MEASURE_LIST = Object.entries(MEASURES) as Array<[MeasureName, typeof MEASURES[MeasureName]]>

const zero = (): Measures => Object.fromEntries(MEASURE_LIST.map(([name, m]) => [name, m.money ? 0n : 0])) as Measures

/** Adds a row's contribution to `m` (sign +1), or takes it out (−1). */
function accumulate (m: Measures, row: RollupSource, sign: 1 | -1): void {
  for (const [name, measure] of MEASURE_LIST) {
    if (measure.money) (m[name] as bigint) += sign === 1 ? measure.of(row) : -measure.of(row)
    else (m[name] as number) += sign * measure.of(row)
  }
}

function sum (into: Measures, m: Measures): void {
  for (const name of Object.keys(m) as MeasureName[]) (into[name] as number) += m[name] as number
}

const isZero = (m: Measures, names: readonly MeasureName[]) => names.every((name) => m[name] === 0 || m[name] === 0n)

/** A batch's latency histograms at one grain: bucket → count (model.ts HISTOGRAMS) */
type Histograms = Record<HistogramName, Map<number, number>>

const noHistograms = (): Histograms => Object.fromEntries(HISTOGRAM_NAMES.map((name) => [name, new Map<number, number>()])) as Histograms

function countLatencies (h: Histograms, row: RollupSource, sign: 1 | -1): void {
  for (const name of HISTOGRAM_NAMES) {
    const ms = HISTOGRAMS[name].of(row)
    if (ms === null) continue
    const i = latencyBucket(ms)
    h[name].set(i, (h[name].get(i) ?? 0) + sign)
  }
}

function addHistograms (into: Histograms, h: Histograms): void {
  for (const name of HISTOGRAM_NAMES) for (const [i, n] of h[name]) into[name].set(i, (into[name].get(i) ?? 0) + n)
}

/** A histogram as the bigint[] the rollup keeps: element i + 1 counts bucket i, no trailing zeros. */
function histogramArray (counts: Map<number, number>): number[] {
  let length = 0
  for (const [i, n] of counts) if (n !== 0 && i + 1 > length) length = i + 1
  return Array.from({ length }, (_v, i) => counts.get(i) ?? 0)
}

/** An executed request candidate (not skipped or available), as inserted. */
export interface SentCandidate {
  request_id: string
  provider_id: string | null
  status: string
  latency_ms: number | null
  created_at: Date
}

const ATTEMPT_MEASURES = ATTEMPTS.measures
type AttemptMeasures = Record<typeof ATTEMPT_MEASURES[number], number>
const noAttempts = (): AttemptMeasures => Object.fromEntries(ATTEMPT_MEASURES.map((name) => [name, 0])) as AttemptMeasures

/** Accumulates the deltas of a batch, one entry per rollup row touched. */
export class RollupDeltas {
  /**
   * The batch's sums at the finest grain every rollup is a roll-up of (quarter-hour ×
   * user × key × provider × model × format): one entry per row touched, the coarser
   * tables' rows summed from these few entries when written.
   */
  private readonly fine = new Map<string, { at: Buckets, source: RollupSource, m: Measures, h: Histograms }>()
  /** provider attempts per quarter-hour × provider: the quarter table's rows, the hourly ones summed from them */
  private readonly attempts = new Map<string, { quarter: number, provider_id: string, m: AttemptMeasures }>()
  /** requests given an executed candidate in this batch: their attempts are their candidates */
  private readonly tried = new Set<string>()

  /**
   * Records the batch's executed candidates, each an attempt on its own provider. Call
   * before change(): a finished request with an executed candidate adds no implicit attempt.
   */
  sent (candidates: SentCandidate[]): void {
    const perRequest = new Map<string, { at: Date, count: number }>()
    for (const c of candidates) {
      this.tried.add(c.request_id)
      const seen = perRequest.get(c.request_id)
      if (seen === undefined) perRequest.set(c.request_id, { at: c.created_at, count: 1 })
      else seen.count++
      if (c.provider_id === null) continue
      this.attempt(c.created_at, c.provider_id, {
        attempts: 1, successes: c.status === 'success' ? 1 : 0, failures: c.status === 'failed' ? 1 : 0,
        latency_sum_ms: c.latency_ms ?? 0, latency_count: c.latency_ms === null ? 0 : 1, fallbacks: 0
      })
    }
    // a request's candidates all come with its one accepted completion, so a batch sees them all
    for (const { at, count } of perRequest.values()) {
      if (count > 1) this.attempt(at, NIL_UUID, { attempts: 0, successes: 0, failures: 0, latency_sum_ms: 0, latency_count: 0, fallbacks: 1 })
    }
  }

  /** Records a row going from `before` to `after` (either may be null or unfinished). */
  change (before: RollupSource | null, after: RollupSource | null): void {
    // the rate window counts every row, finished or not
    if (before !== null) this.second(before, -1)
    if (after !== null) this.second(after, 1)
    if (before !== null && isFinished(before.status)) this.add(before, -1)
    if (after !== null && isFinished(after.status)) this.add(after, 1)
    // The implicit attempt of a finished request reported without an executed candidate.
    // Candidates come only with a request's one accepted completion, and a finished row
    // changes afterwards only by a late completion replacing a timeout sweep (which has
    // none): so `before` never had candidates, or nothing about it changes (+1 − 1).
    if (before !== null && isFinished(before.status) && before.providerId !== null) this.implicit(before, -1)
    if (after !== null && isFinished(after.status) && after.providerId !== null && !this.tried.has(after.requestId)) this.implicit(after, 1)
  }

  private implicit (row: RollupSource, sign: 1 | -1): void {
    const failed = row.status === 'failed' ? 1 : 0
    this.attempt(row.createdAt, row.providerId!, {
      attempts: sign, successes: sign * (1 - failed), failures: sign * failed,
      latency_sum_ms: sign * (row.responseTimeMs ?? 0), latency_count: row.responseTimeMs === null ? 0 : sign, fallbacks: 0
    })
  }

  private attempt (at: Date, providerId: string, m: AttemptMeasures): void {
    const quarter = Math.floor(at.getTime() / QUARTER_MS)
    const id = `${quarter}|${providerId}`
    let entry = this.attempts.get(id)
    if (entry === undefined) {
      entry = { quarter, provider_id: providerId, m: noAttempts() }
      this.attempts.set(id, entry)
    }
    for (const name of ATTEMPT_MEASURES) entry.m[name] += m[name]
  }

  /** usage_key_seconds' deltas: key × second (epoch seconds) → requests and tokens */
  private readonly seconds = new Map<string, { api_key_id: string, second: number, requests: number, tokens: number }>()

  private second (row: RollupSource, sign: 1 | -1): void {
    if (row.apiKeyId === null) return
    const second = Math.floor(row.createdAt.getTime() / 1000)
    const id = `${row.apiKeyId}|${second}`
    let entry = this.seconds.get(id)
    if (entry === undefined) {
      entry = { api_key_id: row.apiKeyId, second, requests: 0, tokens: 0 }
      this.seconds.set(id, entry)
    }
    entry.requests += sign
    entry.tokens += sign * row.totalTokens
  }

  /** The touched usage_key_seconds rows, in primary-key order (a completion moves only its tokens). */
  secondRows (): Array<{ api_key_id: string, second: number, requests: number, tokens: number }> {
    return [...this.seconds.values()]
      .filter((entry) => entry.requests !== 0 || entry.tokens !== 0)
      .sort((a, b) => a.api_key_id < b.api_key_id ? -1 : a.api_key_id > b.api_key_id ? 1 : a.second - b.second)
  }

  /** The touched provider attempts rows of one grain (ATTEMPTS.tables), in primary-key order. */
  attemptRows (grain: keyof typeof ATTEMPTS.tables = 'hour'): Array<Record<string, string>> {
    const per = grain === 'hour' ? 4 : 1
    const rows = new Map<string, { bucket: string, provider_id: string, m: AttemptMeasures }>()
    for (const { quarter, provider_id: providerId, m } of this.attempts.values()) {
      const bucket = new Date(Math.floor(quarter / per) * per * QUARTER_MS).toISOString()
      const id = `${bucket}|${providerId}`
      let row = rows.get(id)
      if (row === undefined) rows.set(id, row = { bucket, provider_id: providerId, m: noAttempts() })
      for (const name of ATTEMPT_MEASURES) row.m[name] += m[name]
    }
    const order = (entry: { bucket: string, provider_id: string }) => `${entry.bucket}|${entry.provider_id}`
    return [...rows.values()]
      .filter((entry) => ATTEMPT_MEASURES.some((name) => entry.m[name] !== 0))
      .sort((a, b) => order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0)
      .map((entry) => ({ bucket: entry.bucket, provider_id: entry.provider_id, ...Object.fromEntries(ATTEMPT_MEASURES.map((name) => [name, entry.m[name].toString()])) }))
  }

  /** each quarter-hour's buckets, made once a batch: a batch's rows fall in a few (three ISO strings a row otherwise) */
  private readonly buckets = new Map<number, Buckets>()

  /** provider × UTC day → the change of its actual cost (providers.monthly_used; the SQL cuts the provider's period, PROVIDER_MONTH) */
  private readonly months = new Map<string, { id: string, day: string, cost: bigint }>()

  /**
   * The providers' monthly_used changes per UTC day, in id order (the lock order). The
   * statement sums them by the provider's quota period and keeps each provider's newest
   * period with a change: an older period is one the provider's row has left or is about
   * to leave, which reads as 0 spent anyway.
   */
  providerMonthRows (): Array<{ id: string, day: string, cost: string }> {
    return [...this.months.values()].filter((e) => e.cost !== 0n)
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : a.day < b.day ? -1 : a.day > b.day ? 1 : 0)
      .map((e) => ({ id: e.id, day: e.day, cost: e.cost.toString() }))
  }

  private month (row: RollupSource, sign: 1 | -1): void {
    if (row.providerId === null) return
    const day = PROVIDER_MONTH.day(row.createdAt)
    const id = `${row.providerId}|${day}`
    let entry = this.months.get(id)
    if (entry === undefined) {
      entry = { id: row.providerId, day, cost: 0n }
      this.months.set(id, entry)
    }
    const cost = BigInt(MEASURES[PROVIDER_MONTH.measure].of(row))
    entry.cost += sign === 1 ? cost : -cost
  }

  /** the oldest created_at (ms) of the batch's rows: a late write when settled (rules.ts) */
  earliest = Number.POSITIVE_INFINITY

  private add (row: RollupSource, sign: 1 | -1): void {
    this.month(row, sign)
    if (row.createdAt.getTime() < this.earliest) this.earliest = row.createdAt.getTime()
    const quarter = Math.floor(row.createdAt.getTime() / QUARTER_MS)
    let at = this.buckets.get(quarter)
    if (at === undefined) {
      at = bucketsOf(row.createdAt)
      this.buckets.set(quarter, at)
    }
    const id = finestKey(row, at)
    let entry = this.fine.get(id)
    if (entry === undefined) {
      entry = { at, source: row, m: zero(), h: noHistograms() }
      this.fine.set(id, entry)
    }
    accumulate(entry.m, row, sign)
    countLatencies(entry.h, row, sign)
  }

  /** The touched rollup rows of one table, in primary-key order, as JSON-ready records. */
  rowsOf (table: RollupTable): Array<Record<string, string | number[]>> {
    const r = ROLLUPS.find((r) => r.table === table)!
    const { grain, measures, only } = r
    const histograms = histogramsOf(r)
    const rows = new Map<string, { key: Record<string, string>, m: Measures, h: Histograms }>()
    for (const { at, source, m, h } of this.fine.values()) {
      if (only !== undefined && !only.of(source)) continue
      const key = Object.fromEntries(grain.map((name) => [DIMENSIONS[name].column, DIMENSIONS[name].of(source, at)]))
      const id = Object.values(key).join('|')
      const row = rows.get(id)
      if (row === undefined) {
        const copy = noHistograms()
        addHistograms(copy, h)
        rows.set(id, { key, m: { ...m }, h: copy })
      } else {
        sum(row.m, m)
        addHistograms(row.h, h)
      }
    }
    return [...rows.entries()]
      .map(([id, row]) => ({ id, row, arrays: histograms.map((name) => [name, histogramArray(row.h[name])] as const) }))
      .filter(({ row, arrays }) => !isZero(row.m, measures) || arrays.some(([, counts]) => counts.length > 0))
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
      .map(({ row, arrays }) => ({ ...row.key, ...Object.fromEntries(measures.map((name) => [name, row.m[name].toString()])), ...Object.fromEntries(arrays) }))
  }
}

export interface Charges {
  keys: Array<{ id: string, requests: string, tokens: string, cost: string }>
  users: Array<{ id: string, cost: string }>
}

type Typed = ReadonlyArray<readonly [name: string, type: string]>

/** The rollups a batch adds to, each its own parameter of WRITE_TOTALS, in this order: the usage rollups, then the provider attempts. */
type AttemptTable = typeof ATTEMPTS.tables[keyof typeof ATTEMPTS.tables]
const ATTEMPT_GRAINS = Object.keys(ATTEMPTS.tables) as Array<keyof typeof ATTEMPTS.tables>
const attemptGrainOf = (table: string) => ATTEMPT_GRAINS.find((grain) => ATTEMPTS.tables[grain] === table)

const UPSERTS: Array<{ table: RollupTable | AttemptTable, key: Typed, measures: Typed, add: ReadonlyArray<(a: string, b: string) => string> }> = [
  ...ROLLUPS.map((r: Rollup) => {
    const columns = summedColumns(r)
    return {
      table: r.table,
      key: r.grain.map((name) => [DIMENSIONS[name].column, DIMENSIONS[name].type] as const),
      measures: columns.map((c) => [c.name, c.type] as const),
      add: columns.map((c) => c.add)
    }
  }),
  ...ATTEMPT_GRAINS.map((grain) => ({
    table: ATTEMPTS.tables[grain],
    key: ATTEMPTS.grain.map((name) => [DIMENSIONS[name].column, DIMENSIONS[name].type] as const),
    measures: ATTEMPTS.measures.map((name) => [name, ATTEMPTS.types[name]] as const),
    add: ATTEMPTS.measures.map(() => (a: string, b: string) => `${a} + ${b}`)
  }))
]

const names = (columns: Typed) => raw(columns.map(([name]) => name).join(', '))

/** One rollup's upsert as a CTE: its rows from the JSON records of `rows`, each measure added on conflict. */
function upsertCte ({ table, key, measures, add }: typeof UPSERTS[number], rows: string): Fragment {
  const columns = [...key, ...measures]
  return sql`${raw(table)} AS (
      INSERT INTO ${raw(table)} AS t (${names(columns)})
      SELECT ${names(columns)}
        FROM jsonb_to_recordset(${rows}::jsonb) AS d(${raw(columns.map(([name, type]) => `${name} ${type}`).join(', '))})
      ON CONFLICT (${names(key)}) DO UPDATE SET
        ${raw(measures.map(([name], i) => `${name} = ${add[i]!(`t.${name}`, `EXCLUDED.${name}`)}`).join(', '))}
      RETURNING 1
    )`
}

/** The first day of the quota period of a change's day, by its provider's reset day */
const PROVIDER_PERIOD_START = PROVIDER_MONTH.periodStartSql('d.day', PROVIDER_MONTH.resetDaySql('q.config'))

/** The batch's clock, the keys', users' and providers' charges, the rate window's seconds, then one parameter per rollup. */
function writeTotalsSql (now: Date, late: boolean, keys: string, users: string, providers: string, seconds: string, rows: string[]): Fragment {
  return sql`
    WITH late AS (
      -- a settled hour changes: the caches of settled hours rebuild (rules.ts settledBefore)
      UPDATE rollup_late_writes SET writes = writes + 1 WHERE ${late} RETURNING 1
    ), keys AS (
      UPDATE api_keys k
         SET total_requests = k.total_requests + c.requests, total_tokens = k.total_tokens + c.tokens,
             total_cost = k.total_cost + c.cost, balance_used = k.balance_used + c.cost,
             last_used_at = GREATEST(k.last_used_at, ${now}), updated_at = ${now}
        FROM jsonb_to_recordset(${keys}::jsonb) AS c(id uuid, requests bigint, tokens bigint, cost bigint)
       WHERE k.id = c.id
      RETURNING 1
    ), users AS (
      -- total_used follows every charge; only a quota reset parts it from used
      UPDATE users u SET used = u.used + c.cost, total_used = u.total_used + c.cost
        FROM jsonb_to_recordset(${users}::jsonb) AS c(id uuid, cost bigint)
       WHERE u.id = c.id
      RETURNING 1
    ), providers AS (
      -- each provider's newest quota period the batch changes (its reset day: PROVIDER_MONTH); a newer
      -- period starts from this batch's change, an older one is left alone (providers primary key)
      UPDATE providers p
         SET monthly_used = CASE WHEN p.monthly_used_month = c.month THEN p.monthly_used + c.cost ELSE c.cost END, monthly_used_month = c.month
        FROM (SELECT DISTINCT ON (s.id) s.id, s.month, s.cost
                FROM (SELECT d.id, ${raw(PROVIDER_PERIOD_START)} AS month, sum(d.cost)::bigint AS cost
                        FROM jsonb_to_recordset(${providers}::jsonb) AS d(id uuid, day date, cost bigint) JOIN providers q ON q.id = d.id
                       GROUP BY 1, 2) s
               WHERE s.cost <> 0
               ORDER BY s.id, s.month DESC) c
       WHERE p.id = c.id AND (p.monthly_used_month IS NULL OR p.monthly_used_month <= c.month)
      RETURNING 1
    ), seconds AS (
      -- each key's tenant from its row (api_keys primary key); the batch holds KEY_DELETION_LOCK, so every key is there
      INSERT INTO usage_key_seconds AS t (api_key_id, second, tenant_id, requests, tokens)
      SELECT d.api_key_id, to_timestamp(d.second), ${keyTenantSql('k')}, d.requests, d.tokens
        FROM jsonb_to_recordset(${seconds}::jsonb) AS d(api_key_id uuid, second bigint, requests int, tokens bigint) JOIN api_keys k ON k.id = d.api_key_id
      ON CONFLICT (api_key_id, second, tenant_id) DO UPDATE SET requests = t.requests + EXCLUDED.requests, tokens = t.tokens + EXCLUDED.tokens
      RETURNING 1
    ), ${join(UPSERTS.map((upsert, i) => upsertCte(upsert, rows[i]!)), ', ')}
    -- read (so run) in the order the statement had before: the rollups, then the keys and users, then the window's seconds
    SELECT ${raw(UPSERTS.map(({ table }) => `(SELECT count(*) FROM ${table})`).join(' + '))} + (SELECT count(*) FROM keys) + (SELECT count(*) FROM users)
         + (SELECT count(*) FROM seconds) + (SELECT count(*) FROM providers) + (SELECT count(*) FROM late) AS touched`
}

/**
 * Everything a batch adds to shared rows — the rollups, the keys', users' and
 * providers' charges, the rate window's seconds — in ONE statement. These are the rows every concurrent batch contends
 * for; as one statement, their locks are held for one round trip and the commit,
 * not for a conversation with a busy application server.
 */
export async function writeTotals (db: Sql, deltas: RollupDeltas, charges: Charges, now: Date): Promise<void> {
  const rows = UPSERTS.map(({ table }) => {
    const grain = attemptGrainOf(table)
    return grain === undefined ? deltas.rowsOf(table as RollupTable) : deltas.attemptRows(grain)
  })
  const seconds = deltas.secondRows()
  const providers = deltas.providerMonthRows()
  if (rows.every((list) => list.length === 0) && charges.keys.length + charges.users.length + seconds.length + providers.length === 0) return
  const query = writeTotalsSql(now, isLateWrite(deltas.earliest, now), JSON.stringify(charges.keys), JSON.stringify(charges.users), JSON.stringify(providers), JSON.stringify(seconds),
    rows.map((list) => JSON.stringify(list)))
  await db.query(query.text, query.values)
}
