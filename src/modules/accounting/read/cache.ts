// The prompt-cache analytics reads (the shared pg pool; every value a parameter).
// Windows are whole UTC hours (`from` is an hour boundary), so the hourly tables answer
// them alone; the timeline's points come from cache_timeline_points, the keys' last
// requests from cache_timeline_tail: nothing here reads usage rows.
import sql, { empty, raw } from 'sql-template-tag'
import { inTransaction, type Sql, type SqlPool } from '../../../db/prisma.js'
import { settledBefore } from '../rules.js'
import { BinSums, packBins } from '../cache/packed.js'
import { big, count } from './sql.js'

/** Which groups: one scope, optionally one id of it, optionally the keys of one owner. */
export interface Scope { scope: 'user' | 'api_key', id: string | null, ownerId: string | null }

/** A group's hourly histograms over the window, concatenated (src/modules/cache/packed.ts: the same bin recurs once per hour). */
export interface GroupBins { scope_id: string, bins: Buffer }

/**
 * Histogram rows per group over the window: cache_interval_hourly (scope, bucket)
 * without an id, its primary key (scope, scope_id, bucket) with one. One row per
 * (group, hour) holds that hour's bins packed, so the window reads a row per group and
 * hour (for 168 hours at 10M usage rows: 30k rows by user, 113k by key) and PostgreSQL only
 * concatenates them per group; Node sums the bins.
 */
export async function intervalBins (db: SqlPool, s: Scope, from: Date): Promise<GroupBins[]> {
  return await inTransaction(db, async (client) => {
    // a group's concatenation is hashed in memory (at most a few megabytes in all)
    await client.query(`SELECT set_config('work_mem', '64MB', true)`)
    const { rows } = await client.query<GroupBins>(sql`
      SELECT scope_id, string_agg(bins, ''::bytea) AS bins
        FROM cache_interval_hourly
       WHERE scope = ${s.scope} AND bucket >= ${from} AND (${s.id}::uuid IS NULL OR scope_id = ${s.id}::uuid)
         AND (${s.ownerId}::uuid IS NULL OR scope_id IN (SELECT id FROM api_keys WHERE user_id = ${s.ownerId}::uuid))
       GROUP BY scope_id`)
    return rows
  })
}

const DAY_MS = 86_400_000
/** settled days kept per scope: a window is at most 720 hours (30 days) */
const KEPT_DAYS = 32
const floorDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS

/** One scope's settled UTC days [lo, hi): each group's packed bins of the day, read while rollup_late_writes was `writes`. */
interface SettledScope { writes: string, lo: number, hi: number, days: Map<number, Map<string, Buffer>> }

/**
 * The histograms of every group of a scope over a window, with the window's settled
 * whole UTC days (before accounting/rules.ts settledBefore) summed once and kept: a
 * 168-hour window then reads the ~50–70 live hours and the first day's remainder,
 * not 169 hours of rows (113k rows by key at 10M usage rows). Exact for the same
 * reason as SettledHeatmaps: every change to a settled hour moves rollup_late_writes,
 * read in the same statement as the live hours; a moved count drops what is kept. One
 * per app: what it keeps is of its database.
 */
export class SettledIntervals {
  private readonly scopes = new Map<Scope['scope'], SettledScope>()

  async bins (db: SqlPool, scope: Scope['scope'], from: Date, now: Date): Promise<GroupBins[]> {
    const wLo = floorDay(from.getTime() + DAY_MS - 1)
    const wHi = floorDay(settledBefore(now).getTime())
    if (wHi <= wLo) return await intervalBins(db, { scope, id: null, ownerId: null }, from)
    let kept = this.scopes.get(scope)
    // what is kept is used only where it joins the window's settled days into one span
    if (kept !== undefined && (kept.hi < wLo || kept.lo > wHi)) kept = undefined
    let read = await settledRead(db, scope, from, wLo, wHi, kept)
    if (kept !== undefined && read.writes !== kept.writes) {
      kept = undefined
      read = await settledRead(db, scope, from, wLo, wHi, undefined)
    }
    const days = kept?.writes === read.writes ? kept.days : new Map<number, Map<string, Buffer>>()
    for (const [day, groups] of read.days) days.set(day, groups)
    for (let day = wLo; day < wHi; day += DAY_MS) if (!days.has(day)) days.set(day, new Map())
    const lo = Math.max(Math.min(kept?.lo ?? wLo, wLo), floorDay(now.getTime()) - KEPT_DAYS * DAY_MS)
    for (const day of days.keys()) if (day < lo) days.delete(day)
    this.scopes.set(scope, { writes: read.writes, lo, hi: Math.max(kept?.hi ?? wHi, wHi), days })
    const rows = read.live
    for (let day = wLo; day < wHi; day += DAY_MS) {
      for (const [scopeId, bins] of days.get(day)!) rows.push({ scope_id: scopeId, bins })
    }
    return rows
  }
}

/**
 * cache_interval_hourly (scope, bucket), two ranges: the window's hours from `from` on
 * but those of the kept days; the rows of the window's settled days [wLo, wHi) that are
 * not kept come per (group, day), packed for keeping; then rollup_late_writes's count,
 * in the same snapshot.
 */
async function settledRead (db: SqlPool, scope: Scope['scope'], from: Date, wLo: number, wHi: number, kept: SettledScope | undefined) {
  const skipFrom = new Date(kept === undefined ? wLo : Math.max(kept.lo, wLo))
  const skipTo = new Date(kept === undefined ? wLo : Math.min(kept.hi, wHi))
  const rows = await inTransaction(db, async (client) => {
    await client.query(`SELECT set_config('work_mem', '64MB', true)`)
    const { rows } = await client.query<{ scope_id: string | null, day: Date | null, bins: Buffer }>(sql`
      SELECT scope_id, CASE WHEN bucket >= ${new Date(wLo)} AND bucket < ${new Date(wHi)} THEN date_trunc('day', bucket, 'UTC') END AS day,
             string_agg(bins, ''::bytea) AS bins
        FROM (SELECT scope_id, bucket, bins FROM cache_interval_hourly WHERE scope = ${scope} AND bucket >= ${from} AND bucket < ${skipFrom}
              UNION ALL
              SELECT scope_id, bucket, bins FROM cache_interval_hourly WHERE scope = ${scope} AND bucket >= ${skipTo}) h
       GROUP BY 1, 2
      UNION ALL
      -- rollup_late_writes primary key: one row
      SELECT NULL, NULL, convert_to(writes::text, 'UTF8') FROM rollup_late_writes`)
    return rows
  })
  let writes = ''
  const live: GroupBins[] = []
  const days = new Map<number, Map<string, Buffer>>()
  const sums = new BinSums()
  for (const row of rows) {
    if (row.scope_id === null) writes = row.bins.toString()
    else if (row.day === null) live.push({ scope_id: row.scope_id, bins: row.bins })
    else {
      // kept in the rebuild's canonical form: a day's 24 hourly rows summed bin by bin
      sums.add(row.bins)
      const day = row.day.getTime()
      const groups = days.get(day) ?? new Map<string, Buffer>()
      days.set(day, groups.set(row.scope_id, packBins(sums.take())))
    }
  }
  return { writes, live, days }
}

/** A group's most requested model and that model's first-tier prices (nano-USD per 1M tokens), null without a price. */
export interface DominantModel {
  groupId: string
  model: string
  prices: { input: bigint, write5m: bigint, write1h: bigint, read: bigint } | null
}

/**
 * Each group's most requested model over the window's days (usage_daily_key
 * (day, …) / (user_id, day) / (api_key_id, day)), and that model's current global price's
 * first tier (model_prices (model, effective_from)); a provider's own price when there is
 * no global one. The groups are chosen by the same filters as intervalBins, not by the ids
 * it returns, so both run at once; a group with traffic but no gap in the window is
 * returned too, and not used. The model is chosen first, so the price is looked up once
 * per group, not once per (group, model).
 */
export async function dominantModels (db: Sql, s: Scope, from: Date): Promise<DominantModel[]> {
  const group = sql`CASE WHEN ${s.scope}::text = 'user' THEN user_id ELSE api_key_id END`
  const { rows } = await db.query(sql`
    SELECT d.group_id, d.model, p.tiers -> 0 ->> 'input' AS input, p.tiers -> 0 ->> 'cache_write_5m' AS cache_write_5m,
           p.tiers -> 0 ->> 'cache_write_1h' AS cache_write_1h, p.tiers -> 0 ->> 'cache_read' AS cache_read
      FROM (SELECT DISTINCT ON (group_id) group_id, model
              FROM (SELECT ${group} AS group_id, model, sum(requests) AS requests
                      FROM usage_daily_key
                     WHERE day >= ${from}::date AND (${s.id}::uuid IS NULL OR ${group} = ${s.id}::uuid)
                       AND (${s.ownerId}::uuid IS NULL OR api_key_id IN (SELECT id FROM api_keys WHERE user_id = ${s.ownerId}::uuid))
                     GROUP BY 1, 2) m
             WHERE group_id IS NOT NULL
             ORDER BY group_id, requests DESC, model) d
      LEFT JOIN LATERAL (
        SELECT tiers FROM model_prices m WHERE m.model = d.model AND m.effective_from <= now()
         ORDER BY m.provider_id IS NULL DESC, m.effective_from DESC LIMIT 1) p ON true`)
  return rows.map((row: Record<string, unknown>) => ({
    groupId: row.group_id as string,
    model: row.model as string,
    prices: row.input === null
      ? null
      : { input: big(row.input), write5m: big(row.cache_write_5m), write1h: big(row.cache_write_1h), read: big(row.cache_read) }
  }))
}

/** Finished requests' token and cost totals over the window; money in nano-USD. */
export interface HitTotals {
  requests: number
  cacheHitRequests: number
  inputTokens: number
  cacheReadTokens: number
  cacheCreationTokens: number
  cacheReadCost: bigint
  cacheCreationCost: bigint
}

/**
 * Finished requests' token and cost totals: usage_hourly_provider (bucket, …) for all
 * traffic; usage_hourly (user_id, bucket) / (api_key_id, bucket) for a user or a key.
 */
export async function hitTotals (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<HitTotals> {
  const all = userId === null && keyId === null
  const { rows } = await db.query(sql`
    SELECT COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(cache_hit_requests), 0)::bigint AS cache_hit_requests,
           COALESCE(sum(input_tokens), 0)::bigint AS input_tokens, COALESCE(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens,
           COALESCE(sum(cache_creation_tokens), 0)::bigint AS cache_creation_tokens, COALESCE(sum(cache_read_cost), 0)::bigint AS cache_read_cost,
           COALESCE(sum(cache_creation_cost), 0)::bigint AS cache_creation_cost
      FROM ${raw(all ? 'usage_hourly_provider' : 'usage_hourly')} WHERE bucket >= ${from}
      ${all ? empty : sql`AND (${userId}::uuid IS NULL OR user_id = ${userId}::uuid) AND (${keyId}::uuid IS NULL OR api_key_id = ${keyId}::uuid)`}`)
  const row = rows[0] as Record<string, unknown>
  return {
    requests: count(row.requests),
    cacheHitRequests: count(row.cache_hit_requests),
    inputTokens: count(row.input_tokens),
    cacheReadTokens: count(row.cache_read_tokens),
    cacheCreationTokens: count(row.cache_creation_tokens),
    cacheReadCost: big(row.cache_read_cost),
    cacheCreationCost: big(row.cache_creation_cost)
  }
}

/** What the cache saved and cost over the window; money in nano-USD. */
export interface SavingsTotals {
  readSaving: bigint
  write5mPremium: bigint
  write1hPremium: bigint
  cacheWrite5mTokens: bigint
  cacheWrite1hTokens: bigint
  wasted5mTokens: bigint
  wasted1hTokens: bigint
  wastedCost: bigint
}

/** cache_savings_hourly_global's primary key (bucket) for all; cache_savings_hourly (user_id, bucket) / (api_key_id, bucket) filtered. */
export async function savingsTotals (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<SavingsTotals> {
  const table = userId === null && keyId === null ? raw('cache_savings_hourly_global') : raw('cache_savings_hourly')
  const { rows } = await db.query(sql`
    SELECT COALESCE(sum(read_saving), 0)::bigint AS read_saving, COALESCE(sum(write_5m_premium), 0)::bigint AS write_5m_premium,
           COALESCE(sum(write_1h_premium), 0)::bigint AS write_1h_premium, COALESCE(sum(cache_write_5m_tokens), 0)::bigint AS cache_write_5m_tokens,
           COALESCE(sum(cache_write_1h_tokens), 0)::bigint AS cache_write_1h_tokens, COALESCE(sum(wasted_5m_tokens), 0)::bigint AS wasted_5m_tokens,
           COALESCE(sum(wasted_1h_tokens), 0)::bigint AS wasted_1h_tokens, COALESCE(sum(wasted_cost), 0)::bigint AS wasted_cost
      FROM ${table}
     WHERE bucket >= ${from}${userId === null ? empty : sql` AND user_id = ${userId}::uuid`}${keyId === null ? empty : sql` AND api_key_id = ${keyId}::uuid`}`)
  const row = rows[0] as Record<string, unknown>
  return {
    readSaving: big(row.read_saving),
    write5mPremium: big(row.write_5m_premium),
    write1hPremium: big(row.write_1h_premium),
    cacheWrite5mTokens: big(row.cache_write_5m_tokens),
    cacheWrite1hTokens: big(row.cache_write_1h_tokens),
    wasted5mTokens: big(row.wasted_5m_tokens),
    wasted1hTokens: big(row.wasted_1h_tokens),
    wastedCost: big(row.wasted_cost)
  }
}

/** A key's last request's cache writes: tokens, prices in nano-USD per 1M tokens (null: not priced), its model and provider (NIL_UUID: none). */
export interface LastWrite { createdAt: Date, write5m: number, write1h: number, price5m: bigint | null, price1h: bigint | null, model: string, providerId: string }

/**
 * Each key's last completed request made in the window, if it wrote to the cache:
 * its writes are wasted once their TTL passes with no next request.
 * cache_timeline_tail (scope, last_at).
 */
export async function lastWrites (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<LastWrite[]> {
  const { rows } = await db.query(sql`
    SELECT last_at AS created_at, cache_write_5m_tokens AS w5, cache_write_1h_tokens AS w1,
           cache_write_5m_price_per_1m::text AS p5, cache_write_1h_price_per_1m::text AS p1, model, provider_id
      FROM cache_timeline_tail
     WHERE scope = 'api_key' AND last_at >= ${from} AND (${userId}::uuid IS NULL OR user_id = ${userId}::uuid)
       AND (${keyId}::uuid IS NULL OR scope_id = ${keyId}::uuid)
       AND cache_write_5m_tokens + cache_write_1h_tokens > 0`)
  return rows.map((row: Record<string, unknown>) => ({
    createdAt: row.created_at as Date,
    write5m: row.w5 as number,
    write1h: row.w1 as number,
    price5m: row.p5 === null ? null : big(row.p5),
    price1h: row.p1 === null ? null : big(row.p1),
    model: row.model as string,
    providerId: row.provider_id as string
  }))
}

/** Timeline points per hour: cache_points_hourly primary key (bucket, …), or (user_id, bucket). */
export async function pointsPerHour (db: Sql, from: Date, userId: string | null): Promise<Array<{ bucket: Date, count: number }>> {
  const { rows } = await db.query(sql`
    SELECT bucket, sum(count)::bigint AS count FROM cache_points_hourly
     WHERE bucket >= ${from} AND (${userId}::uuid IS NULL OR user_id = ${userId}::uuid)
     GROUP BY bucket HAVING sum(count) > 0 ORDER BY bucket`)
  return rows.map((row: Record<string, unknown>) => ({ bucket: row.bucket as Date, count: count(row.count) }))
}

/** x: created_at as the answer writes it (ISO 8601, UTC, milliseconds), formatted by PostgreSQL: 10,000 Dates parsed and formatted again cost the timeline more than its scan */
export interface Point { x: string, user_id: string, model: string, gap_ms: number }

const x = (alias = '') => raw(`to_char(${alias}created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS x`)

/** Every timeline point in the window, oldest first: cache_timeline_points (created_at, request_id), or its primary key (user_id, created_at, …). */
export async function allPoints (db: Sql, from: Date, userId: string | null): Promise<Point[]> {
  const { rows } = await db.query<Point>(sql`
    SELECT ${x()}, user_id, model, gap_ms FROM cache_timeline_points
     WHERE ${userId === null ? empty : sql`user_id = ${userId} AND `}created_at >= ${from}
     ORDER BY created_at, request_id`)
  return rows
}

/** Each hour's slots of an even sample, by hour of the window (index 0: the hour `from` starts). */
export interface SampleSlots {
  /** the window's start, an hour boundary */
  from: Date
  /** points from it on are left out (the current hour's slots end there) */
  until: Date
  /** how many equal slots the hour is cut into (0: none; at most 50,000, the largest limit) */
  shares: number[]
  /** the length of the hour's slotted span, ms: the hour, or up to `until` for the current one */
  spans: number[]
}

/**
 * The first timeline point (by created_at, request_id) in each slot, in one range scan of
 * cache_timeline_points (created_at, request_id) INCLUDE (user_id, model, gap_ms): an
 * index-only scan, in order, so no sort before the window; or of its primary key (user_id,
 * created_at, request_id) for one user: a point d ms into hour h falls in slot
 * k = ⌊((d + 1)·share − 1) / span⌋, the k with ⌊span·k/share⌋ ≤ d < ⌊span·(k+1)/share⌋,
 * and is kept when the point before it in that order is in another slot.
 */
export async function scanFirstPoints (db: Sql, slots: SampleSlots, userId: string | null): Promise<Point[]> {
  // a slot is numbered h·100000 + k (k < share ≤ 50,000): increasing with time; OFFSET 0 computes ms once per row, in
  // double precision (exact to the millisecond over 721 hours, and cheaper than extract's numeric)
  const { rows } = await db.query<Point>(sql`
    SELECT ${x()}, user_id, model, gap_ms
      FROM (SELECT created_at, request_id, user_id, model, gap_ms, slot, lag(slot) OVER (ORDER BY created_at, request_id) AS previous
              FROM (SELECT created_at, request_id, user_id, model, gap_ms,
                           h * 100000 + ((d + 1) * share - 1) / (${slots.spans}::bigint[])[h + 1] AS slot
                      FROM (SELECT created_at, request_id, user_id, model, gap_ms, ms / 3600000 AS h, ms % 3600000 AS d,
                                   (${slots.shares}::bigint[])[ms / 3600000 + 1] AS share
                              FROM (SELECT created_at, request_id, user_id, model, gap_ms,
                                           round(date_part('epoch', created_at - ${slots.from}::timestamptz) * 1000)::bigint AS ms
                                      FROM cache_timeline_points
                                     WHERE ${userId === null ? empty : sql`user_id = ${userId} AND `}created_at >= ${slots.from} AND created_at < ${slots.until}
                                     -- the index's order, stated: past OFFSET 0 the window would sort its input again (8 ms of 31 at 14k points)
                                     ORDER BY created_at, request_id OFFSET 0) p) q
                     WHERE share > 0) r) s
     WHERE previous IS DISTINCT FROM slot
     ORDER BY created_at, request_id`)
  return rows
}

/**
 * The first timeline point in each [lo, hi) slot: one probe per slot of
 * cache_timeline_points (created_at, request_id), or of its primary key (user_id,
 * created_at, request_id) for one user.
 */
export async function probeFirstPoints (db: Sql, slots: Array<{ lo: Date, hi: Date }>, userId: string | null): Promise<Point[]> {
  const { rows } = await db.query<Point>(sql`
    SELECT ${x('p.')}, p.user_id, p.model, p.gap_ms
      FROM unnest(${slots.map((s) => s.lo)}::timestamptz[], ${slots.map((s) => s.hi)}::timestamptz[]) AS s(lo, hi)
     CROSS JOIN LATERAL (
        SELECT created_at, user_id, model, gap_ms FROM cache_timeline_points
         WHERE created_at >= s.lo AND created_at < s.hi${userId === null ? empty : sql` AND user_id = ${userId}`}
         ORDER BY created_at, request_id LIMIT 1) p
     ORDER BY p.created_at`)
  return rows
}
