// What a batch reads before applying its events: the usage rows it changes (locked) and
// the keys, providers, endpoints, provider keys and prices its events and rows name (key-shared).
import sql, { raw } from 'sql-template-tag'
import { usageByRequestSql } from '../../../db/partitions.js'
import type { Sql } from '../../../db/prisma.js'
import type { StoredTier } from '../../accounting/tiers.js'
import { COST_COLUMNS, storedActualCostsSql, tierPricesJoinSql, tierPricesSql, type Costs } from '../../accounting/pricing.js'
import type { UsageEventBody } from '../schemas.js'
import { ZERO_COSTS, type Lookups, type ProviderKeyRow, type RowState, type StartFields } from './row.js'

/** A usage row as node-postgres returns it (bigint and numeric columns as strings). */
type UsageRow = Record<string, unknown> & { request_id: string }

const big = (value: unknown) => BigInt(value as string)
const bigOrNull = (value: unknown) => value === null ? null : BigInt(value as string)

function fromRow (row: UsageRow): RowState {
  const costs = (prefix: string): Costs => {
    const read = { ...ZERO_COSTS }
    for (const [field, column] of COST_COLUMNS) read[field] = big(row[`${prefix}${column}`])
    return read
  }
  const state: RowState = {
    id: row.id as string,
    requestId: row.request_id,
    userId: row.user_id as string | null,
    apiKeyId: row.api_key_id as string | null,
    providerId: row.provider_id as string | null,
    providerEndpointId: row.provider_endpoint_id as string | null,
    providerApiKeyId: row.provider_api_key_id as string | null,
    providerName: row.provider_name as string | null,
    model: row.model as string,
    targetModel: row.target_model as string | null,
    apiFormat: row.api_format as string | null,
    isStream: row.is_stream as boolean,
    status: row.status as string,
    statusCode: row.status_code as number | null,
    errorMessage: row.error_message as string | null,
    inputTokens: row.input_tokens as number,
    outputTokens: row.output_tokens as number,
    cacheCreationTokens: row.cache_creation_input_tokens as number,
    cacheCreation5m: row.cache_creation_5m_input_tokens as number,
    cacheCreation1h: row.cache_creation_1h_input_tokens as number,
    cacheReadTokens: row.cache_read_input_tokens as number,
    totalTokens: row.total_tokens as number,
    costs: costs(''),
    actual: costs('actual_'),
    cacheCreationCost: 0n,
    cacheReadCost: 0n,
    totalCost: 0n,
    actualTotalCost: 0n,
    snapshot: row.input_price_per_1m === null
      ? null
      : {
          input: big(row.input_price_per_1m),
          output: big(row.output_price_per_1m),
          cacheWrite5m: big(row.cache_write_5m_price_per_1m),
          cacheWrite1h: big(row.cache_write_1h_price_per_1m),
          cacheRead: big(row.cache_read_price_per_1m),
          perRequest: bigOrNull(row.price_per_request)
        },
    modelPriceId: row.model_price_id as string | null,
    rateMultiplier: String(row.rate_multiplier),
    responseTimeMs: row.response_time_ms as number | null,
    firstByteTimeMs: row.first_byte_time_ms as number | null,
    metadata: row.metadata,
    createdAt: row.created_at as Date,
    finishedAt: row.finished_at as Date | null
  }
  state.cacheCreationCost = state.costs.cacheCreation
  state.cacheReadCost = state.costs.cacheRead
  state.totalCost = state.costs.total
  state.actualTotalCost = state.actual.total
  return state
}

/**
 * Usage rows with what they no longer store, under the names fromRow reads: their tier's
 * unit prices (the price_snapshot_tiers primary key) and their actual cost components.
 */
const ROWS_WITH_PRICES = sql`SELECT u.*, ${raw(tierPricesSql())}, ${raw(storedActualCostsSql('u'))} FROM ${usageByRequestSql()} ${raw(tierPricesJoinSql('u'))}`

/** The usage rows of these requests, locked in request_id order (served by usage_requests' key, then usage's). */
export async function readRows (db: Sql, requestIds: string[]): Promise<RowState[]> {
  const query = sql`${ROWS_WITH_PRICES} WHERE q.request_id = ANY(${requestIds}::text[]) ORDER BY q.request_id FOR UPDATE OF u`
  const { rows } = await db.query<UsageRow>(query.text, query.values)
  return rows.map(fromRow)
}

interface PriceRow { id: string, model: string, provider_id: string | null, tiers: StoredTier[], price_per_request: string | null, effective_from: string }

interface Found {
  keys: Array<{ id: string, user_id: string }>, provider_keys: ProviderKeyRow[],
  endpoints: Array<{ id: string, provider_id: string }>, providers: Array<{ id: string, name: string, billing_type: string }>, prices: PriceRow[]
}

/**
 * The usage rows of these requests, locked in request_id order, and the keys, providers,
 * endpoints, provider keys and prices that the events and those rows name, in one round
 * trip. Served by usage_requests' key, usage's, and the referenced tables' primary keys (prices:
 * model_prices' model index).
 */
export async function readRowsAndLookups (db: Sql, requestIds: string[], events: UsageEventBody[]): Promise<{ rows: RowState[], lookups: Lookups }> {
  const collect = (...lists: Array<Array<string | null | undefined>>) => [...new Set(lists.flat().filter((id): id is string => typeof id === 'string'))]
  const starts = events as StartFields[]
  const candidates = events.flatMap((e) => e.type === 'complete' ? e.candidates ?? [] : [])
  const keyIds = collect(starts.map((e) => e.api_key_id))
  const providerKeyIds = collect(starts.map((e) => e.provider_api_key_id), candidates.map((c) => c.provider_api_key_id))
  const endpointIds = collect(starts.map((e) => e.provider_endpoint_id), candidates.map((c) => c.provider_endpoint_id))
  const models = collect(starts.map((e) => e.model))
  const providerIds = collect(starts.map((e) => e.provider_id), candidates.map((c) => c.provider_id))
  // FOR KEY SHARE is the lock a foreign key check takes: what a batch's rows reference
  // cannot be deleted before it commits (usage has no foreign keys; see the migration
  // usage_references_by_trigger). Providers include those of the named keys and endpoints.
  // The lookups ride on the first row (a LEFT JOIN: one row with no usage columns when none exists).
  const query = sql`
    WITH r AS (
      ${ROWS_WITH_PRICES} WHERE q.request_id = ANY(${requestIds}::text[]) ORDER BY q.request_id FOR UPDATE OF u
    ), k AS (
      SELECT k.id, k.user_id FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ANY(${keyIds}::uuid[]) FOR KEY SHARE
    ), pk AS (
      SELECT id, provider_id, rate_multiplier::text AS rate_multiplier, cache_ttl_minutes FROM provider_api_keys
       WHERE id = ANY(${providerKeyIds}::uuid[]) OR id IN (SELECT provider_api_key_id FROM r) FOR KEY SHARE
    ), ep AS (
      SELECT id, provider_id FROM provider_endpoints WHERE id = ANY(${endpointIds}::uuid[]) OR id IN (SELECT provider_endpoint_id FROM r) FOR KEY SHARE
    ), pv AS (
      SELECT id, name, billing_type FROM providers
       WHERE id = ANY(${providerIds}::uuid[]) OR id IN (SELECT provider_id FROM r) OR id IN (SELECT provider_id FROM pk) OR id IN (SELECT provider_id FROM ep)
         FOR KEY SHARE
    ), mp AS (
      SELECT id, model, provider_id, tiers, price_per_request::text AS price_per_request, effective_from FROM model_prices
       WHERE model = ANY(${models}::text[]) OR model IN (SELECT model FROM r)
    ), l AS (
      SELECT json_build_object(
        'keys', (SELECT coalesce(json_agg(k), '[]') FROM k), 'provider_keys', (SELECT coalesce(json_agg(pk), '[]') FROM pk),
        'endpoints', (SELECT coalesce(json_agg(ep), '[]') FROM ep), 'providers', (SELECT coalesce(json_agg(pv), '[]') FROM pv),
        'prices', (SELECT coalesce(json_agg(mp), '[]') FROM mp)) AS lookups
    )
    SELECT CASE WHEN n IS NULL OR n = 1 THEN l.lookups END AS lookups, o.*
      FROM l LEFT JOIN (SELECT row_number() OVER (ORDER BY request_id) AS n, r.* FROM r) o ON true
     ORDER BY o.request_id`
  const { rows } = await db.query<UsageRow & { lookups: Found | null }>(query.text, query.values)
  const found = rows[0]!.lookups!
  const byId = <T extends { id: string }>(list: T[]) => new Map(list.map((row) => [row.id, row]))
  return {
    rows: rows[0]!.request_id === null ? [] : rows.map(fromRow),
    lookups: {
      keys: byId(found.keys),
      providers: byId(found.providers),
      endpoints: byId(found.endpoints),
      providerKeys: byId(found.provider_keys),
      prices: found.prices.map((p) => ({
        id: p.id,
        model: p.model,
        providerId: p.provider_id,
        tiers: p.tiers,
        pricePerRequest: bigOrNull(p.price_per_request),
        effectiveFrom: new Date(p.effective_from)
      }))
    }
  }
}
