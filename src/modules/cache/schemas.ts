// Prompt-cache analytics: Aether's paths and field names, plus the cost model, the
// savings breakdown and wasted writes. Money in USD; intervals in minutes.
import Type from 'typebox'
import { Nullable, Timestamp, Uuid } from '../../http/schemas.js'

const Count = Type.Integer({ minimum: 0 })
const Usd = Type.Number({ description: 'USD' })
const Minutes = Type.Number({ description: 'minutes, 2 decimals' })
const Percent = Type.Number({ description: 'percent, 2 decimals' })
const Hours = (fallback: number) => Type.Integer({ minimum: 1, maximum: 720, default: fallback, description: 'the current hour and this many whole hours before it' })
const GroupBy = Type.Union([Type.Literal('user'), Type.Literal('api_key')], { default: 'user' })

export const TtlQuery = Type.Object({
  user_id: Type.Optional(Uuid),
  api_key_id: Type.Optional(Uuid),
  group_by: Type.Optional(GroupBy),
  hours: Hours(168)
}, { additionalProperties: false })
export const OwnTtlQuery = Type.Object({ api_key_id: Type.Optional(Uuid), group_by: Type.Optional(GroupBy), hours: Hours(168) }, { additionalProperties: false })

const Distribution = Type.Object({ within_5min: Type.Number(), within_15min: Type.Number(), within_30min: Type.Number(), within_60min: Type.Number(), over_60min: Type.Number() })
const Options = <T extends Type.TSchema>(value: T) => Type.Object({ none: value, ttl_5m: value, ttl_1h: value })

const CostModel = Type.Object({
  model: Nullable(Type.String({ description: 'the group\'s most requested model in the window, whose price is used' })),
  priced: Type.Boolean({ description: 'false: the model has no price, Anthropic\'s ratios are used and no USD figures given' }),
  ratios: Type.Object({ cache_write_5m: Type.Number(), cache_write_1h: Type.Number(), cache_read: Type.Number() }, { description: 'to the input price' }),
  relative_cost: Options(Type.Number({ description: 'expected cost of the cached prefix per request, 1 = sent uncached' })),
  usd_per_1m_prefix_tokens: Nullable(Options(Type.Number({ description: 'USD per 1M prefix tokens per request' }))),
  cheapest: Type.Union([Type.Literal('none'), Type.Literal('5m'), Type.Literal('1h')]),
  saving_vs_none_pct: Percent
})

const Group = Type.Object({
  group_id: Uuid,
  group_type: Type.Union([Type.Literal('user'), Type.Literal('api_key')]),
  api_key_name: Type.Optional(Nullable(Type.String())),
  username: Nullable(Type.String()),
  email: Nullable(Type.String()),
  request_count: Type.Integer({ description: 'completed requests in the window' }),
  interval_distribution: Distribution,
  interval_percentages: Distribution,
  percentiles: Type.Object({ p50: Minutes, p75: Minutes, p90: Minutes }, { description: 'nearest rank, within 2%' }),
  avg_interval_minutes: Minutes,
  min_interval_minutes: Minutes,
  max_interval_minutes: Minutes,
  recommended_ttl_minutes: Type.Integer(),
  recommendation_reason: Type.String(),
  cost_model: CostModel
})

export const TtlAnalysis = Type.Object({
  analysis_period_hours: Type.Integer(),
  total_users_analyzed: Count,
  ttl_distribution: Type.Object({ '5min': Count, '15min': Count, '30min': Count, '60min': Count }),
  users: Type.Array(Group)
})

export const HitQuery = Type.Object({ user_id: Type.Optional(Uuid), api_key_id: Type.Optional(Uuid), hours: Hours(168) }, { additionalProperties: false })
export const OwnHitQuery = Type.Object({ api_key_id: Type.Optional(Uuid), hours: Hours(168) }, { additionalProperties: false })

export const HitAnalysis = Type.Object({
  analysis_period_hours: Type.Integer(),
  total_requests: Count,
  requests_with_cache_hit: Count,
  request_cache_hit_rate: Percent,
  total_input_tokens: Count,
  total_cache_read_tokens: Count,
  total_cache_creation_tokens: Count,
  cache_creation_5m_tokens: Count,
  cache_creation_1h_tokens: Count,
  token_cache_hit_rate: Type.Number({ description: 'cache reads as a percent of all prompt tokens (input + cache writes + cache reads)' }),
  total_cache_read_cost_usd: Usd,
  total_cache_creation_cost_usd: Usd,
  estimated_savings_usd: Type.Number({ description: 'reads × (input − read price) − writes × (write price − input price), each request at its own prices' }),
  savings_breakdown: Type.Object({ read_savings_usd: Usd, write_5m_premium_usd: Usd, write_1h_premium_usd: Usd }),
  wasted_write_tokens: Count,
  wasted_write_5m_tokens: Count,
  wasted_write_1h_tokens: Count,
  wasted_write_cost_usd: Usd
})

export const TimelineQuery = Type.Object({
  hours: Hours(24),
  limit: Type.Integer({ minimum: 100, maximum: 50_000, default: 10_000 }),
  user_id: Type.Optional(Uuid),
  include_user_info: Type.Boolean({ default: false })
}, { additionalProperties: false })
export const OwnTimelineQuery = Type.Object({
  hours: Hours(24),
  limit: Type.Integer({ minimum: 100, maximum: 50_000, default: 10_000 }),
  include_user_info: Type.Boolean({ default: false })
}, { additionalProperties: false })

export const Timeline = Type.Object({
  analysis_period_hours: Type.Integer(),
  total_points: Type.Integer({ description: 'gaps of at most 120 minutes in the window; points holds them all or an even sample of `limit`' }),
  points: Type.Array(Type.Object({ x: Timestamp, y: Minutes, user_id: Uuid, model: Type.String() })),
  users: Type.Optional(Type.Record(Type.String(), Type.String())),
  models: Type.Optional(Type.Array(Type.String()))
})
