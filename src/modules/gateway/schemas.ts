import Type from 'typebox'
// The gateway's own bodies (verify); the usage events are the usage module's (usage/schemas.ts).
import { Nullable, Uuid } from '../../http/schemas.js'

export const VerifyBody = Type.Object({
  key: Type.String({ minLength: 1, maxLength: 256 }),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  provider: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'provider name or id' })),
  api_format: Type.Optional(Type.String({ minLength: 1, maxLength: 64 }))
}, { additionalProperties: false })

export const VerifyAllowed = Type.Object({
  allowed: Type.Literal(true),
  key_id: Uuid,
  user_id: Uuid,
  limits: Type.Object({
    rate_limit: Nullable(Type.Integer()),
    concurrent_limit: Nullable(Type.Integer()),
    daily_cost_limit_usd: Nullable(Type.Number()),
    total_cost_limit_usd: Nullable(Type.Number()),
    allowed_models: Nullable(Type.Array(Type.String())),
    allowed_providers: Nullable(Type.Array(Type.String())),
    allowed_api_formats: Nullable(Type.Array(Type.String()))
  }),
  remaining_balance_usd: Nullable(Type.Number({ description: 'null = unlimited' }))
})
