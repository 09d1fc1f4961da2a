// The prompt-cache data kept at ingestion, in the batch's transaction:
//
// - interval histograms: each completed request's gap to the previous completed
//   request of its key and of its user (cache_interval_hourly; the timeline's points
//   per user and hour in cache_points_hourly, and each point with its gap and model in
//   cache_timeline_points);
// - cache economics (cache_savings_hourly, by the request's model and provider): what each
//   finished request's cache reads saved and its writes cost above the input price, and the
//   writes that expired unread because the key's next request came after their TTL (by the
//   writer's model and provider); summed by hour (…_global) and by hour × model × provider (…_model).
//
// A timeline is ordered by (created_at, request_id). A request that completes late
// lands between two requests already recorded: the gap between them is taken out and
// the two new gaps put in, and the earlier request's "next gap" (which decides if its
// writes were wasted) changes with it. Completed is a final state (a completion is
// received once), so requests only ever join a timeline.
//
// Batches that touch the same key or user take that timeline's lock (a transaction
// advisory lock, in one global order, after the request locks and the batch's own row
// writes), so the neighbours a batch reads cannot change before it commits.
import { Columns } from '../../../db/columns.js'
import { usageByRequestSql } from '../../../db/partitions.js'
import type { Sql } from '../../../db/prisma.js'
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import { DIMENSIONS, hour } from '../model.js'
import { cacheEconomics, componentCost, tierPricesJoinSql } from '../pricing.js'
import { isFinished, NIL_UUID } from '../rules.js'
import { scopeTenantSql } from '../tenant.js'
import { binOf, FIRST_BIN, lastBinWithin } from './bins.js'
import { pack, sqlEntries, sqlEntry, type BinEntry } from './packed.js'

/** the interval timeline's points: gaps of at most 120 minutes */
export const TIMELINE_MAX_GAP_MS = 120 * 60_000
const LAST_POINT_BIN = lastBinWithin(TIMELINE_MAX_GAP_MS)
/** Each cache write kind's TTL: its writes expired unread when the key's next completed request came later */
export const WRITE_TTL_MS = { '5m': 5 * 60_000, '1h': 60 * 60_000 } as const
const HOUR_MS = 3_600_000
/** An hour number (ms since the epoch ÷ 1 h) as the tables key it. */
const bucketOf = (hourNo: number) => hour(new Date(hourNo * HOUR_MS))

/** What the cache data needs of a usage row (ingestion's row state has it all). */
export interface CacheRowSource {
  requestId: string
  status: string
  createdAt: Date
  userId: string | null
  apiKeyId: string | null
  providerId: string | null
  model: string
  inputTokens: number
  cacheCreation5m: number
  cacheCreation1h: number
  cacheReadTokens: number
  /** unit prices used, nano-USD per 1M tokens; null when unpriced */
  snapshot: { input: bigint, cacheWrite5m: bigint, cacheWrite1h: bigint, cacheRead: bigint } | null
}

const perMillion = componentCost

/** A finished request's cache economics, nano-USD (pricing.ts cacheEconomics: each term rounded once, half away from zero). */
export function savingsOf (row: CacheRowSource) {
  return {
    ...cacheEconomics({ cacheRead: row.cacheReadTokens, cacheWrite5m: row.cacheCreation5m, cacheWrite1h: row.cacheCreation1h }, row.snapshot),
    write5mTokens: BigInt(row.cacheCreation5m),
    write1hTokens: BigInt(row.cacheCreation1h)
  }
}

/** What a request's savings and its writes' waste are attributed to, beside its hour, user and key: providerId NIL_UUID for none. */
interface Group { model: string, providerId: string }
const providerOf = (row: CacheRowSource): string => row.providerId ?? NIL_UUID
const groupOf = (row: CacheRowSource): Group => ({ model: row.model, providerId: providerOf(row) })

/** A writer as the waste rule needs it. */
interface Writer extends Group { at: number, userId: string | null, apiKeyId: string, write5m: number, write1h: number, price5m: bigint | null, price1h: bigint | null }

/**
 * The writes of a request that expired unread, given the gap to its key's next
 * completed request (null: none yet — not wasted until one comes too late; the
 * queries judge a key's last request against the clock). A gap equal to the TTL is
 * still a hit. wastedTokensSql is this rule for the rebuild.
 */
export function wasteOf (writer: Pick<Writer, 'write5m' | 'write1h' | 'price5m' | 'price1h'>, nextGapMs: number | null) {
  const w5 = nextGapMs !== null && nextGapMs > WRITE_TTL_MS['5m'] ? writer.write5m : 0
  const w1 = nextGapMs !== null && nextGapMs > WRITE_TTL_MS['1h'] ? writer.write1h : 0
  return {
    wasted5mTokens: BigInt(w5),
    wasted1hTokens: BigInt(w1),
    wastedCost: (writer.price5m === null ? 0n : perMillion(w5, writer.price5m)) + (writer.price1h === null ? 0n : perMillion(w1, writer.price1h))
  }
}

/** wasteOf's tokens in SQL: `tokens` of a write of this kind, given the gap (ms) to the key's next completed request (NULL: none yet). */
export const wastedTokensSql = (kind: keyof typeof WRITE_TTL_MS, tokens: Fragment, nextGapMs: Fragment): Fragment =>
  sql`CASE WHEN ${nextGapMs} > ${raw(String(WRITE_TTL_MS[kind]))} THEN ${tokens} ELSE 0 END`

const SAVINGS = ['readSaving', 'write5mPremium', 'write1hPremium', 'write5mTokens', 'write1hTokens', 'wasted5mTokens', 'wasted1hTokens', 'wastedCost'] as const
type Savings = Record<typeof SAVINGS[number], bigint>

/** each saving's column in cache_savings_hourly (and cache_savings_hourly_global, cache_savings_hourly_model) */
const SAVINGS_COLUMN: Record<typeof SAVINGS[number], string> = {
  readSaving: 'read_saving',
  write5mPremium: 'write_5m_premium',
  write1hPremium: 'write_1h_premium',
  write5mTokens: 'cache_write_5m_tokens',
  write1hTokens: 'cache_write_1h_tokens',
  wasted5mTokens: 'wasted_5m_tokens',
  wasted1hTokens: 'wasted_1h_tokens',
  wastedCost: 'wasted_cost'
}
/** the measure columns, in SAVINGS' order */
export const SAVINGS_COLUMN_NAMES = SAVINGS.map((f) => SAVINGS_COLUMN[f])
const SAVINGS_COLUMNS = SAVINGS_COLUMN_NAMES.join(', ')
const SAVINGS_FIELDS = SAVINGS.map((f) => `"${f}"`).join(', ')
const SAVINGS_SUMS = SAVINGS.map((f) => `sum("${f}")`).join(', ')
const SAVINGS_RECORD = SAVINGS.map((f) => `"${f}" bigint`).join(', ')
const SAVINGS_ADDED = SAVINGS_COLUMN_NAMES.map((c) => `${c} = t.${c} + EXCLUDED.${c}`).join(', ')

/**
 * cache_savings_hourly summed over users and keys, each by its primary key: ingestion adds
 * a batch's deltas to them (writeDeltas), the rebuild sums them again (rebuild.ts), a key's
 * deletion takes its part out (corrections.ts forgetKey).
 */
export const SAVINGS_SUMMED = [
  { table: 'cache_savings_hourly_global', keys: ['bucket'] },
  { table: 'cache_savings_hourly_model', keys: ['bucket', 'model', 'provider_id'] }
] as const

// one CTE per summed table, each in its key order (the lock order of every batch)
const SAVINGS_SUMMED_CTES = SAVINGS_SUMMED.map(({ table, keys }) => `added_${table} AS (
      INSERT INTO ${table} AS t (${keys.join(', ')}, ${SAVINGS_COLUMNS})
      SELECT ${keys.join(', ')}, ${SAVINGS_SUMS} FROM savings_deltas
       GROUP BY ${keys.join(', ')} ORDER BY ${keys.join(', ')}
      ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${SAVINGS_ADDED}
      RETURNING 1
    )`).join(', ')
const SAVINGS_SUMMED_COUNTS = SAVINGS_SUMMED.map(({ table }) => `(SELECT count(*) FROM added_${table})`).join(' + ')

/** A point of the interval timeline; model null: an old request's, read from usage when written. */
export interface TimelinePoint { userId: string, at: number, rid: string, gapMs: number, model: string | null }

/** The changes one batch makes to the cache tables. */
export class CacheDeltas {
  readonly intervals = new Map<string, { scope: string, scope_id: string, bucket: string, bin_index: number, count: number, sum_ms: number }>()
  readonly points = new Map<string, { bucket: string, user_id: string, count: number }>()
  /** requests that became points, or points whose gap shrank (a late request came in before them) */
  readonly timelinePoints = new Map<string, TimelinePoint>()
  readonly savings = new Map<string, { bucket: string, user_id: string, api_key_id: string, model: string, provider_id: string } & Savings>()
  /** timelines whose last request is now one of the batch's */
  readonly tails: Array<{ scope: string, id: string, row: CacheRowSource }> = []

  interval (scope: string, scopeId: string, atMs: number, gapMs: number | null, sign: 1 | -1): void {
    const hourNo = Math.floor(atMs / HOUR_MS)
    const bin = gapMs === null ? FIRST_BIN : binOf(gapMs)
    const id = `${scope}|${scopeId}|${hourNo}|${bin}`
    let entry = this.intervals.get(id)
    if (entry === undefined) {
      entry = { scope, scope_id: scopeId, bucket: bucketOf(hourNo), bin_index: bin, count: 0, sum_ms: 0 }
      this.intervals.set(id, entry)
    }
    entry.count += sign
    entry.sum_ms += sign * (gapMs ?? 0)
    if (scope === 'user' && bin >= 0 && bin <= LAST_POINT_BIN) {
      const pointId = `${hourNo}|${scopeId}`
      let point = this.points.get(pointId)
      if (point === undefined) {
        point = { bucket: entry.bucket, user_id: scopeId, count: 0 }
        this.points.set(pointId, point)
      }
      point.count += sign
    }
  }

  /** A user timeline's request and its (new) gap: kept when it makes the request a point. Gaps only shrink (requests only join). */
  point (userId: string, at: number, rid: string, gapMs: number | null, model: string | null): void {
    if (gapMs !== null && gapMs <= TIMELINE_MAX_GAP_MS) this.timelinePoints.set(`${userId}|${rid}`, { userId, at, rid, gapMs, model })
  }

  saving (atMs: number, userId: string, apiKeyId: string, group: Group, parts: Partial<Savings>, sign: 1n | -1n): void {
    const hourNo = Math.floor(atMs / HOUR_MS)
    const id = `${hourNo}|${userId}|${apiKeyId}|${group.model}|${group.providerId}`
    let entry = this.savings.get(id)
    if (entry === undefined) {
      entry = {
        bucket: bucketOf(hourNo), user_id: userId, api_key_id: apiKeyId, model: group.model, provider_id: group.providerId,
        ...Object.fromEntries(SAVINGS.map((name) => [name, 0n])) as Savings
      }
      this.savings.set(id, entry)
    }
    for (const name of SAVINGS) entry[name] += sign * (parts[name] ?? 0n)
  }

  waste (writer: Writer, nextGapMs: number | null, sign: 1n | -1n): void {
    if (writer.userId === null || (writer.write5m === 0 && writer.write1h === 0)) return
    this.saving(writer.at, writer.userId, writer.apiKeyId, writer, wasteOf(writer, nextGapMs), sign)
  }
}

const KEY_SCOPE = 'api_key'
const USER_SCOPE = 'user'
/** joining requests further apart than this are read as separate segments of their timeline */
const CLUSTER_GAP_MS = 10 * 60_000

/** A request already in a timeline, as the segment reads return it. */
type OldRow = Writer & { rid: string }

/**
 * Locks the timelines of the batch's newly completed requests, reads the old
 * timeline around them, and writes the histogram and economics deltas. Call it after
 * the batch's usage rows are written: the reads leave the joining requests out.
 */
export async function recordCacheData (db: Sql, before: Map<string, CacheRowSource>, after: CacheRowSource[]): Promise<void> {
  const deltas = new CacheDeltas()
  for (const row of after) {
    const prior = before.get(row.requestId) ?? null
    if (prior !== null && isFinished(prior.status) && prior.userId !== null && prior.apiKeyId !== null) {
      deltas.saving(prior.createdAt.getTime(), prior.userId, prior.apiKeyId, groupOf(prior), savingsOf(prior), -1n)
    }
    if (isFinished(row.status) && row.userId !== null && row.apiKeyId !== null) {
      deltas.saving(row.createdAt.getTime(), row.userId, row.apiKeyId, groupOf(row), savingsOf(row), 1n)
    }
  }

  const joining = after.filter((row) => row.status === 'completed' && before.get(row.requestId)?.status !== 'completed')
  const timelines: Array<{ scope: string, id: string, rows: CacheRowSource[] }> = []
  const group = (scope: string, idOf: (row: CacheRowSource) => string | null) => {
    const byId = new Map<string, CacheRowSource[]>()
    for (const row of joining) {
      const id = idOf(row)
      if (id === null) continue
      const rows = byId.get(id)
      if (rows === undefined) byId.set(id, [row])
      else rows.push(row)
    }
    for (const [id, rows] of byId) timelines.push({ scope, id, rows: rows.sort(byTime) })
  }
  group(KEY_SCOPE, (row) => row.apiKeyId)
  group(USER_SCOPE, (row) => row.userId)

  if (timelines.length > 0) {
    await db.query(`SELECT pg_advisory_xact_lock(l) FROM (SELECT DISTINCT hashtextextended('cache-timeline:' || t, 0) AS l FROM unnest($1::text[]) AS t) s ORDER BY l`,
      [timelines.map((t) => `${t.scope}:${t.id}`)])
    const tails = await readTails(db, timelines)
    // each timeline's joining requests in clusters; a cluster after the timeline's tail joins it there,
    // one before it (a late arrival) is read as a segment of the old timeline
    const clusters: Array<{ timeline: number, scope: string, id: string, first: CacheRowSource, last: CacheRowSource }> = []
    timelines.forEach((t, timeline) => {
      const tail = tails.get(`${t.scope}:${t.id}`)
      let open: typeof clusters[number] | undefined
      for (const row of t.rows) {
        if (tail !== undefined && byTime({ at: row.createdAt.getTime(), rid: row.requestId }, tail) > 0) break
        if (open !== undefined && row.createdAt.getTime() - open.last.createdAt.getTime() <= CLUSTER_GAP_MS) open.last = row
        else clusters.push(open = { timeline, scope: t.scope, id: t.id, first: row, last: row })
      }
    })
    const old = clusters.length === 0 ? new Map<number, OldRow[]>() : await readSegments(db, clusters, joining.map((row) => row.requestId))
    timelines.forEach((t, i) => {
      const tail = tails.get(`${t.scope}:${t.id}`)
      join(deltas, t.scope, t.id, t.rows, [...old.get(i) ?? [], ...tail === undefined ? [] : [tail]])
      const last = t.rows.at(-1)!
      if (tail === undefined || byTime({ at: last.createdAt.getTime(), rid: last.requestId }, tail) > 0) deltas.tails.push({ scope: t.scope, id: t.id, row: last })
    })
  }
  await writeDeltas(db, deltas)
}

/** The timelines' last requests (cache_timeline_tail primary key). */
async function readTails (db: Sql, timelines: Array<{ scope: string, id: string }>): Promise<Map<string, OldRow>> {
  const { rows } = await db.query<OldRowRecord & { scope: string, scope_id: string }>(`
    SELECT t.scope, t.scope_id, t.last_at AS created_at, t.last_request_id AS request_id, t.user_id, t.api_key_id,
           t.cache_write_5m_tokens AS w5, t.cache_write_1h_tokens AS w1,
           t.cache_write_5m_price_per_1m::text AS p5, t.cache_write_1h_price_per_1m::text AS p1, t.model, t.provider_id
      FROM cache_timeline_tail t JOIN unnest($1::text[], $2::uuid[]) AS w(scope, id) ON t.scope = w.scope AND t.scope_id = w.id`,
  [timelines.map((t) => t.scope), timelines.map((t) => t.id)])
  return new Map(rows.map((r) => [`${r.scope}:${r.scope_id}`, oldRow(r)]))
}

/** The timelines' new last requests, as the tails CTE of writeDeltas reads them, in primary-key order. */
function tailRows (tails: CacheDeltas['tails']) {
  return tails.sort((a, b) => a.scope.localeCompare(b.scope) || a.id.localeCompare(b.id)).map(({ scope, id, row }) => ({
    scope, scope_id: id, last_at: row.createdAt.toISOString(), last_request_id: row.requestId, user_id: row.userId, api_key_id: row.apiKeyId,
    w5: row.cacheCreation5m, w1: row.cacheCreation1h, p5: row.snapshot?.cacheWrite5m.toString() ?? null, p1: row.snapshot?.cacheWrite1h.toString() ?? null,
    model: row.model, provider_id: providerOf(row)
  }))
}

function byTime (a: { at: number, rid: string }, b: { at: number, rid: string }): number
function byTime (a: CacheRowSource, b: CacheRowSource): number
function byTime (a: CacheRowSource | { at: number, rid: string }, b: CacheRowSource | { at: number, rid: string }): number {
  const [ta, ra] = 'requestId' in a ? [a.createdAt.getTime(), a.requestId] : [a.at, a.rid]
  const [tb, rb] = 'requestId' in b ? [b.createdAt.getTime(), b.requestId] : [b.at, b.rid]
  return ta !== tb ? ta - tb : ra < rb ? -1 : ra > rb ? 1 : 0
}

// fields named one by one: a spread of groupOf's object made this the batch's costliest function (~5 ms of 500 rows)
const writerOf = (row: CacheRowSource): Writer => ({
  model: row.model,
  providerId: providerOf(row),
  at: row.createdAt.getTime(),
  userId: row.userId,
  apiKeyId: row.apiKeyId!,
  write5m: row.cacheCreation5m,
  write1h: row.cacheCreation1h,
  price5m: row.snapshot?.cacheWrite5m ?? null,
  price1h: row.snapshot?.cacheWrite1h ?? null
})

/**
 * Joins sorted new requests to one timeline, given the old requests read around
 * them. In the merged order, each run of new requests with no old one between them
 * replaces the old gap between its two old neighbours (pred → succ) by the chain
 * pred → r1 → … → rk → succ. Every old request between two joining ones of a cluster
 * was read, and each cluster's old predecessor and successor, so a run's neighbours
 * in the merged order are its true neighbours.
 */
function join (deltas: CacheDeltas, scope: string, id: string, joining: CacheRowSource[], oldRows: OldRow[]): void {
  const merged: Array<{ at: number, rid: string, old: OldRow | null, row: CacheRowSource | null }> = [
    ...[...new Map(oldRows.map((o) => [o.rid, o])).values()].map((o) => ({ at: o.at, rid: o.rid, old: o, row: null })),
    ...joining.map((row) => ({ at: row.createdAt.getTime(), rid: row.requestId, old: null, row }))
  ].sort(byTime)
  const wasteTracked = scope === KEY_SCOPE
  for (let i = 0; i < merged.length;) {
    if (merged[i]!.row === null) { i++; continue }
    const pred = i > 0 ? merged[i - 1]!.old : null
    const rows: CacheRowSource[] = []
    while (i < merged.length && merged[i]!.row !== null) rows.push(merged[i++]!.row!)
    const succ = i < merged.length ? merged[i]!.old : null
    // out: the old gap
    if (succ !== null) deltas.interval(scope, id, succ.at, pred === null ? null : succ.at - pred.at, -1)
    if (wasteTracked && pred !== null && succ !== null) deltas.waste(pred, succ.at - pred.at, -1n)
    // in: the new chain
    let previous: number | null = pred?.at ?? null
    for (const row of rows) {
      const at = row.createdAt.getTime()
      deltas.interval(scope, id, at, previous === null ? null : at - previous, 1)
      if (scope === USER_SCOPE) deltas.point(id, at, row.requestId, previous === null ? null : at - previous, row.model)
      previous = at
    }
    if (succ !== null) {
      deltas.interval(scope, id, succ.at, succ.at - previous!, 1)
      if (scope === USER_SCOPE) deltas.point(id, succ.at, succ.rid, succ.at - previous!, null)
    }
    if (wasteTracked) {
      if (pred !== null) deltas.waste(pred, rows[0]!.createdAt.getTime() - pred.at, 1n)
      rows.forEach((row, k) => {
        const next = k + 1 < rows.length ? rows[k + 1]!.createdAt.getTime() : succ?.at ?? null
        deltas.waste(writerOf(row), next === null ? null : next - row.createdAt.getTime(), 1n)
      })
    }
  }
}

/** An old request as both reads return it (bigint prices as text). */
interface OldRowRecord {
  created_at: Date, request_id: string, user_id: string | null, api_key_id: string, w5: number, w1: number, p5: string | null, p1: string | null, model: string, provider_id: string
}

const oldRow = (r: OldRowRecord): OldRow => ({
  rid: r.request_id,
  at: r.created_at.getTime(),
  userId: r.user_id,
  apiKeyId: r.api_key_id,
  write5m: r.w5,
  write1h: r.w1,
  price5m: r.p5 === null ? null : BigInt(r.p5),
  price1h: r.p1 === null ? null : BigInt(r.p1),
  model: r.model,
  providerId: r.provider_id
})

/**
 * Runs `read` with bitmap and sequential scans switched off, then on again (the rest of
 * the transaction plans as usual): probes that must walk an index from a point and stop
 * at the first row, where a table grown since its last ANALYZE can make the planner
 * prefer a bitmap scan and sort of a key's whole history.
 */
export async function walkingIndexes<T> (db: Sql, read: () => Promise<T>): Promise<T> {
  await db.query(`SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)`)
  const result = await read()
  await db.query(`SELECT set_config('enable_bitmapscan', 'on', true), set_config('enable_seqscan', 'on', true)`)
  return result
}

/** One branch per scope, so each uses its own index: usage (api_key_id, created_at) or (user_id, created_at). */
const SEGMENT_COLUMNS = `u.created_at, u.request_id, u.user_id, u.api_key_id, u.cache_creation_5m_input_tokens AS w5, u.cache_creation_1h_input_tokens AS w1,
  pt.cache_write_5m_price_per_1m::text AS p5, pt.cache_write_1h_price_per_1m::text AS p1, u.model, ${DIMENSIONS.provider.raw} AS provider_id`
/** each row's tier (pt), for its write prices (rows copy none) */
const SEGMENT_FROM = `usage u ${tierPricesJoinSql('u')}`
const inTimeline = (scope: string) => `c.scope = '${scope}' AND u.${scope === KEY_SCOPE ? 'api_key_id' : 'user_id'} = c.id
  AND u.status = 'completed' AND NOT (u.request_id = ANY($2::text[]))`
const segmentBranches = [KEY_SCOPE, USER_SCOPE].flatMap((scope) => [
  // the last old request before the cluster
  `(SELECT ${SEGMENT_COLUMNS} FROM ${SEGMENT_FROM} WHERE ${inTimeline(scope)} AND u.created_at <= c.lo AND (u.created_at, u.request_id) < (c.lo, c.lo_rid)
     ORDER BY u.created_at DESC, u.request_id DESC LIMIT 1)`,
  // every old request inside it
  `(SELECT ${SEGMENT_COLUMNS} FROM ${SEGMENT_FROM} WHERE ${inTimeline(scope)} AND u.created_at >= c.lo AND u.created_at <= c.hi
      AND (u.created_at, u.request_id) > (c.lo, c.lo_rid) AND (u.created_at, u.request_id) < (c.hi, c.hi_rid))`,
  // the first old request after it
  `(SELECT ${SEGMENT_COLUMNS} FROM ${SEGMENT_FROM} WHERE ${inTimeline(scope)} AND u.created_at >= c.hi AND (u.created_at, u.request_id) > (c.hi, c.hi_rid)
     ORDER BY u.created_at, u.request_id LIMIT 1)`
]).join('\n      UNION ALL ')

/** The old completed requests of each cluster's segment (the joining requests left out), by timeline. */
async function readSegments (db: Sql, clusters: Array<{ timeline: number, scope: string, id: string, first: CacheRowSource, last: CacheRowSource }>,
  joining: string[]): Promise<Map<number, OldRow[]>> {
  const payload = clusters.map((c) => ({
    timeline: c.timeline, scope: c.scope, id: c.id, lo: c.first.createdAt.toISOString(), lo_rid: c.first.requestId, hi: c.last.createdAt.toISOString(), hi_rid: c.last.requestId
  }))
  // each branch walks its index from the cluster's edge
  const { rows } = await walkingIndexes(db, async () => db.query<OldRowRecord & { timeline: number }>(`
    SELECT c.timeline, s.*
      FROM jsonb_to_recordset($1::jsonb) AS c(timeline int, scope text, id uuid, lo timestamptz, lo_rid text, hi timestamptz, hi_rid text)
     CROSS JOIN LATERAL (
      ${segmentBranches}) s`, [JSON.stringify(payload), joining]))
  const byTimeline = new Map<number, OldRow[]>()
  for (const r of rows) {
    const list = byTimeline.get(r.timeline) ?? []
    list.push(oldRow(r))
    byTimeline.set(r.timeline, list)
  }
  return byTimeline
}

/** cache_timeline_points' columns, sent as typed arrays (a batch may make hundreds of points, of a few users and models) */
const POINT_COLUMNS = new Columns<TimelinePoint>([
  { name: 'user_id', type: 'uuid', value: (p) => p.userId, shared: true },
  { name: 'created_at', type: 'timestamptz', value: (p) => new Date(p.at).toISOString() },
  { name: 'request_id', type: 'text', value: (p) => p.rid },
  { name: 'gap_ms', type: 'int', value: (p) => p.gapMs },
  { name: 'model', type: 'text', value: (p) => p.model, shared: true }
])

/** cache_interval_hourly's rows of a batch: each (scope, id, hour)'s deltas packed (hex), to be merged into the row */
const INTERVAL_COLUMNS = new Columns<{ scope: string, scope_id: string, bucket: string, bins: string }>([
  { name: 'scope', type: 'text', value: (r) => r.scope },
  { name: 'scope_id', type: 'uuid', value: (r) => r.scope_id },
  { name: 'bucket', type: 'timestamptz', value: (r) => r.bucket },
  { name: 'bins', type: 'text', value: (r) => r.bins }
])

/**
 * The batch's histogram deltas, one packed row per (scope, id, hour). A delta is signed
 * (a late request takes its old gap out of a bin), and one whose count nets to zero
 * still moves the bin's sum (the gap taken out and the one put in may share a bin).
 * A new row's deltas are all additions (a removal is from the hour of a request
 * already recorded, whose row exists), so they are stored as they come.
 */
function intervalRows (deltas: CacheDeltas) {
  const rows = new Map<string, { scope: string, scope_id: string, bucket: string, entries: BinEntry[] }>()
  for (const e of deltas.intervals.values()) {
    if (e.count === 0 && e.sum_ms === 0) continue
    const id = `${e.scope}|${e.scope_id}|${e.bucket}`
    let row = rows.get(id)
    if (row === undefined) rows.set(id, row = { scope: e.scope, scope_id: e.scope_id, bucket: e.bucket, entries: [] })
    row.entries.push({ bin: e.bin_index, count: e.count, sumMs: e.sum_ms })
  }
  return [...rows.values()]
    .sort((a, b) => a.scope.localeCompare(b.scope) || a.scope_id.localeCompare(b.scope_id) || a.bucket.localeCompare(b.bucket))
    .map((r) => ({ scope: r.scope, scope_id: r.scope_id, bucket: r.bucket, bins: pack(r.entries).toString('hex') }))
}

/** A delta row `d`'s tenant, and the join to its key's row that it reads (api_keys primary key; none for a user scope). */
const SCOPE_TENANT = scopeTenantSql('d.scope', 'd.scope_id', 'k').text
const SCOPE_KEY = `LEFT JOIN api_keys k ON d.scope = 'api_key' AND k.id = d.scope_id`

async function writeDeltas (db: Sql, deltas: CacheDeltas): Promise<void> {
  const intervals = intervalRows(deltas)
  const savings = [...deltas.savings.values()].filter((e) => SAVINGS.some((name) => e[name] !== 0n))
    .sort((a, b) => a.bucket.localeCompare(b.bucket) || a.user_id.localeCompare(b.user_id) || a.api_key_id.localeCompare(b.api_key_id) ||
      (a.model < b.model ? -1 : a.model > b.model ? 1 : 0) || a.provider_id.localeCompare(b.provider_id))
    .map((e) => ({ ...e, ...Object.fromEntries(SAVINGS.map((name) => [name, e[name].toString()])) }))
  const points = [...deltas.points.values()].filter((e) => e.count !== 0)
    .sort((a, b) => a.bucket.localeCompare(b.bucket) || a.user_id.localeCompare(b.user_id))
  const timelinePoints = [...deltas.timelinePoints.values()]
    .sort((a, b) => a.userId.localeCompare(b.userId) || a.at - b.at || (a.rid < b.rid ? -1 : a.rid > b.rid ? 1 : 0))
  if (intervals.length === 0 && savings.length === 0 && deltas.tails.length === 0) return
  // parameters: the histogram rows' columns, then the savings and points (jsonb), then the timeline points' columns, then the tails (jsonb)
  const [savingsParam, pointsParam, firstPoint] = [INTERVAL_COLUMNS.count + 1, INTERVAL_COLUMNS.count + 2, INTERVAL_COLUMNS.count + 3]
  const tailsParam = firstPoint + POINT_COLUMNS.count
  await db.query(`
    WITH intervals AS (
      -- merged into the hour's row: bins summed, the emptied ones dropped, sorted (the rebuild's form, byte for byte).
      -- A row never empties: each completed request counts once in its hour, in a bin or in bin -1. The stored bins
      -- are copied once (|| ''): a row over 2 kB is stored compressed, and each get_byte on it would decompress it again.
      -- a key scope's tenant from its key's row (the batch holds KEY_DELETION_LOCK, so every key is there)
      INSERT INTO cache_interval_hourly AS t (scope, scope_id, bucket, tenant_id, bins)
      SELECT d.scope, d.scope_id, d.bucket, ${SCOPE_TENANT}, decode(d.bins, 'hex') FROM ${INTERVAL_COLUMNS.from('d', 1)} ${SCOPE_KEY}
      ON CONFLICT (scope, scope_id, bucket, tenant_id) DO UPDATE SET bins = (
        SELECT COALESCE(string_agg(${sqlEntry('m.bin', 'm.count', 'm.sum_ms')}, ''::bytea ORDER BY m.bin), ''::bytea)
          FROM (SELECT e.bin, sum(e.count) AS count, sum(e.sum_ms) AS sum_ms
                  FROM (VALUES (t.bins || ''::bytea), (EXCLUDED.bins)) AS v(b) CROSS JOIN LATERAL ${sqlEntries('v.b', 'e')}
                 GROUP BY e.bin HAVING sum(e.count) <> 0) m)
      RETURNING 1
    ), points AS (
      INSERT INTO cache_points_hourly AS t (bucket, user_id, count)
      SELECT bucket, user_id, count FROM jsonb_to_recordset($${pointsParam}::jsonb) AS d(bucket timestamptz, user_id uuid, count int)
      ON CONFLICT (bucket, user_id) DO UPDATE SET count = t.count + EXCLUDED.count
      RETURNING 1
    ), timeline_points AS (
      -- an old request's model from usage (by usage_requests' key): only when a late request shortened its gap
      INSERT INTO cache_timeline_points AS t (user_id, created_at, request_id, gap_ms, model)
      SELECT d.user_id, d.created_at, d.request_id, d.gap_ms, COALESCE(d.model, (SELECT u.model FROM ${usageByRequestSql().text} WHERE q.request_id = d.request_id))
        FROM ${POINT_COLUMNS.from('d', firstPoint)}
      ON CONFLICT (user_id, created_at, request_id) DO UPDATE SET gap_ms = EXCLUDED.gap_ms
      RETURNING 1
    ), savings_deltas AS MATERIALIZED (
      -- parsed once, read by every savings table
      SELECT * FROM jsonb_to_recordset($${savingsParam}::jsonb) AS d(bucket timestamptz, user_id uuid, api_key_id uuid, model text, provider_id uuid, ${SAVINGS_RECORD})
    ), savings AS (
      INSERT INTO cache_savings_hourly AS t (bucket, user_id, api_key_id, model, provider_id, ${SAVINGS_COLUMNS})
      SELECT bucket, user_id, api_key_id, model, provider_id, ${SAVINGS_FIELDS} FROM savings_deltas
      ON CONFLICT (bucket, user_id, api_key_id, model, provider_id) DO UPDATE SET ${SAVINGS_ADDED}
      RETURNING 1
    ), ${SAVINGS_SUMMED_CTES}, tails AS (
      INSERT INTO cache_timeline_tail AS t (scope, scope_id, tenant_id, last_at, last_request_id, user_id, api_key_id, cache_write_5m_tokens, cache_write_1h_tokens,
        cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, model, provider_id)
      SELECT d.scope, d.scope_id, ${SCOPE_TENANT}, d.last_at, d.last_request_id, d.user_id, d.api_key_id, d.w5, d.w1, d.p5, d.p1, d.model, d.provider_id
        FROM jsonb_to_recordset($${tailsParam}::jsonb) AS d(scope text, scope_id uuid, last_at timestamptz, last_request_id text, user_id uuid, api_key_id uuid,
          w5 int, w1 int, p5 bigint, p1 bigint, model text, provider_id uuid) ${SCOPE_KEY}
      ON CONFLICT (scope, scope_id, tenant_id) DO UPDATE SET last_at = EXCLUDED.last_at, last_request_id = EXCLUDED.last_request_id, user_id = EXCLUDED.user_id,
        api_key_id = EXCLUDED.api_key_id, cache_write_5m_tokens = EXCLUDED.cache_write_5m_tokens, cache_write_1h_tokens = EXCLUDED.cache_write_1h_tokens,
        cache_write_5m_price_per_1m = EXCLUDED.cache_write_5m_price_per_1m, cache_write_1h_price_per_1m = EXCLUDED.cache_write_1h_price_per_1m,
        model = EXCLUDED.model, provider_id = EXCLUDED.provider_id
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM intervals) + (SELECT count(*) FROM points) + (SELECT count(*) FROM timeline_points) + (SELECT count(*) FROM savings)
         + ${SAVINGS_SUMMED_COUNTS} + (SELECT count(*) FROM tails) AS touched`,
  [...INTERVAL_COLUMNS.values(intervals), JSON.stringify(savings), JSON.stringify(points), ...POINT_COLUMNS.values(timelinePoints),
    JSON.stringify(tailRows(deltas.tails))])
}
