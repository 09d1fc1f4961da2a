// Prompt-cache analytics: which TTL suits each user or key (Aether's rule and a cost
// model), what the cache saved and wasted, and the request-interval timeline.
// Decisions (window, percentiles, groups) are in docs/cache-analytics.md.
import type { Sql, SqlPool } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { percent } from '../../lib/rates.js'
import { FIRST_BIN, lastBinWithin } from '../accounting/cache/bins.js'
import {
  allPoints, dominantModels, hitTotals, intervalBins, lastWrites, pointsPerHour, probeFirstPoints, savingsTotals, scanFirstPoints, type GroupBins, type SampleSlots, type Scope, type SettledIntervals
} from '../accounting/read/cache.js'
import { groupInfo, usernames } from './queries.js'
import { BinSums, type Bins } from '../accounting/cache/packed.js'
import { wasteOf } from '../accounting/cache/timeline.js'

const HOUR = 3_600_000
const MINUTE = 60_000

/** The window of `hours`: the current hour so far and the `hours` whole hours before it. */
export function windowStart (hours: number, now = new Date()): Date {
  return new Date(Math.floor(now.getTime() / HOUR) * HOUR - hours * HOUR)
}

const round = (value: number, places: number) => Math.round(value * 10 ** places) / 10 ** places
const minutes = (ms: number) => round(ms / MINUTE, 2)

/** One group's gaps as the histogram holds them: its bins in ascending order, bin FIRST_BIN left out. */
export interface Histogram extends Bins {
  /** completed requests in the window (those with a gap, and first ones) */
  requests: number
}

/** The last bins of gaps at most 5, 15, 30 and 60 minutes (anchor edges: the counts are exact). */
const WITHIN_BINS = [5, 15, 30, 60].map((m) => lastBinWithin(m * MINUTE))

/** A group's gap count, their sum, and how many are within each of WITHIN_BINS, in one pass. */
function totals (h: Histogram): { n: number, sum: number, within: number[] } {
  const within = WITHIN_BINS.map(() => 0)
  let n = 0
  let sum = 0
  for (let i = 0; i < h.bins.length; i++) {
    n += h.counts[i]!
    sum += h.sums[i]!
    for (let w = 0; w < WITHIN_BINS.length; w++) if (h.bins[i]! <= WITHIN_BINS[w]!) within[w]! += h.counts[i]!
  }
  return { n, sum, within }
}

/** Nearest-rank percentile (the value of rank ⌈q·n⌉), as the mean of the bin that holds it. */
function percentileMs (h: Histogram, n: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * n))
  let seen = 0
  for (let i = 0; i < h.bins.length; i++) {
    seen += h.counts[i]!
    if (seen >= rank) return h.sums[i]! / h.counts[i]!
  }
  return 0
}

export interface CachePrices { input: bigint, write5m: bigint, write1h: bigint, read: bigint }

/** Anthropic's ratios to the input price, for a model with no price. */
const DEFAULT_RATIOS = { w5: 1.25, w1h: 2, r: 0.1 }

/**
 * Expected cost of a cached prefix per request, relative to sending it uncached, from a
 * group's n gaps and how many are within 5 and 60 minutes: the first request writes, then each gap within the TTL reads (and refreshes) and each
 * longer gap writes again.
 */
function costModel (gaps: { n: number, within5: number, within60: number }, model: string | null, prices: CachePrices | null) {
  const { n, within5, within60 } = gaps
  const priced = prices !== null && prices.input > 0n
  const ratio = (price: bigint) => Number(price) / Number(prices!.input)
  const { w5, w1h, r } = priced ? { w5: ratio(prices.write5m), w1h: ratio(prices.write1h), r: ratio(prices.read) } : DEFAULT_RATIOS
  const relative = {
    none: 1,
    ttl_5m: (w5 + within5 * r + (n - within5) * w5) / (n + 1),
    ttl_1h: (w1h + within60 * r + (n - within60) * w1h) / (n + 1)
  }
  const options = [['none', relative.none], ['5m', relative.ttl_5m], ['1h', relative.ttl_1h]] as const
  const [cheapest, cost] = options.reduce((best, option) => option[1] < best[1] ? option : best)
  const inputUsdPerMillion = priced ? nanoToUsd(prices.input) : null
  return {
    model,
    priced,
    ratios: { cache_write_5m: round(w5, 4), cache_write_1h: round(w1h, 4), cache_read: round(r, 4) },
    relative_cost: { none: 1, ttl_5m: round(relative.ttl_5m, 4), ttl_1h: round(relative.ttl_1h, 4) },
    usd_per_1m_prefix_tokens: inputUsdPerMillion === null
      ? null
      : { none: round(inputUsdPerMillion, 6), ttl_5m: round(relative.ttl_5m * inputUsdPerMillion, 6), ttl_1h: round(relative.ttl_1h * inputUsdPerMillion, 6) },
    cheapest,
    saving_vs_none_pct: round((1 - cost) * 100, 2)
  }
}

const TTL_NAMES = { none: 'no prompt cache', '5m': 'a 5-minute cache', '1h': 'a 1-hour cache' } as const

/** Aether's baseline TTL, the distribution, and the cost model of one group. */
export function analyseGroup (h: Histogram, model: string | null, prices: CachePrices | null) {
  const { n, sum, within } = totals(h)
  const distribution = {
    within_5min: within[0]!,
    within_15min: within[1]! - within[0]!,
    within_30min: within[2]! - within[1]!,
    within_60min: within[3]! - within[2]!,
    over_60min: n - within[3]!
  }
  const p50 = percentileMs(h, n, 0.5)
  const p75 = percentileMs(h, n, 0.75)
  const p90 = percentileMs(h, n, 0.9)
  // the rule on exact counts: "p90 ≤ 5 min" ⇔ at least ⌈0.9n⌉ gaps are ≤ 5 min (5 min is a bin edge)
  const reaches = (count: number, q: number) => count >= Math.ceil(q * n)
  const recommended = reaches(within[0]!, 0.9) ? 5 : reaches(within[1]!, 0.75) ? 15 : reaches(within[2]!, 0.75) ? 30 : 60
  const cost = costModel({ n, within5: within[0]!, within60: within[3]! }, model, prices)
  const why = recommended === 5
    ? `90% of gaps are at most 5 minutes (p90 ${minutes(p90)} min)`
    : recommended === 60
      ? `a quarter of gaps are over 30 minutes (p75 ${minutes(p75)} min)`
      : `75% of gaps are at most ${recommended} minutes (p75 ${minutes(p75)} min)`
  const saving = cost.cheapest === 'none'
    ? 'caching would cost more than it saves'
    : `${cost.saving_vs_none_pct}% below sending the prefix uncached`
  return {
    request_count: h.requests,
    interval_distribution: distribution,
    interval_percentages: Object.fromEntries(Object.entries(distribution).map(([k, v]) => [k, percent(v, n)])) as typeof distribution,
    percentiles: { p50: minutes(p50), p75: minutes(p75), p90: minutes(p90) },
    avg_interval_minutes: n === 0 ? 0 : minutes(sum / n),
    min_interval_minutes: minutes(h.sums[0]! / h.counts[0]!),
    max_interval_minutes: minutes(h.sums.at(-1)! / h.counts.at(-1)!),
    recommended_ttl_minutes: recommended,
    recommendation_reason: `${why}: recommend ${recommended} minutes. Cheapest for ${cost.model ?? 'its traffic'}: ${TTL_NAMES[cost.cheapest]}, ${saving}.`,
    cost_model: cost
  }
}

/** Histograms per group from intervalBins' rows: each group's hourly histograms, summed bin by bin. */
export function histograms (rows: GroupBins[]): Map<string, Histogram> {
  const byGroup = new Map<string, Buffer[]>()
  for (const row of rows) {
    const list = byGroup.get(row.scope_id)
    if (list === undefined) byGroup.set(row.scope_id, [row.bins])
    else list.push(row.bins)
  }
  const sums = new BinSums()
  const groups = new Map<string, Histogram>()
  for (const [id, list] of byGroup) {
    for (const bytes of list) sums.add(bytes)
    const all = sums.take()
    const requests = all.counts.reduce((total, count) => total + count, 0)
    // FIRST_BIN is the lowest bin: first if present
    const skip = all.bins[0] === FIRST_BIN ? 1 : 0
    groups.set(id, { requests, bins: all.bins.subarray(skip), counts: all.counts.subarray(skip), sums: all.sums.subarray(skip) })
  }
  return groups
}

export interface TtlQuery { user_id?: string, api_key_id?: string, group_by?: 'user' | 'api_key', hours: number }

/** `settled`: the app's kept settled days, used for the whole scope (a user's or a key's own rows are few) */
export async function ttlAnalysis (db: SqlPool, query: TtlQuery, ownerId: string | null = null, now = new Date(), settled?: SettledIntervals) {
  const from = windowStart(query.hours, now)
  // one key asked for: that key is the group; a user's own view is limited to their keys
  const scope: Scope = query.api_key_id !== undefined
    ? { scope: 'api_key', id: query.api_key_id, ownerId }
    : (query.group_by ?? 'user') === 'api_key'
        ? { scope: 'api_key', id: null, ownerId: ownerId ?? query.user_id ?? null }
        : { scope: 'user', id: ownerId ?? query.user_id ?? null, ownerId: null }
  // the histograms and the models on two connections at once: neither needs the other
  const whole = scope.id === null && scope.ownerId === null
  const bins = settled !== undefined && whole ? settled.bins(db, scope.scope, from, now) : intervalBins(db, scope, from)
  const [rows, models] = await Promise.all([bins, dominantModels(db, scope, from)])
  const groups = [...histograms(rows)].filter(([, h]) => h.bins.length > 0)
  const info = await groupInfo(db, scope.scope, groups.map(([id]) => id))
  const modelOf = new Map(models.map((m) => [m.groupId, m]))
  const users = groups.map(([id, h]) => {
    const m = modelOf.get(id)
    const prices = m?.prices ?? null
    const who = info.get(id)
    return {
      group_id: id,
      group_type: scope.scope,
      ...(scope.scope === 'api_key' ? { api_key_name: who?.name ?? null } : {}),
      username: who?.username ?? null,
      email: who?.email ?? null,
      ...analyseGroup(h, m?.model ?? null, prices)
    }
  }).sort((a, b) => b.request_count - a.request_count || (a.group_id < b.group_id ? -1 : 1))
  const ttlDistribution = { '5min': 0, '15min': 0, '30min': 0, '60min': 0 }
  for (const u of users) ttlDistribution[`${u.recommended_ttl_minutes}min` as keyof typeof ttlDistribution]++
  return { analysis_period_hours: query.hours, total_users_analyzed: users.length, ttl_distribution: ttlDistribution, users }
}

export interface HitQuery { user_id?: string, api_key_id?: string, hours: number }

export async function hitAnalysis (db: Sql, query: HitQuery, ownerId: string | null = null, now = new Date()) {
  const from = windowStart(query.hours, now)
  const userId = ownerId ?? query.user_id ?? null
  const keyId = query.api_key_id ?? null
  const [totals, savings, tails] = await Promise.all([
    hitTotals(db, from, userId, keyId), savingsTotals(db, from, userId, keyId), lastWrites(db, from, userId, keyId)
  ])
  // a key's last request: its writes are wasted once their TTL has passed with nothing after them
  let tail5m = 0n
  let tail1h = 0n
  let tailCost = 0n
  for (const last of tails) {
    const waste = wasteOf(last, now.getTime() - last.createdAt.getTime())
    tail5m += waste.wasted5mTokens
    tail1h += waste.wasted1hTokens
    tailCost += waste.wastedCost
  }
  const input = totals.inputTokens
  const read = totals.cacheReadTokens
  const creation = totals.cacheCreationTokens
  const net = savings.readSaving - savings.write5mPremium - savings.write1hPremium
  const wasted5m = savings.wasted5mTokens + tail5m
  const wasted1h = savings.wasted1hTokens + tail1h
  return {
    analysis_period_hours: query.hours,
    total_requests: totals.requests,
    requests_with_cache_hit: totals.cacheHitRequests,
    request_cache_hit_rate: percent(totals.cacheHitRequests, totals.requests),
    total_input_tokens: input,
    total_cache_read_tokens: read,
    total_cache_creation_tokens: creation,
    cache_creation_5m_tokens: Number(savings.cacheWrite5mTokens),
    cache_creation_1h_tokens: Number(savings.cacheWrite1hTokens),
    token_cache_hit_rate: percent(read, input + read + creation),
    total_cache_read_cost_usd: nanoToUsd(totals.cacheReadCost),
    total_cache_creation_cost_usd: nanoToUsd(totals.cacheCreationCost),
    estimated_savings_usd: nanoToUsd(net),
    savings_breakdown: {
      read_savings_usd: nanoToUsd(savings.readSaving),
      write_5m_premium_usd: nanoToUsd(savings.write5mPremium),
      write_1h_premium_usd: nanoToUsd(savings.write1hPremium)
    },
    wasted_write_tokens: Number(wasted5m + wasted1h),
    wasted_write_5m_tokens: Number(wasted5m),
    wasted_write_1h_tokens: Number(wasted1h),
    wasted_write_cost_usd: nanoToUsd(savings.wastedCost + tailCost)
  }
}

/**
 * Slots for an even sample of `limit` points: each hour gets a share of `limit` in
 * proportion to its points (cumulative rounding: the shares add up to `limit`), cut
 * into that many equal slots up to `now` included; a slot contributes its first point.
 * Hours after `now` (points dated in the future) get no slot.
 */
export function sampleSlots (hours: Array<{ bucket: Date, count: number }>, total: number, limit: number, from: Date, now: Date): SampleSlots {
  const until = new Date(now.getTime() + 1)
  const size = Math.floor((now.getTime() - from.getTime()) / HOUR) + 1
  const shares = new Array<number>(size).fill(0)
  const spans = Array.from({ length: size }, (_, h) => Math.min(HOUR, until.getTime() - from.getTime() - h * HOUR))
  let cumulative = 0
  for (const { bucket, count } of hours) {
    const before = Math.floor(cumulative * limit / total)
    cumulative += count
    const h = (bucket.getTime() - from.getTime()) / HOUR
    if (h < size) shares[h] = Math.floor(cumulative * limit / total) - before
  }
  return { from, until, shares, spans }
}

/** Each slot's bounds, [lo, hi), in time order; empty slots (hi = lo, in a very short current hour) left out. */
export function slotBounds ({ from, shares, spans }: SampleSlots): Array<{ lo: Date, hi: Date }> {
  const bounds: Array<{ lo: Date, hi: Date }> = []
  shares.forEach((share, h) => {
    const start = from.getTime() + h * HOUR
    const span = spans[h]!
    for (let k = 0; k < share; k++) {
      const lo = start + Math.floor(span * k / share)
      const hi = start + Math.floor(span * (k + 1) / share)
      if (hi > lo) bounds.push({ lo: new Date(lo), hi: new Date(hi) })
    }
  })
  return bounds
}

/**
 * Up to this many points per slot, one scan of the window's points costs less than a probe per
 * slot (at 1M rows, loaded machine: ~5 µs a point scanned, ~40 µs a slot probed).
 */
const SCAN_POINTS_PER_SLOT = 6

export interface TimelineQuery { hours: number, limit: number, user_id?: string, include_user_info?: boolean }

export async function intervalTimeline (db: Sql, query: TimelineQuery, ownerId: string | null = null, now = new Date()) {
  const from = windowStart(query.hours, now)
  const userId = ownerId ?? query.user_id ?? null
  const perHour = await pointsPerHour(db, from, userId)
  const total = perHour.reduce((sum, h) => sum + h.count, 0)
  const slots = total <= query.limit ? null : sampleSlots(perHour, total, query.limit, from, now)
  const points = slots === null
    ? await allPoints(db, from, userId)
    : total <= SCAN_POINTS_PER_SLOT * query.limit ? await scanFirstPoints(db, slots, userId) : await probeFirstPoints(db, slotBounds(slots), userId)
  const result = {
    analysis_period_hours: query.hours,
    total_points: total,
    points: points.map((p) => ({ x: p.x, y: minutes(Number(p.gap_ms)), user_id: p.user_id, model: p.model }))
  }
  if (query.include_user_info !== true) return result
  const names = await usernames(db, [...new Set(points.map((p) => p.user_id))])
  return {
    ...result,
    users: Object.fromEntries([...names].sort(([a], [b]) => a < b ? -1 : 1)),
    models: [...new Set(points.map((p) => p.model))].sort()
  }
}
