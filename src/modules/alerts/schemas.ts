import Type, { type Static } from 'typebox'
import { Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { MAX_THRESHOLD, MIN_THRESHOLD } from './thresholds.js'

/** The most rules and endpoints kept (ingestion reads the rules of each charged subject; every alert goes to every endpoint). */
export const MAX_RULES = 1000
export const MAX_ENDPOINTS = 20

const SubjectKind = Type.Union([Type.Literal('api_key'), Type.Literal('user'), Type.Literal('provider')], { description: 'whose limit the rule watches' })
const LimitKind = Type.Union([Type.Literal('budget'), Type.Literal('balance'), Type.Literal('total_cost'), Type.Literal('daily_cost'), Type.Literal('quota')], {
  description: 'api_key: budget (each of its budgets), balance (a standalone key\'s), total_cost (total_cost_limit), daily_cost (daily_cost_limit, per APP_TIMEZONE day); user: budget, quota; provider: quota (monthly_quota)'
})
const Thresholds = Type.Array(Type.Integer({ minimum: MIN_THRESHOLD, maximum: MAX_THRESHOLD }), {
  minItems: 1, maxItems: 10, uniqueItems: true, description: 'percents of the limit; each fires once per window of the limit (docs/alerts.md)'
})

export const RuleCreate = Type.Object({
  subject_kind: SubjectKind,
  subject_id: Type.Optional(Nullable(Uuid)),
  limit_kind: LimitKind,
  thresholds: Thresholds,
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const RuleUpdate = Type.Object({
  thresholds: Type.Optional(Thresholds),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const RuleRecord = Type.Object({
  id: Uuid,
  subject_kind: SubjectKind,
  subject_id: Type.Union([Uuid, Type.Null()], { description: 'null: every subject of the kind' }),
  limit_kind: LimitKind,
  thresholds: Type.Array(Type.Integer(), { description: 'ascending' }),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp
})
export const RuleList = Type.Object({ rules: Type.Array(RuleRecord) })

const Url = Type.String({ minLength: 8, maxLength: 2000, pattern: '^https?://', description: 'http or https URL the alerts are POSTed to' })
const Secret = Type.String({ minLength: 16, maxLength: 200, description: 'HMAC-SHA256 key of the signature (write-only: stored encrypted, shown masked)' })

export const EndpointCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  url: Url,
  secret: Secret,
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const EndpointUpdate = Type.Object({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  url: Type.Optional(Url),
  secret: Type.Optional(Secret),
  is_active: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

export const EndpointRecord = Type.Object({
  id: Uuid,
  name: Type.String(),
  url: Type.String(),
  secret_display: Type.String({ description: 'the secret masked' }),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp
})
export const EndpointList = Type.Object({ endpoints: Type.Array(EndpointRecord) })

const DeliveryStatus = Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')], {
  description: 'pending: waiting for its next attempt; delivered: an attempt was answered 2xx; failed: every attempt failed'
})

export const AlertRecord = Type.Object({
  id: Uuid,
  type: Type.Literal('alert.threshold_reached'),
  created_at: Timestamp,
  subject: Type.Object({ kind: SubjectKind, id: Uuid }),
  limit: Type.Object({
    kind: LimitKind,
    id: Uuid,
    amount_usd: Type.Number(),
    window_start: Nullable(Timestamp),
    window_end: Nullable(Timestamp)
  }),
  threshold_percent: Type.Integer(),
  used_usd: Type.Number(),
  used_percent: Type.Number()
}, { description: 'the webhook payload (docs/alerts.md)' })

export const AlertPage = Type.Object({ items: Type.Array(AlertRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })

export const DeliveryRecord = Type.Object({
  id: Uuid,
  alert_id: Uuid,
  endpoint_id: Uuid,
  status: DeliveryStatus,
  attempts: Type.Integer(),
  next_attempt_at: Type.String({ format: 'date-time', description: 'when a pending delivery is tried next (meaningless once delivered or failed)' }),
  response_code: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  delivered_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp
})
export const DeliveryPage = Type.Object({ items: Type.Array(DeliveryRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })

export const AlertQuery = Type.Object({ ...SkipLimit(500, 50) }, { additionalProperties: false })
export const DeliveryQuery = Type.Object({
  ...SkipLimit(500, 50),
  status: Type.Optional(DeliveryStatus),
  endpoint_id: Type.Optional(Uuid),
  alert_id: Type.Optional(Uuid)
}, { additionalProperties: false })

export type RuleCreateBody = Static<typeof RuleCreate>
export type RuleUpdateBody = Static<typeof RuleUpdate>
export type EndpointCreateBody = Static<typeof EndpointCreate>
export type EndpointUpdateBody = Static<typeof EndpointUpdate>
export type DeliveryQueryParams = Static<typeof DeliveryQuery>
export type AlertQueryParams = Static<typeof AlertQuery>
