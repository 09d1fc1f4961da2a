import Type, { type Static } from 'typebox'
import { CountedArray, IdParams, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { shared } from '../../http/openapi.js'

const Name = Type.String({ minLength: 1, maxLength: 100 })
const BillingType = Type.Union([Type.Literal('monthly_quota'), Type.Literal('pay_as_you_go'), Type.Literal('free_tier')])
const QuotaUsd = Type.Number({ exclusiveMinimum: 0, maximum: 1e9 })
const Priority = Type.Integer({ minimum: -1_000_000, maximum: 1_000_000, description: 'lower comes first' })
const Config = Type.Record(Type.String(), Type.Unknown(), { description: 'free-form provider settings' })
/** skip/limit for the lists of a provider's endpoints and keys */
export const PageQuery = Type.Object(SkipLimit(500, 100), { additionalProperties: false })

// ---- providers ----
/** the monthly quota's state (providers/quota.ts), in a provider record and in the quota-usage statistics */
export const monthlyQuotaFields = {
  monthly_used_usd: Type.Number({ description: 'actual (upstream) cost of the current quota period\'s finished requests (from the last quota_reset_day, 00:00 UTC), USD' }),
  monthly_remaining_usd: Nullable(Type.Number({ minimum: 0, description: 'quota − used, never below 0; null without a quota' })),
  monthly_usage_percent: Nullable(Type.Number({ minimum: 0, description: 'used / quota × 100, two decimals; null without a quota' })),
  monthly_estimated_exhaust_at: Nullable(Timestamp),
  monthly_period_start: Type.String({ format: 'date-time', description: 'the current quota period\'s start: 00:00 UTC on quota_reset_day (the 1st when unset), clamped to the month\'s last day' }),
  monthly_period_end: Type.String({ format: 'date-time', description: 'the next period\'s start, when the quota resets' })
}

export const ProviderRecord = shared('ProviderRecord', Type.Object({
  id: Uuid,
  name: Type.String(),
  billing_type: BillingType,
  monthly_quota_usd: Nullable(Type.Number()),
  ...monthlyQuotaFields,
  priority: Type.Integer(),
  is_active: Type.Boolean(),
  config: Nullable(Config),
  endpoint_count: Type.Integer(),
  key_count: Type.Integer(),
  created_at: Timestamp,
  updated_at: Timestamp
}))

/** A local date and time as Aether's form sends it (no zone, e.g. 2026-12-01T08:00), or with one: kept as given. */
const LocalDateTime = Type.String({
  maxLength: 40,
  pattern: '^\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])([T ]([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d(\\.\\d{1,9})?)?)?(Z|[+-]\\d{2}:\\d{2})?$',
  description: 'YYYY-MM-DD[THH:mm[:ss[.fff]]], zone optional; stored and answered as given'
})

/**
 * Aether's provider form fields (AETHER.md §11): provider_priority is `priority`, the
 * others are kept in `config` under their own names (null removes one).
 */
const aetherFields = {
  display_name: Type.Optional(Nullable(Type.String({ maxLength: 100, description: 'shown by Aether; blank or absent: the name' }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 1000 }))),
  website: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
  quota_reset_day: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 365, description: 'the day of the month the monthly quota resets, 00:00 UTC (1 when unset); past a month\'s last day it resets on that last day (31: 28/29 Feb)' }))),
  quota_last_reset_at: Type.Optional(Nullable(LocalDateTime)),
  quota_expires_at: Type.Optional(Nullable(LocalDateTime)),
  rpm_limit: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: 'requests per minute; null = no limit' }))),
  provider_priority: Type.Optional(Priority)
}
/** the Aether fields stored in config */
export const CONFIG_FIELDS = ['display_name', 'description', 'website', 'quota_reset_day', 'quota_last_reset_at', 'quota_expires_at', 'rpm_limit'] as const

export const ProviderCreate = Type.Object({
  name: Name,
  billing_type: Type.Optional(BillingType),
  monthly_quota_usd: Type.Optional(Nullable(QuotaUsd)),
  priority: Type.Optional(Priority),
  is_active: Type.Optional(Type.Boolean()),
  config: Type.Optional(Nullable(Config)),
  ...aetherFields
}, { additionalProperties: false })

export const ProviderUpdate = Type.Object({
  name: Type.Optional(Name),
  billing_type: Type.Optional(BillingType),
  monthly_quota_usd: Type.Optional(Nullable(QuotaUsd)),
  priority: Type.Optional(Priority),
  is_active: Type.Optional(Type.Boolean()),
  config: Type.Optional(Nullable(Config)),
  ...aetherFields
}, { additionalProperties: false, minProperties: 1 })

// ---- Aether's providers page (AETHER.md §11) ----
const EndpointHealth = Type.Object({
  api_format: Type.String(),
  is_active: Type.Boolean(),
  health_score: Type.Null({ description: 'keymeter keeps no endpoint health' }),
  active_keys: Type.Integer({ description: 'the provider\'s active, unexpired keys (keys are not per endpoint)' })
})

export const ProviderSummary = Type.Object({
  id: Uuid,
  name: Type.String(),
  display_name: Type.String({ description: 'config.display_name, else the name' }),
  description: Nullable(Type.String()),
  website: Nullable(Type.String()),
  provider_priority: Type.Integer({ description: 'priority: lower comes first' }),
  priority: Type.Integer(),
  billing_type: BillingType,
  monthly_quota_usd: Nullable(Type.Number()),
  monthly_used_usd: Type.Number(),
  quota_reset_day: Nullable(Type.Integer()),
  quota_last_reset_at: Nullable(Type.String({ description: 'as given' })),
  quota_expires_at: Nullable(Type.String({ description: 'as given' })),
  rpm_limit: Nullable(Type.Integer()),
  rpm_used: Type.Integer({ description: 'always 0: the gateway counts requests per minute, not keymeter' }),
  rpm_reset_at: Type.Null(),
  is_active: Type.Boolean(),
  total_endpoints: Type.Integer(),
  active_endpoints: Type.Integer(),
  total_keys: Type.Integer(),
  active_keys: Type.Integer({ description: 'active and not expired' }),
  total_models: Type.Integer({ description: 'models with a provider-specific price in effect' }),
  active_models: Type.Integer(),
  avg_health_score: Type.Null(),
  unhealthy_endpoints: Type.Integer(),
  api_formats: Type.Array(Type.String()),
  endpoint_health_details: Type.Array(EndpointHealth),
  config: Nullable(Config),
  created_at: Timestamp,
  updated_at: Timestamp
})

/** Aether's page sends nothing; unknown parameters are ignored, not refused (AETHER.md §1) */
export const ProviderSummaryQuery = Type.Object({ ...SkipLimit(1000, 1000), is_active: Type.Optional(Type.Boolean()) })
export const ProviderSummaryList = CountedArray(ProviderSummary, 'by priority, then name')

export const ProviderListQuery = Type.Object({ ...SkipLimit(500, 100), is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
export const ProviderList = Type.Object({ providers: Type.Array(ProviderRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })
export const ProviderParams = IdParams

// ---- endpoints ----
const ApiFormat = Type.String({ minLength: 1, maxLength: 64, description: 'e.g. claude:messages, openai:chat, gemini:generate' })
const BaseUrl = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048 })

export const EndpointRecord = shared('EndpointRecord', Type.Object({
  id: Uuid,
  provider_id: Uuid,
  api_format: Type.String(),
  base_url: Type.String(),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp
}))

export const EndpointCreate = Type.Object({
  api_format: ApiFormat,
  base_url: BaseUrl,
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const EndpointUpdate = Type.Object({
  api_format: Type.Optional(ApiFormat),
  base_url: Type.Optional(BaseUrl),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const EndpointList = Type.Object({ endpoints: Type.Array(EndpointRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })
export const EndpointParams = Type.Object({ id: Uuid, endpoint_id: Uuid }, { additionalProperties: false })

// ---- provider API keys ----
const Secret = Type.String({ minLength: 1, maxLength: 4096, description: 'write-only: stored encrypted, never returned' })
const RateMultiplier = Type.Number({ exclusiveMinimum: 0, maximum: 1000, description: 'applied to actual costs; up to 6 decimals' })
const CacheTtl = Type.Integer({ minimum: 0, maximum: 1440, description: 'prompt-cache TTL in minutes; 0 = no cache' })

export const ProviderKeyRecord = shared('ProviderKeyRecord', Type.Object({
  id: Uuid,
  provider_id: Uuid,
  name: Type.String(),
  secret_display: Type.String({ description: 'masked, e.g. sk-ant-…wxyz' }),
  rate_multiplier: Type.Number(),
  cache_ttl_minutes: Type.Integer(),
  is_active: Type.Boolean(),
  expires_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp
}))

export const ProviderKeyCreate = Type.Object({
  name: Name,
  secret: Secret,
  rate_multiplier: Type.Optional(RateMultiplier),
  cache_ttl_minutes: Type.Optional(CacheTtl),
  is_active: Type.Optional(Type.Boolean()),
  expires_at: Type.Optional(Nullable(IsoDateTime))
}, { additionalProperties: false })

export const ProviderKeyUpdate = Type.Object({
  name: Type.Optional(Name),
  secret: Type.Optional(Secret),
  rate_multiplier: Type.Optional(RateMultiplier),
  cache_ttl_minutes: Type.Optional(CacheTtl),
  is_active: Type.Optional(Type.Boolean()),
  expires_at: Type.Optional(Nullable(IsoDateTime))
}, { additionalProperties: false, minProperties: 1 })

export const ProviderKeyList = Type.Object({ keys: Type.Array(ProviderKeyRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })
export const ProviderKeyParams = Type.Object({ id: Uuid, key_id: Uuid }, { additionalProperties: false })

export { Message } from '../../http/schemas.js'

export type ProviderCreateBody = Static<typeof ProviderCreate>
export type ProviderUpdateBody = Static<typeof ProviderUpdate>
export type EndpointCreateBody = Static<typeof EndpointCreate>
export type EndpointUpdateBody = Static<typeof EndpointUpdate>
export type ProviderKeyCreateBody = Static<typeof ProviderKeyCreate>
export type ProviderKeyUpdateBody = Static<typeof ProviderKeyUpdate>
export type Page = Static<typeof PageQuery>
export type ProviderSummaryFilters = Static<typeof ProviderSummaryQuery>

// ---- upstream accounting ----
export const KeyUsageQuery = Type.Object({
  start_date: Type.Optional(IsoDateTime),
  end_date: Type.Optional(IsoDateTime)
}, { additionalProperties: false, description: 'default: the last 30 days; at most 366' })

const Tokens = Type.Integer({ minimum: 0 })
export const KeyUsageList = Type.Object({
  provider_id: Uuid,
  start_date: Timestamp,
  end_date: Timestamp,
  items: Type.Array(Type.Object({
    id: Uuid,
    name: Type.String(),
    is_active: Type.Boolean(),
    requests: Tokens,
    errors: Tokens,
    error_rate: Type.Number({ minimum: 0, maximum: 1, description: 'errors / requests; 0 without requests' }),
    input_tokens: Tokens,
    output_tokens: Tokens,
    cache_creation_tokens: Tokens,
    cache_read_tokens: Tokens,
    total_tokens: Tokens,
    cache_hit_requests: Tokens,
    total_cost_usd: Type.Number({ description: 'what the requests cost their callers, USD' }),
    actual_cost_usd: Type.Number({ description: 'what the upstream bills (rate-multiplied), USD' }),
    cache_creation_cost_usd: Type.Number(),
    cache_read_cost_usd: Type.Number(),
    avg_response_time_ms: Nullable(Type.Number({ minimum: 0 }))
  }))
})
