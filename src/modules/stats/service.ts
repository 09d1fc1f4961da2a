// Usage statistics: turns the query results (integer nano-USD, bigint strings) into
// the API's shapes (USD numbers, rates and averages rounded once, here).
import type { Sql, SqlPool } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import { percent } from '../../lib/rates.js'
import { containsPattern } from '../../lib/like.js'
import { redactHeaders, redactJson } from '../../lib/redact.js'
import { datesBetween, EARLIEST_INSTANT, INSTANT_LIMIT, localDate, type Range } from '../../lib/time.js'
import { hourPlan, quarterDayPlan, quarterHourPlan } from '../../lib/spans.js'
import { inputContext, tieredPricingOf, type TieredPricing } from '../accounting/pricing.js'
import { IN_FLIGHT_STATUSES } from '../accounting/rules.js'
import { aetherTier, tierFromUsd } from '../accounting/tiers.js'
import {
  globalTotals, heatmapDays, totalsByApiFormat, totalsByModel, totalsByProvider, totalsByUser, userHeatmapDays, userTotals, type HeatmapDay, type SettledHeatmaps, type Totals
} from '../accounting/read/totals.js'
import {
  countRecords, estimateCandidates, estimateKeyword, estimateRecords, goneProviderMatches, KEYWORD_SLOTS, keywordMatches, recordPage, requestCandidates, resolveNames,
  usageDetail, type DetailRow, type KeywordMatch, type RecordFilter, type RecordRow, type ResolvedFilter
} from './queries.js'

/** a raw row's nano-USD string (records, detail) in USD */
const usd = (value: string | null | undefined) => nanoToUsd(BigInt(value ?? 0))
/** average milliseconds, 1 decimal */
const avgMs = (sum: number, count: number) => count === 0 ? 0 : Math.round(sum / count * 10) / 10

function toStats (t: Totals) {
  return {
    total_requests: t.requests,
    total_tokens: t.totalTokens,
    total_cost: nanoToUsd(t.totalCost),
    total_actual_cost: nanoToUsd(t.actualTotalCost),
    // seconds, to the millisecond
    avg_response_time: t.responseTimeCount === 0 ? 0 : Math.round(t.responseTimeSumMs / t.responseTimeCount) / 1000,
    error_count: t.errors,
    error_rate: percent(t.errors, t.requests),
    cache_stats: {
      cache_creation_tokens: t.cacheCreationTokens,
      cache_read_tokens: t.cacheReadTokens,
      cache_creation_cost: nanoToUsd(t.cacheCreationCost),
      cache_read_cost: nanoToUsd(t.cacheReadCost)
    }
  }
}

/** Totals over every finished request in the range, or one user's. */
export async function usageStats (db: Sql, range: Range, userId?: string) {
  return toStats(userId === undefined ? await globalTotals(db, quarterHourPlan(range)) : await userTotals(db, userId, hourPlan(range)))
}

export type GroupBy = 'model' | 'user' | 'provider' | 'api_format'

/** Every instant a usage row can have: whole UTC days at both ends, so it is read from the rollups alone. */
export const ALL_TIME: Range = { start: new Date(EARLIEST_INSTANT), end: new Date(INSTANT_LIMIT) }
/** The ranking's rows when no limit is given; the user ranking then lists every user with usage, up to a bound. */
export const DEFAULT_GROUPS = 20
export const MAX_USER_GROUPS = 10_000

export async function aggregate (db: Sql, groupBy: GroupBy, range: Range, given?: number) {
  const limit = given ?? (groupBy === 'user' ? MAX_USER_GROUPS : DEFAULT_GROUPS)
  switch (groupBy) {
    case 'model':
      return (await totalsByModel(db, quarterDayPlan(range), limit)).map((row) => ({
        model: row.key, request_count: row.requests, total_tokens: row.totalTokens, total_cost: nanoToUsd(row.totalCost), actual_cost: nanoToUsd(row.actualTotalCost)
      }))
    case 'api_format':
      return (await totalsByApiFormat(db, quarterDayPlan(range), limit)).map((row) => ({
        api_format: row.key === '' ? null : row.key,
        request_count: row.requests,
        total_tokens: row.totalTokens,
        total_cost: nanoToUsd(row.totalCost),
        actual_cost: nanoToUsd(row.actualTotalCost),
        avg_response_time_ms: avgMs(row.responseTimeSumMs, row.responseTimeCount)
      }))
    case 'user':
      return (await totalsByUser(db, quarterDayPlan(range), limit)).map((row) => ({
        user_id: row.userId, email: row.email, username: row.username, request_count: row.requests, total_tokens: row.totalTokens, total_cost: nanoToUsd(row.totalCost)
      }))
    case 'provider':
      return (await totalsByProvider(db, quarterHourPlan(range), limit)).map((row) => ({
        provider_id: row.providerId,
        provider: row.provider,
        request_count: row.attempts,
        total_tokens: row.totalTokens,
        total_cost: nanoToUsd(row.totalCost),
        actual_cost: nanoToUsd(row.actualTotalCost),
        avg_response_time_ms: avgMs(row.latencySumMs, row.latencyCount),
        success_rate: percent(row.successes, row.attempts),
        error_count: row.failures
      }))
  }
}

export const HEATMAP_DAYS = 365

/** The 365 local days ending today in `timeZone`, zero-filled. */
export async function heatmap (db: Sql, timeZone: string, settled?: SettledHeatmaps, now = new Date()) {
  const { first, today } = heatmapWindow(timeZone, now)
  return heatmapBody(first, today, await heatmapDays(db, timeZone, first, today, now, settled))
}

/** One user's heatmap, as `heatmap` (its actual_total_cost is the operator's: accounting/visibility.ts trims it). */
export async function userHeatmap (db: Sql, userId: string, timeZone: string, now = new Date()) {
  const { first, today } = heatmapWindow(timeZone, now)
  return heatmapBody(first, today, await userHeatmapDays(db, userId, timeZone, first, today))
}

function heatmapWindow (timeZone: string, now: Date) {
  const today = localDate(now, timeZone)
  return { today, first: new Date(Date.parse(`${today}T00:00:00Z`) - (HEATMAP_DAYS - 1) * 86_400_000).toISOString().slice(0, 10) }
}

function heatmapBody (first: string, today: string, rows: HeatmapDay[]) {
  const byDate = new Map(rows.map((row) => [row.day, row]))
  const days = datesBetween(first, today).map((date) => {
    const row = byDate.get(date)
    return { date, requests: row?.requests ?? 0, total_tokens: row?.totalTokens ?? 0, total_cost: nanoToUsd(row?.totalCost ?? 0n), actual_total_cost: nanoToUsd(row?.actualTotalCost ?? 0n) }
  })
  return { start_date: first, end_date: today, total_days: days.length, max_requests: Math.max(0, ...days.map((d) => d.requests)), days }
}

// ---- records ----

export const MAX_KEYWORDS = KEYWORD_SLOTS
/** A total is counted exactly when its candidate rows (what its index walk reads) are at most this many; beyond, the planner's estimate is given. */
export const EXACT_COUNT_CAP = 10_000

type Category = 'stream' | 'standard' | 'error' | 'pending' | 'streaming' | 'completed' | 'failed' | 'active'

const CATEGORIES: Record<Category, Pick<RecordFilter, 'statuses' | 'isStream' | 'errorsOnly'>> = {
  stream: { statuses: null, isStream: true, errorsOnly: false },
  standard: { statuses: null, isStream: false, errorsOnly: false },
  error: { statuses: null, isStream: null, errorsOnly: true },
  pending: { statuses: ['pending'], isStream: null, errorsOnly: false },
  streaming: { statuses: ['streaming'], isStream: null, errorsOnly: false },
  completed: { statuses: ['completed'], isStream: null, errorsOnly: false },
  failed: { statuses: ['failed'], isStream: null, errorsOnly: false },
  active: { statuses: [...IN_FLIGHT_STATUSES], isStream: null, errorsOnly: false }
}

/** Keywords as ILIKE patterns that match them literally. */
export function searchPatterns (search: string | undefined): string[] {
  const words = (search ?? '').split(/\s+/).filter((word) => word !== '')
  if (words.length > MAX_KEYWORDS) throw Object.assign(new Errors.InvalidInput(`query.search: at most ${MAX_KEYWORDS} keywords`), { field: 'query.search' })
  return words.map(containsPattern)
}

export interface RecordsQuery {
  start_date?: string
  end_date?: string
  search?: string
  user_id?: string
  username?: string
  model?: string
  provider?: string
  status?: string
  api_key_id?: string
  /** the page's, which the filter leaves aside (the export has none) */
  limit?: number
  offset?: number
}

/** The filter of a records query (its page, limit and offset, aside): the one rule of the records page and its export. */
export function recordFilter (query: RecordsQuery): RecordFilter {
  const start = query.start_date === undefined ? null : new Date(query.start_date)
  const end = query.end_date === undefined ? null : new Date(query.end_date)
  if (start !== null && end !== null && start >= end) throw new Errors.InvalidInput('start_date must be before end_date')
  return {
    start,
    end,
    userId: query.user_id ?? null,
    username: query.username ?? null,
    model: query.model ?? null,
    provider: query.provider ?? null,
    apiKeyId: query.api_key_id ?? null,
    ...(query.status === undefined ? { statuses: null, isStream: null, errorsOnly: false } : CATEGORIES[query.status as Category]),
    patterns: searchPatterns(query.search)
  }
}

/** A raw record row as the API shows it (the records page, its export). */
export function toRecord (row: RecordRow) {
  return {
    id: row.id,
    request_id: row.request_id,
    user_id: row.user_id,
    username: row.username,
    api_key: row.api_key_id === null || row.api_key_name === null ? null : { id: row.api_key_id, name: row.api_key_name, display: row.api_key_display ?? '' },
    user_email: row.email,
    provider: row.provider,
    // Aether's records show the provider key the request was served with, not the caller's key
    api_key_name: row.provider_key_name,
    rate_multiplier: Number(row.rate_multiplier),
    model: row.model,
    target_model: row.target_model,
    api_format: row.api_format,
    is_stream: row.is_stream,
    status: row.status,
    status_code: row.status_code,
    error_message: row.error_message,
    input_tokens: row.input_tokens,
    output_tokens: row.output_tokens,
    cache_creation_input_tokens: row.cache_creation_input_tokens,
    cache_read_input_tokens: row.cache_read_input_tokens,
    total_tokens: row.total_tokens,
    cost: usd(row.total_cost),
    actual_cost: usd(row.actual_total_cost),
    response_time_ms: row.response_time_ms,
    first_byte_time_ms: row.first_byte_time_ms,
    has_fallback: row.has_fallback,
    created_at: row.created_at.toISOString(),
    request_metadata: redactJson(row.metadata)
  }
}

/**
 * The filter's names as ids: the users, providers and models whose names contain them
 * (case-insensitive, the dashboard's filter boxes), found in the small tables; null when
 * the filter cannot match (a name matching nothing, or a user_id its username filter
 * does not match), so a miss is answered without reading usage.
 */
export async function resolveFilter (db: Sql, filter: RecordFilter): Promise<ResolvedFilter | null> {
  const pattern = (text: string | null) => text === null ? null : containsPattern(text)
  const named = await resolveNames(db, { username: pattern(filter.username), provider: pattern(filter.provider), model: pattern(filter.model) })
  if ([named.userIds, named.providerIds, named.models].some((ids) => ids !== null && ids.length === 0)) return null
  let namedUserIds = named.userIds
  if (filter.userId !== null && namedUserIds !== null) {
    if (!namedUserIds.includes(filter.userId)) return null
    namedUserIds = [filter.userId]
  }
  return { ...filter, namedUserIds, providerIds: named.providerIds, models: named.models }
}

/**
 * A keyword search with no user, key, model or provider filter is driven by one keyword:
 * resolved to the ids it matches, whose indexes find its rows newest first, instead of a
 * walk of usage (created_at) testing every row. The driver is the keyword the planner
 * expects the fewest rows for. (pg_trgm would index only usage's own model and
 * provider_name; usernames and key names live in the small tables.) Null when a keyword
 * matches nothing at all (for one user: not their name, nor one of their keys): then no
 * row matches every keyword.
 */
async function withDriver (db: Sql, filter: ResolvedFilter): Promise<ResolvedFilter | null> {
  if (filter.patterns.length === 0 || filter.apiKeyId !== null || filter.models !== null || filter.providerIds !== null) return filter
  const scope = filter.userId ?? (filter.namedUserIds?.length === 1 ? filter.namedUserIds[0]! : null)
  const keywords = await keywordMatches(db, filter.patterns, scope)
  for (const match of keywords) {
    const ids = match.users.length + match.keys.length + match.providers.length + match.models.length
    if (ids === 0 && !await goneProviderMatches(db, match.pattern)) return null
  }
  // one user's rows: walked newest first through usage (user_id, created_at), a page of matches is found at once
  if (scope !== null) return filter
  let best: { match: KeywordMatch, rows: number } | null = null
  for (const match of keywords) {
    const rows = keywords.length === 1 ? 0 : await estimateKeyword(db, match)
    if (best === null || rows < best.rows) best = { match, rows }
  }
  return { ...filter, driver: best!.match, keywords }
}

/**
 * A page of records, newest first, and how many match: counted exactly when at most
 * `cap` candidate rows (a bound on work, not on matches) hold them all, else estimated.
 */
export async function records (db: SqlPool, given: RecordFilter, limit: number, offset: number, cap = EXACT_COUNT_CAP) {
  const resolved = await resolveFilter(db, given)
  const filter = resolved === null ? null : await withDriver(db, resolved)
  if (filter === null) return { records: [], limit, offset, total: 0, total_is_estimate: false }
  const rows = await recordPage(db, filter, limit, offset)
  const page = { records: rows.map(toRecord), limit, offset }
  // a short page is the end of the list: it says the total without another scan
  if (rows.length < limit && (rows.length > 0 || offset === 0)) return { ...page, total: offset + rows.length, total_is_estimate: false }
  const seen = offset + rows.length
  // side by side on two connections: the matches the planner expects, and the candidate rows a count would walk
  const [estimate, candidates] = await Promise.all([estimateRecords(db, filter), estimateCandidates(db, filter)])
  // more candidates than the bound: the count would be cut off before it saw them all, so it is not run
  if (candidates > cap) return { ...page, total: Math.max(estimate, seen), total_is_estimate: true }
  const counted = await countRecords(db, filter, cap)
  if (counted.complete) return { ...page, total: counted.matched, total_is_estimate: false }
  return { ...page, total: Math.max(estimate, counted.matched, seen), total_is_estimate: true }
}

/** The newest `limit` records of a filter, without a total (the user's usage page reads one page). */
export async function newestRecords (db: Sql, given: RecordFilter, limit: number) {
  const resolved = await resolveFilter(db, given)
  const filter = resolved === null ? null : await withDriver(db, resolved)
  return filter === null ? [] : (await recordPage(db, filter, limit, 0)).map(toRecord)
}

/** One usage row in full; `userId` limits it to that user's rows (another's is a 404). */
export async function detail (db: Sql, id: string, userId: string | null) {
  // side by side on two connections; the candidates are dropped unless the row is found (and the caller's)
  const [row, candidates] = await Promise.all([usageDetail(db, id, userId), requestCandidates(db, id)])
  if (row === undefined) throw new Errors.NotFound('usage record not found')
  return {
    ...toRecord(row),
    user: row.user_id === null || row.username === null ? null : { id: row.user_id, username: row.username, email: row.email },
    provider_id: row.provider_id,
    provider_endpoint_id: row.provider_endpoint_id,
    provider_api_key_id: row.provider_api_key_id,
    cache_creation_5m_input_tokens: row.cache_creation_5m_input_tokens,
    cache_creation_1h_input_tokens: row.cache_creation_1h_input_tokens,
    input_cost: usd(row.input_cost),
    output_cost: usd(row.output_cost),
    cache_creation_cost: usd(row.cache_creation_cost),
    cache_read_cost: usd(row.cache_read_cost),
    request_cost: usd(row.request_cost),
    total_cost: usd(row.total_cost),
    actual_input_cost: usd(row.actual_input_cost),
    actual_output_cost: usd(row.actual_output_cost),
    actual_cache_creation_cost: usd(row.actual_cache_creation_cost),
    actual_cache_read_cost: usd(row.actual_cache_read_cost),
    actual_request_cost: usd(row.actual_request_cost),
    actual_total_cost: usd(row.actual_total_cost),
    // the snapshot is nano-USD per 1M tokens, so USD per 1M is the same conversion
    input_price_per_1m: nanoToUsdOrNull(big(row.input_price_per_1m)),
    output_price_per_1m: nanoToUsdOrNull(big(row.output_price_per_1m)),
    cache_write_5m_price_per_1m: nanoToUsdOrNull(big(row.cache_write_5m_price_per_1m)),
    cache_write_1h_price_per_1m: nanoToUsdOrNull(big(row.cache_write_1h_price_per_1m)),
    cache_read_price_per_1m: nanoToUsdOrNull(big(row.cache_read_price_per_1m)),
    price_per_request: nanoToUsdOrNull(big(row.price_per_request)),
    pricing_source: row.pricing_source,
    finished_at: row.finished_at?.toISOString() ?? null,
    // masked again on the way out: rows stored before ingestion redacted them still hold credentials
    request_headers: redactHeaders(row.request_headers),
    response_headers: redactHeaders(row.response_headers),
    request_body: redactJson(row.request_body),
    response_body: redactJson(row.response_body),
    metadata: redactJson(row.metadata),
    candidates: candidates.map((c) => ({ ...c, started_at: c.started_at?.toISOString() ?? null, finished_at: c.finished_at?.toISOString() ?? null })),
    // the price the drawer shows for cache writes: the 1-hour one only when every write was 1-hour
    cache_creation_price_per_1m: nanoToUsdOrNull(big(row.cache_creation_5m_input_tokens === 0 && row.cache_creation_1h_input_tokens > 0
      ? row.cache_write_1h_price_per_1m
      : row.cache_write_5m_price_per_1m)),
    tiered_pricing: tieredPricing(row)
  }
}

/** The tier facts of the row: its price version's snapshot, at the row's own context (the tier is the one that priced it, pricing.ts tierFor). */
function tieredPricing (row: DetailRow) {
  if (row.model_price_id === null || row.price_tiers === null) return null
  const context = inputContext({ input: row.input_tokens, cacheWrite5m: row.cache_creation_5m_input_tokens, cacheWrite1h: row.cache_creation_1h_input_tokens, cacheRead: row.cache_read_input_tokens })
  return aetherTiers(tieredPricingOf({ id: row.model_price_id, providerId: row.price_provider_id, tiers: row.price_tiers }, context))
}

const big = (value: string | null) => value === null ? null : BigInt(value)

/** The stored tier facts (USD) with each tier also in Aether's names (aetherTier), which its drawer reads unguarded. */
function aetherTiers (pricing: TieredPricing) {
  const aether = (tier: TieredPricing['current_tier']) => aetherTier(tierFromUsd(tier))
  return { ...pricing, current_tier: aether(pricing.current_tier), tiers: pricing.tiers.map(aether) }
}
