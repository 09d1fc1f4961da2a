import Type, { type Static } from 'typebox'
import { IdParams, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'

const Name = Type.String({ minLength: 1, maxLength: 100 })
const BillingType = Type.Union([Type.Literal('monthly_quota'), Type.Literal('pay_as_you_go'), Type.Literal('free_tier')])
const QuotaUsd = Type.Number({ exclusiveMinimum: 0, maximum: 1e9 })
const Priority = Type.Integer({ minimum: -1_000_000, maximum: 1_000_000, description: 'lower comes first' })
const Config = Type.Record(Type.String(), Type.Unknown(), { description: 'free-form provider settings' })
/** skip/limit for the lists of a provider's endpoints and keys */
export const PageQuery = Type.Object(SkipLimit(500, 100), { additionalProperties: false })

// ---- providers ----
export const ProviderRecord = Type.Object({
  id: Uuid,
  name: Type.String(),
  billing_type: BillingType,
  monthly_quota_usd: Nullable(Type.Number()),
  monthly_used_usd: Type.Number(),
  priority: Type.Integer(),
  is_active: Type.Boolean(),
  config: Nullable(Config),
  endpoint_count: Type.Integer(),
  key_count: Type.Integer(),
  created_at: Timestamp,
  updated_at: Timestamp
})

export const ProviderCreate = Type.Object({
  name: Name,
  billing_type: Type.Optional(BillingType),
  monthly_quota_usd: Type.Optional(Nullable(QuotaUsd)),
  priority: Type.Optional(Priority),
  is_active: Type.Optional(Type.Boolean()),
  config: Type.Optional(Nullable(Config))
}, { additionalProperties: false })

export const ProviderUpdate = Type.Object({
  name: Type.Optional(Name),
  billing_type: Type.Optional(BillingType),
  monthly_quota_usd: Type.Optional(Nullable(QuotaUsd)),
  priority: Type.Optional(Priority),
  is_active: Type.Optional(Type.Boolean()),
  config: Type.Optional(Nullable(Config))
}, { additionalProperties: false, minProperties: 1 })

export const ProviderListQuery = Type.Object({ ...SkipLimit(500, 100), is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
export const ProviderList = Type.Object({ providers: Type.Array(ProviderRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })
export const ProviderParams = IdParams

// ---- endpoints ----
const ApiFormat = Type.String({ minLength: 1, maxLength: 64, description: 'e.g. claude:messages, openai:chat, gemini:generate' })
const BaseUrl = Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048 })

export const EndpointRecord = Type.Object({
  id: Uuid,
  provider_id: Uuid,
  api_format: Type.String(),
  base_url: Type.String(),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp
})

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

export const ProviderKeyRecord = Type.Object({
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
})

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
