// The shapes the parts of ingestion pass each other: a usage row as ingestion holds it,
// the start fields of an event, and the referenced rows a batch looked up.
import type { PriceVersion } from '../../prices/service.js'
import type { Costs } from '../../accounting/pricing.js'
import type { RollupSource } from '../../accounting/rollups.js'

/** The columns of a usage row that ingestion writes (snake_case, as in the table). */
export interface RowState extends RollupSource {
  /** the row's primary key: read back, or made by the machine (uuidv7 of created_at) for a new row */
  id: string
  requestId: string
  providerEndpointId: string | null
  providerApiKeyId: string | null
  providerName: string | null
  targetModel: string | null
  isStream: boolean
  statusCode: number | null
  errorMessage: string | null
  cacheCreation5m: number
  cacheCreation1h: number
  costs: Costs
  actual: Costs
  /** the unit prices of the row's tier: not stored (read back from price_snapshot_tiers), kept for the rollups' cache economics */
  snapshot: { input: bigint, output: bigint, cacheWrite5m: bigint, cacheWrite1h: bigint, cacheRead: bigint, perRequest: bigint | null } | null
  /** the price version that priced the row (its price_snapshots row gives the tier, prices and tier facts); null when unpriced */
  modelPriceId: string | null
  rateMultiplier: string
  firstByteTimeMs: number | null
  metadata: unknown
  finishedAt: Date | null
}

/** The start fields, as a `start` carries them or a `complete` may. */
export interface StartFields {
  request_id: string
  api_key_id?: string
  model?: string
  api_format?: string
  is_stream?: boolean
  provider_id?: string | null
  provider_endpoint_id?: string | null
  provider_api_key_id?: string | null
  created_at?: string
  target_model?: string | null
  metadata?: object
}

export interface ProviderKeyRow { id: string, provider_id: string, rate_multiplier: string, cache_ttl_minutes: number }

/** The rows a batch's events reference, by id (absent: unknown, or deleted). */
export interface Lookups {
  keys: Map<string, { id: string, user_id: string }>
  providers: Map<string, { id: string, name: string, billing_type: string }>
  endpoints: Map<string, { id: string, provider_id: string }>
  providerKeys: Map<string, ProviderKeyRow>
  /** the price versions of the batch's models */
  prices: PriceVersion[]
}

export const ZERO_COSTS: Costs = { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n }

/** A receipt: one event type of one request, received (gateway_events' primary key). */
export interface Receipt { request_id: string, event_type: string }
