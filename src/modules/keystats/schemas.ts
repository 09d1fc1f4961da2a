import Type, { type Static } from 'typebox'
import { Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { BudgetRecord } from '../budgets/schemas.js'

// The key travels in the body (either spelling) or as a bearer header. Unknown fields
// are refused, so a key id (`key_id`, `apiId`) is never taken for a credential.
const keyFields = {
  api_key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'your API key (sk-…); or send it as Authorization: Bearer' })),
  apiKey: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'the same, as claude-relay-service\'s stats page sends it' }))
}

export const KeyBody = Type.Object(keyFields, { additionalProperties: false })
export const ModelStatsBody = Type.Object({
  ...keyFields,
  period: Type.Union([Type.Literal('daily'), Type.Literal('monthly')], { description: 'today or this calendar month, in APP_TIMEZONE' })
}, { additionalProperties: false })

export const DailyUsageBody = Type.Object({
  ...keyFields,
  days: Type.Optional(Type.Integer({ minimum: 1, maximum: 90, description: 'how many local days, today included (30 when absent)' }))
}, { additionalProperties: false })

const Count = Type.Integer({ minimum: 0 })
const usageFields = {
  requests: Count,
  input_tokens: Count,
  output_tokens: Count,
  cache_creation_tokens: Count,
  cache_read_tokens: Count,
  total_tokens: Count,
  cost_usd: Type.Number()
}
const AllowList = Nullable(Type.Array(Type.String(), { description: 'null = every value allowed' }))

export const UserStats = Type.Object({
  id: Uuid,
  name: Type.String(),
  is_active: Type.Boolean(),
  created_at: Timestamp,
  expires_at: Nullable(Timestamp),
  usage: Type.Object(usageFields, { description: 'all time, finished requests' }),
  limits: Type.Object({
    rate_limit: Nullable(Type.Integer({ description: 'requests per rate window; null = unlimited' })),
    token_limit: Nullable(Type.Integer({ description: 'tokens per rate window; null = unlimited' })),
    rate_window_seconds: Type.Integer(),
    current_window_requests: Count,
    current_window_tokens: Count,
    window_resets_in_seconds: Type.Integer({ minimum: 0, description: 'until the oldest request in the rate window leaves it; 0 when it is empty' }),
    concurrent_limit: Nullable(Type.Integer()),
    daily_cost_limit_usd: Nullable(Type.Number()),
    today_cost_usd: Type.Number({ description: 'since local midnight in APP_TIMEZONE' }),
    total_cost_limit_usd: Nullable(Type.Number()),
    remaining_balance_usd: Nullable(Type.Number({ description: 'null = unlimited; net of live holds' })),
    held_usd: Type.Number({ description: 'the live admission holds of requests admitted and not yet settled' })
  }),
  restrictions: Type.Object({ allowed_models: AllowList, allowed_providers: AllowList, allowed_api_formats: AllowList }),
  budgets: Type.Array(BudgetRecord, { description: 'the key\'s budgets and its owner\'s, each with its current window, as verify counts them' })
})

export const ModelStats = Type.Object({
  period: Type.Union([Type.Literal('daily'), Type.Literal('monthly')]),
  models: Type.Array(Type.Object({ model: Type.String(), ...usageFields }), { description: 'sorted by total_tokens, most first' })
})

export const UsageDetails = Type.Object({
  period_hours: Type.Literal(24),
  models: Type.Record(Type.String(), Count, { description: 'finished requests per model' })
})

export const DailyUsage = Type.Object({
  time_zone: Type.String({ description: 'APP_TIMEZONE, which cuts the days' }),
  start: Timestamp,
  end: Timestamp,
  days: Type.Array(Type.Object({
    date: Type.String({ format: 'date' }),
    requests: Count,
    total_tokens: Count,
    cost_usd: Type.Number()
  }), { description: 'one per local day, oldest first, days without requests included as zeros' }),
  models: Type.Array(Type.Object({ model: Type.String(), ...usageFields }), { description: 'the same range per model, sorted by cost, most first' })
})

export type Period = Static<typeof ModelStatsBody>['period']
