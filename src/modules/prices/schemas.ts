import Type, { type Static } from 'typebox'
import { IdParams, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'

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

export const PriceRecord = Type.Object({
  id: Uuid,
  model: Type.String(),
  provider_id: Nullable(Uuid),
  provider_name: Nullable(Type.String({ description: 'null for the global default' })),
  tiers: Type.Array(TierRecord),
  price_per_request_usd: Nullable(Type.Number()),
  effective_from: Timestamp,
  created_at: Timestamp
})

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

export { Message } from '../../http/schemas.js'

export type PriceCreateBody = Static<typeof PriceCreate>
export type PriceUpdateBody = Static<typeof PriceUpdate>
export type PriceListFilters = Static<typeof PriceListQuery>
