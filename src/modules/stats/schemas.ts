// Usage statistics: Aether's paths and field names, money in USD.
import Type from 'typebox'
import { IsoDateTime, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { AetherTierRecord } from '../prices/schemas.js'
import { shared } from '../../http/openapi.js'

export const Usd = Type.Number({ description: 'USD' })
export const Count = Type.Integer({ minimum: 0 })

const rangeFields = {
  start_date: Type.Optional(IsoDateTime),
  end_date: Type.Optional(IsoDateTime)
}

// Aether's paths: other query parameters are ignored, not refused (AETHER.md §1)
export const StatsQuery = Type.Object(rangeFields, { description: 'default: the last 30 days; at most 366' })

export const Stats = Type.Object({
  total_requests: Count,
  total_tokens: Count,
  total_cost: Usd,
  total_actual_cost: Usd,
  avg_response_time: Type.Number({ description: 'seconds' }),
  error_count: Count,
  error_rate: Type.Number({ description: 'percent, 2 decimals' }),
  cache_stats: Type.Object({
    cache_creation_tokens: Count,
    cache_read_tokens: Count,
    cache_creation_cost: Usd,
    cache_read_cost: Usd
  })
})

export const GroupBy = Type.Union([Type.Literal('model'), Type.Literal('user'), Type.Literal('provider'), Type.Literal('api_format')])

export const AggregationQuery = Type.Object({
  group_by: GroupBy,
  ...rangeFields,
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'default 20; for group_by=user, every user with usage (at most 10,000)' }))
}, { description: 'neither date: all time; one of them: as the stats (default 30 days, at most 366)' })

const ModelRow = Type.Object({ model: Type.String(), request_count: Count, total_tokens: Count, total_cost: Usd, actual_cost: Usd })
const UserRow = Type.Object({ user_id: Uuid, email: Nullable(Type.String()), username: Type.String(), request_count: Count, total_tokens: Count, total_cost: Usd })
const ProviderRow = Type.Object({
  provider_id: Uuid,
  provider: Type.String(),
  request_count: Type.Integer({ description: 'attempts: candidates sent to the provider' }),
  total_tokens: Count,
  total_cost: Usd,
  actual_cost: Usd,
  avg_response_time_ms: Type.Number(),
  success_rate: Type.Number({ description: 'percent of attempts, 2 decimals' }),
  error_count: Count
})
const ApiFormatRow = Type.Object({
  api_format: Nullable(Type.String()),
  request_count: Count,
  total_tokens: Count,
  total_cost: Usd,
  actual_cost: Usd,
  avg_response_time_ms: Type.Number()
})

export const Aggregation = Type.Array(Type.Union([ModelRow, UserRow, ProviderRow, ApiFormatRow]), { description: 'sorted by request_count, then the group key' })

export const HeatmapQuery = Type.Object({
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone; default APP_TIMEZONE' }))
}, { additionalProperties: false })

export const Heatmap = Type.Object({
  start_date: Type.String({ format: 'date' }),
  end_date: Type.String({ format: 'date' }),
  total_days: Type.Integer(),
  max_requests: Count,
  days: Type.Array(Type.Object({ date: Type.String({ format: 'date' }), requests: Count, total_tokens: Count, total_cost: Usd, actual_total_cost: Usd }))
})

/** the usage page's stats with the heatmap it reads (APP_TIMEZONE days, whatever the range) */
export const StatsWithHeatmap = Type.Object({ ...Stats.properties, activity_heatmap: Heatmap })

export const StatusCategory = Type.Union(['stream', 'standard', 'error', 'pending', 'streaming', 'completed', 'failed', 'active'].map((s) => Type.Literal(s)))

const ownRecordFilters = {
  ...rangeFields,
  search: Type.Optional(Type.String({ maxLength: 1000, description: 'up to 10 space-separated keywords, each matching username, key name, model or provider' })),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'a substring of the model, case-insensitive' })),
  provider: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'a substring of the provider name, case-insensitive' })),
  status: Type.Optional(StatusCategory),
  api_key_id: Type.Optional(Uuid),
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
  offset: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })
}

export const OwnRecordsQuery = Type.Object(ownRecordFilters, { additionalProperties: false })
// Aether's records page: unknown parameters are ignored, not refused (AETHER.md §1)
export const RecordsQuery = Type.Object({
  ...ownRecordFilters,
  user_id: Type.Optional(Uuid),
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'a substring of the username, case-insensitive' }))
})

export const recordFields = {
  id: Uuid,
  request_id: Type.String(),
  user_id: Nullable(Uuid),
  username: Nullable(Type.String()),
  api_key: Nullable(Type.Object({ id: Uuid, name: Type.String(), display: Type.String({ description: 'sk-abcd…wxyz' }) })),
  user_email: Nullable(Type.String()),
  provider: Nullable(Type.String()),
  api_key_name: Nullable(Type.String({ description: 'the provider key the request was served with (the operator\'s: admins only)' })),
  rate_multiplier: Type.Number({ description: 'the provider key\'s multiplier of actual_cost' }),
  model: Type.String(),
  target_model: Nullable(Type.String()),
  api_format: Nullable(Type.String()),
  is_stream: Type.Boolean(),
  status: Type.String(),
  status_code: Nullable(Type.Integer()),
  error_message: Nullable(Type.String()),
  input_tokens: Count,
  output_tokens: Count,
  cache_creation_input_tokens: Count,
  cache_read_input_tokens: Count,
  total_tokens: Count,
  cost: Usd,
  actual_cost: Usd,
  response_time_ms: Nullable(Type.Integer()),
  first_byte_time_ms: Nullable(Type.Integer()),
  has_fallback: Type.Boolean({ description: 'more than one candidate was sent' }),
  created_at: Timestamp,
  request_metadata: Type.Unknown({ description: 'the usage event\'s metadata (model_version, …), credentials masked' })
}

/** One usage record as the records list shows it. */
export const UsageRecord = shared('UsageRecord', Type.Object(recordFields))

export const Records = Type.Object({
  records: Type.Array(UsageRecord),
  total: Count,
  limit: Type.Integer(),
  offset: Type.Integer(),
  total_is_estimate: Type.Boolean({ description: 'true when the total is the planner\'s estimate (counting it exactly would read more than 10,000 candidate rows)' })
})

export const UsageParams = Type.Object({ usage_id: Uuid }, { additionalProperties: false })

const UsdPerMillion = Nullable(Type.Number({ description: 'USD per 1M tokens' }))
/** a tier as the detail shows it: keymeter's names and Aether's (its request drawer reads them), as the model catalogue does */
const TierUsd = AetherTierRecord
const Json = Type.Unknown()

export const UsageDetail = Type.Object({
  ...recordFields,
  user: Nullable(Type.Object({ id: Uuid, username: Type.String(), email: Nullable(Type.String()) })),
  provider_id: Nullable(Uuid),
  provider_endpoint_id: Nullable(Uuid),
  provider_api_key_id: Nullable(Uuid),
  cache_creation_5m_input_tokens: Count,
  cache_creation_1h_input_tokens: Count,
  input_cost: Usd,
  output_cost: Usd,
  cache_creation_cost: Usd,
  cache_read_cost: Usd,
  request_cost: Usd,
  total_cost: Usd,
  actual_input_cost: Usd,
  actual_output_cost: Usd,
  actual_cache_creation_cost: Usd,
  actual_cache_read_cost: Usd,
  actual_request_cost: Usd,
  actual_total_cost: Usd,
  input_price_per_1m: UsdPerMillion,
  output_price_per_1m: UsdPerMillion,
  cache_write_5m_price_per_1m: UsdPerMillion,
  cache_write_1h_price_per_1m: UsdPerMillion,
  cache_read_price_per_1m: UsdPerMillion,
  cache_creation_price_per_1m: Nullable(Type.Number({ description: 'USD per 1M tokens: the 5-minute write price, or the 1-hour one when every cache write of the request was 1-hour' })),
  price_per_request: Nullable(Type.Number({ description: 'USD per successful request' })),
  pricing_source: Nullable(Type.String({ description: 'model_price or unpriced' })),
  finished_at: Nullable(Timestamp),
  request_headers: Json,
  response_headers: Json,
  request_body: Json,
  response_body: Json,
  metadata: Json,
  candidates: Type.Array(Type.Object({
    candidate_index: Type.Integer(),
    retry_index: Type.Integer(),
    provider_id: Nullable(Uuid),
    provider: Nullable(Type.String()),
    provider_endpoint_id: Nullable(Uuid),
    provider_api_key_id: Nullable(Uuid),
    status: Type.String(),
    skip_reason: Nullable(Type.String()),
    is_cached: Type.Boolean(),
    status_code: Nullable(Type.Integer()),
    error_type: Nullable(Type.String()),
    error_message: Nullable(Type.String()),
    latency_ms: Nullable(Type.Integer()),
    started_at: Nullable(Timestamp),
    finished_at: Nullable(Timestamp)
  })),
  tiered_pricing: Nullable(Type.Object({
    total_input_context: Type.Integer(),
    tier_index: Type.Integer(),
    tier_count: Type.Integer(),
    current_tier: TierUsd,
    tiers: Type.Array(TierUsd),
    source: Type.String({ description: 'provider or global' }),
    model_price_id: Type.Optional(Uuid)
  }))
})
