import Type, { type Static } from 'typebox'
import { IdParams, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { shared } from '../../http/openapi.js'

export const TokenRecord = shared('TokenRecord', Type.Object({
  id: Uuid,
  user_id: Uuid,
  name: Type.String(),
  description: Nullable(Type.String()),
  token_display: Type.String(),
  allowed_ips: Nullable(Type.Array(Type.String())),
  expires_at: Nullable(Timestamp),
  last_used_at: Nullable(Timestamp),
  last_used_ip: Nullable(Type.String()),
  usage_count: Type.Integer(),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  updated_at: Timestamp
}))

export const TokenCreated = Type.Object({ ...TokenRecord.properties, token: Type.String({ description: 'shown once' }) })

export const TokenCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  allowed_ips: Type.Optional(Type.Array(Type.String({ anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] }), { maxItems: 50, uniqueItems: true })),
  expires_at: Type.Optional(IsoDateTime)
}, { additionalProperties: false })

export const TokenListQuery = Type.Object({ ...SkipLimit(500, 100), user_id: Type.Optional(Uuid) }, { additionalProperties: false })
export const TokenList = Type.Object({ items: Type.Array(TokenRecord), total: Type.Integer(), skip: Type.Integer(), limit: Type.Integer() })
export const TokenIdParams = IdParams

export type TokenCreateBody = Static<typeof TokenCreate>
