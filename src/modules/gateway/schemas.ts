import Type from 'typebox'
// The gateway's own bodies (verify); the usage events are the usage module's (usage/schemas.ts).
import { codedTypes, ERROR_TYPES, errorBody } from '../../http/errors.js'
import { Nullable, Uuid } from '../../http/schemas.js'
import { Refusals } from './verify.js'

export const VerifyBody = Type.Object({
  key: Type.String({ minLength: 1, maxLength: 256 }),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  provider: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'provider name or id' })),
  api_format: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  client_ip: Type.Optional(Type.String({ anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }], maxLength: 64, description: 'the caller\'s address as the gateway saw it; required by a key with an IP allow-list (ip_not_allowed without it)' })),
  user_agent: Type.Optional(Type.String({ maxLength: 1024, description: 'the caller\'s User-Agent; required by a key with a client allow-list (client_not_allowed without it)' })),
  request_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'the request this verify admits: it then reserves a hold that its completion settles; without it, verify is advisory' })),
  estimated_input_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'the request\'s whole input context (input, cache writes and reads); with max_output_tokens, sizes the hold' })),
  max_output_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'the most output tokens the request may produce' }))
}, { additionalProperties: false })

export const Hold = Type.Object({
  request_id: Type.String(),
  amount_usd: Type.Number({ description: 'counted against every cost limit of the key and its owner until the request\'s completion replaces it with its cost' }),
  expires_at: Type.String({ format: 'date-time', description: 'released then if never settled' })
})

export const VerifyAllowed = Type.Object({
  allowed: Type.Literal(true),
  key_id: Uuid,
  user_id: Uuid,
  limits: Type.Object({
    rate_limit: Nullable(Type.Integer({ description: 'requests per rate window' })),
    token_limit: Nullable(Type.Integer({ description: 'tokens per rate window' })),
    rate_window_seconds: Type.Integer(),
    concurrent_limit: Nullable(Type.Integer()),
    daily_cost_limit_usd: Nullable(Type.Number()),
    total_cost_limit_usd: Nullable(Type.Number()),
    allowed_models: Nullable(Type.Array(Type.String())),
    allowed_providers: Nullable(Type.Array(Type.String())),
    allowed_api_formats: Nullable(Type.Array(Type.String()))
  }),
  remaining_balance_usd: Nullable(Type.Number({ description: 'null = unlimited; net of every live hold' })),
  hold: Type.Optional(Hold)
})

export const HoldsQuery = Type.Object({
  api_key_id: Type.Optional(Uuid),
  user_id: Type.Optional(Uuid),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 })
}, { additionalProperties: false })

export const HoldList = Type.Object({
  holds: Type.Array(Type.Object({
    request_id: Type.String(),
    api_key_id: Uuid,
    user_id: Uuid,
    model: Nullable(Type.String()),
    amount_usd: Type.Number(),
    started: Type.Boolean({ description: 'its usage row exists (a start arrived)' }),
    created_at: Type.String({ format: 'date-time' }),
    expires_at: Type.String({ format: 'date-time' })
  })),
  total: Type.Integer({ description: 'live holds matching the filters (the list shows the newest `limit`)' }),
  held_usd: Type.Number({ description: 'their sum' })
})

/** verify's refusals: the pipeline's error types and each of Refusals' own */
export const VerifyRefusal = errorBody('VerifyRefusal', [...ERROR_TYPES, ...codedTypes(Refusals)], 'Refused: error.type says which check failed')
