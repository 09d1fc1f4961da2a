import Type, { type Static } from 'typebox'
import { IdParams, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { shared } from '../../http/openapi.js'

/** USD per 1M tokens; capped so the stored nano-USD stays an exact JSON number */
const PerMillionUsd = Type.Number({ minimum: 0, maximum: 1e6 })
const Model = Type.String({ minLength: 1, maxLength: 200 })
const PerRequestUsd = Type.Number({ minimum: 0, maximum: 1e6 })

const TierInput = Type.Object({
  up_to: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'total input context, in tokens, up to which the tier applies; null = no upper bound (last tier)' })),
  input: PerMillionUsd,
  output: PerMillionUsd,
  cache_write_5m: Type.Optional(Nullable(PerMillionUsd)),
  cache_write_1h: Type.Optional(Nullable(PerMillionUsd)),
  cache_read: Type.Optional(Nullable(PerMillionUsd))
}, { additionalProperties: false })

const Tiers = Type.Array(TierInput, {
  minItems: 1,
  maxItems: 10,
  description: 'USD per 1M tokens; missing cache prices default to input × 1.25 (5m write), × 2 (1h write), × 0.1 (read)'
})

const TierRecord = Type.Object({
  up_to: Nullable(Type.Integer()),
  input: Type.Number(),
  output: Type.Number(),
  cache_write_5m: Type.Number(),
  cache_write_1h: Type.Number(),
  cache_read: Type.Number()
})

export const PriceRecord = shared('PriceRecord', Type.Object({
  id: Uuid,
  model: Type.String(),
  provider_id: Nullable(Uuid),
  provider_name: Nullable(Type.String({ description: 'null for the global default' })),
  tiers: Type.Array(TierRecord),
  price_per_request_usd: Nullable(Type.Number()),
  effective_from: Timestamp,
  created_at: Timestamp
}))

export const PriceCreate = Type.Object({
  model: Model,
  provider_id: Type.Optional(Nullable(Uuid)),
  tiers: Tiers,
  price_per_request_usd: Type.Optional(Nullable(PerRequestUsd)),
  effective_from: Type.Optional(IsoDateTime)
}, { additionalProperties: false })

export const PriceUpdate = Type.Object({
  tiers: Type.Optional(Tiers),
  price_per_request_usd: Type.Optional(Nullable(PerRequestUsd)),
  effective_from: Type.Optional(IsoDateTime)
}, { additionalProperties: false, minProperties: 1 })

export const PriceListQuery = Type.Object({
  ...SkipLimit(500, 100),
  model: Type.Optional(Model),
  provider_id: Type.Optional(Uuid)
}, { additionalProperties: false })

export const PriceList = Type.Object({ prices: Type.Array(PriceRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })

export const PriceParams = IdParams
export const HistoryParams = Type.Object({ model: Model }, { additionalProperties: false })
export const HistoryQuery = Type.Object({ provider_id: Type.Optional(Uuid) }, { additionalProperties: false })
export const PriceHistory = Type.Object({ model: Type.String(), prices: Type.Array(PriceRecord) })

// ---- Aether's models page (AETHER.md §12) ----
/** a tier in Aether's names (USD per 1M tokens; the 1-hour write as a TTL price), keymeter's names beside them */
export const AetherTierRecord = Type.Object({
  ...TierRecord.properties,
  input_price_per_1m: Type.Number(),
  output_price_per_1m: Type.Number(),
  cache_creation_price_per_1m: Type.Number({ description: 'the 5-minute cache write' }),
  cache_read_price_per_1m: Type.Number(),
  cache_ttl_pricing: Type.Array(Type.Object({ ttl_minutes: Type.Integer(), cache_creation_price_per_1m: Type.Number() }), { description: 'the 1-hour write price' })
}, { description: 'USD per 1M tokens' })

export const GlobalModel = Type.Object({
  id: Uuid,
  name: Type.String(),
  display_name: Type.String({ description: 'the model name' }),
  description: Type.Null(),
  is_active: Type.Boolean({ description: 'always true: a model with a price in effect' }),
  default_tiered_pricing: Nullable(Type.Object({ tiers: Type.Array(AetherTierRecord) }, { description: 'the global price in effect; null when only providers price the model' })),
  default_price_per_request: Nullable(Type.Number()),
  provider_count: Type.Integer({ description: 'providers with a price in effect for the model, or that served it in the last 30 days' }),
  usage_count: Type.Integer({ description: 'all-time finished requests' }),
  config: Type.Null(),
  supported_capabilities: Type.Null(),
  created_at: Timestamp,
  updated_at: Timestamp
})

/** Aether's page sends nothing, its forms limit=1000&is_active=true; unknown parameters are ignored, not refused (AETHER.md §1) */
export const GlobalModelsQuery = Type.Object({
  ...SkipLimit(1000, 100),
  search: Type.Optional(Type.String({ maxLength: 200, description: 'a case-insensitive substring of the model name' })),
  is_active: Type.Optional(Type.Boolean())
})

export const GlobalModels = Type.Object({ models: Type.Array(GlobalModel), total: Type.Integer() })

export { Message } from '../../http/schemas.js'

export type PriceCreateBody = Static<typeof PriceCreate>
export type PriceUpdateBody = Static<typeof PriceUpdate>
export type PriceListFilters = Static<typeof PriceListQuery>
export type GlobalModelsFilters = Static<typeof GlobalModelsQuery>
