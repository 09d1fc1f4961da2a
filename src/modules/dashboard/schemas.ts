// The home dashboards (AETHER.md §3): Aether's field names, money in USD, the cards'
// values pre-formatted. Unknown query parameters are ignored, never refused (§1).
import Type from 'typebox'

const Usd = Type.Number({ description: 'USD' })
const Count = Type.Integer({ minimum: 0 })

export const StatsQuery = Type.Object({}, { description: 'nothing is read; unknown parameters are ignored' })

const Card = Type.Object({
  name: Type.String({ description: 'the card\'s title, as the dashboard prints it' }),
  value: Type.String({ description: 'pre-formatted' }),
  subValue: Type.Optional(Type.String()),
  change: Type.Optional(Type.String()),
  changeType: Type.Optional(Type.Union([Type.Literal('increase'), Type.Literal('decrease'), Type.Literal('neutral')])),
  extraBadge: Type.Optional(Type.String()),
  icon: Type.String()
})

const Today = Type.Object({
  requests: Count,
  cost: Usd,
  actual_cost: Usd,
  tokens: Count,
  cache_creation_tokens: Count,
  cache_read_tokens: Count
}, { description: 'today (APP_TIMEZONE)' })

const TokenBreakdown = Type.Object({ input: Count, output: Count, cache_creation: Count, cache_read: Count }, { description: 'all time' })

const CacheStats = Type.Object({
  cache_creation_tokens: Count,
  cache_read_tokens: Count,
  total_cache_tokens: Count,
  cache_hit_rate: Type.Number({ description: 'all time: cache reads / (input + cache reads), percent, 1 decimal' })
}, { description: 'tokens of the last 30 days' })

export const DashboardStats = Type.Object({
  stats: Type.Array(Card),
  today: Today,
  token_breakdown: TokenBreakdown,
  cache_stats: CacheStats,
  system_health: Type.Optional(Type.Object({
    avg_response_time: Type.Number({ description: 'seconds, 2 decimals, last 30 days' }),
    error_rate: Type.Number({ description: 'percent, 2 decimals, last 30 days' }),
    error_requests: Count,
    fallback_count: Type.Integer({ minimum: 0, description: 'requests with more than one executed candidate, last 30 days' }),
    total_requests: Count
  }, { description: 'admins only' })),
  cost_stats: Type.Optional(Type.Object({
    total_cost: Usd,
    total_actual_cost: Usd,
    cost_savings: Type.Number({ description: 'USD: total − actual, 4 decimals' })
  }, { description: 'admins only; last 30 days, USD 4 decimals' })),
  monthly_cost: Type.Optional(Type.Number({ description: 'regular users only: USD, last 30 days' }))
})

export const DailyQuery = Type.Object({
  days: Type.Integer({ minimum: 1, maximum: 30, default: 7, description: 'local days ending today' })
}, { description: 'unknown parameters are ignored' })

const ModelPart = Type.Object({ model: Type.String(), requests: Count, tokens: Count, cost: Usd })

export const DailyStats = Type.Object({
  daily_stats: Type.Array(Type.Object({
    date: Type.String({ description: 'YYYY-MM-DD, an APP_TIMEZONE day' }),
    requests: Count,
    tokens: Type.Integer({ minimum: 0, description: 'all four kinds' }),
    cost: Usd,
    avg_response_time: Type.Number({ description: 'seconds; 0 without a timed request' }),
    unique_models: Count,
    unique_providers: Count,
    model_breakdown: Type.Array(ModelPart)
  })),
  model_summary: Type.Array(ModelPart),
  period: Type.Object({ start_date: Type.String(), end_date: Type.String(), days: Type.Integer() })
})
