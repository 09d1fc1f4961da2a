// Analytics: Aether's paths and field names (AETHER.md §1: other query parameters are
// ignored, not refused), keymeter's fields beside them; money in USD.
import Type from 'typebox'
import { MAX_OFFSET, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { RangeQueryFields } from './range.js'

const Usd = Type.Number({ description: 'USD' })
const Count = Type.Integer({ minimum: 0 })
const Ms = Nullable(Type.Number({ minimum: 0, description: 'milliseconds, 1 decimal; null without a sample' }))

const SeriesFilters = {
  api_key_id: Type.Optional(Uuid),
  model: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'exact model name' })),
  provider_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'a provider\'s id or exact name' })),
  api_format: Type.Optional(Type.String({ maxLength: 100, description: 'exact API format; empty: requests without one' }))
}

const granularity = Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('week'), Type.Literal('month')], {
  default: 'day',
  description: 'day, week (ISO, from Monday) and month in the zone; hour: the UTC hours (whole local hours in a zone on whole-hour offsets), at most 31 days'
})

export const OwnTimeSeriesQuery = Type.Object({ ...RangeQueryFields, granularity, ...SeriesFilters })
export const TimeSeriesQuery = Type.Object({ ...RangeQueryFields, granularity, user_id: Type.Optional(Uuid), ...SeriesFilters })

export const TimeSeries = Type.Array(Type.Object({
  date: Type.String({ format: 'date', description: 'the local date of the bucket\'s start' }),
  total_requests: Count,
  input_tokens: Count,
  output_tokens: Count,
  cache_creation_tokens: Count,
  cache_read_tokens: Count,
  total_cost: Usd,
  avg_response_time_ms: Ms,
  start: Timestamp,
  end: Timestamp,
  local_start: Type.String({ description: 'the bucket\'s start on the zone\'s wall clock, YYYY-MM-DDTHH:mm' }),
  error_count: Count,
  cache_creation_5m_tokens: Count,
  cache_creation_1h_tokens: Count,
  total_tokens: Count,
  total_actual_cost: Usd,
  avg_first_byte_time_ms: Ms
}), { description: 'one point per bucket, oldest first, zero-filled; finished requests by created_at' })

const compareTo = {
  compare_to: Type.Optional(Type.Union([Type.Literal('previous_period'), Type.Literal('year_ago')], { description: 'previous_period (default): as long, just before; year_ago: the same local times a year earlier' })),
  comparison_type: Type.Optional(Type.Union([Type.Literal('period'), Type.Literal('year')], { description: 'Aether\'s name for compare_to; compare_to wins' }))
}
export const ComparisonQuery = Type.Object({ ...RangeQueryFields, ...compareTo, user_id: Type.Optional(Uuid), ...SeriesFilters })
export const OwnComparisonQuery = Type.Object({ ...RangeQueryFields, ...compareTo, ...SeriesFilters })

const PeriodTotals = Type.Object({
  total_requests: Count,
  error_count: Count,
  total_tokens: Count,
  input_tokens: Count,
  output_tokens: Count,
  total_cost: Usd,
  total_actual_cost: Usd,
  avg_response_time_ms: Ms
})
const Change = Nullable(Type.Number({ description: 'percent, 2 decimals; null where the compared value is zero or absent' }))

export const Comparison = Type.Object({
  current: PeriodTotals,
  comparison: PeriodTotals,
  change_percent: Type.Object({
    total_requests: Change, error_count: Change, total_tokens: Change, input_tokens: Change, output_tokens: Change, total_cost: Change, total_actual_cost: Change, avg_response_time_ms: Change
  }),
  current_start: Timestamp,
  current_end: Timestamp,
  comparison_start: Timestamp,
  comparison_end: Timestamp,
  comparison_type: Type.Union([Type.Literal('period'), Type.Literal('year')]),
  compare_to: Type.Union([Type.Literal('previous_period'), Type.Literal('year_ago')])
}, { description: 'finished requests of the range and of the compared period; periods are [start, end)' })

const boardFields = {
  ...RangeQueryFields,
  metric: Type.Union([Type.Literal('requests'), Type.Literal('tokens'), Type.Literal('cost')], { default: 'requests', description: 'what ranks: requests, total tokens or cost (USD)' }),
  order: Type.Union([Type.Literal('desc'), Type.Literal('asc')], { default: 'desc' }),
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  offset: Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 })
}
export const BoardQuery = Type.Object(boardFields)
export const KeyBoardQuery = Type.Object({ ...boardFields, user_id: Type.Optional(Uuid) })
export const ModelBoardQuery = Type.Object({ ...boardFields, provider_id: SeriesFilters.provider_id })

export const Leaderboard = Type.Object({
  items: Type.Array(Type.Object({
    rank: Type.Integer({ minimum: 1, description: 'dense rank by the metric' }),
    id: Type.String({ description: 'the user\'s, key\'s or provider\'s id; the model\'s name' }),
    name: Type.String(),
    value: Type.Number({ description: 'the metric (cost in USD)' }),
    requests: Count,
    tokens: Count,
    cost: Usd,
    actual_cost: Usd,
    share_percent: Nullable(Type.Number({ description: 'of the metric\'s total over every entry, 2 decimals; null when that total is zero' }))
  })),
  total: Count,
  metric: Type.String(),
  order: Type.String(),
  limit: Type.Integer(),
  offset: Type.Integer(),
  start_date: Timestamp,
  end_date: Timestamp
}, { description: 'finished requests in [start_date, end_date); ties keep the same rank, ordered by id' })

// ── cost/savings (issue 19) ──
export const SavingsQuery = Type.Object(RangeQueryFields)

const savingsFigures = {
  cache_read_tokens: Count,
  cache_read_cost: Usd,
  cache_creation_cost: Usd,
  estimated_full_cost: Type.Number({ description: 'USD: the cache reads at the input price, what they would have cost uncached' }),
  cache_savings: Type.Number({ description: 'USD, gross (Aether\'s): the reads\' saving against the input price' }),
  cache_creation_tokens: Count,
  cache_write_premium: Type.Number({ description: 'USD: what the cache writes cost above the input price' }),
  net_savings: Type.Number({ description: 'USD, keymeter\'s: cache_savings − cache_write_premium (negative when the writes cost more than the reads saved)' }),
  wasted_write_tokens: Count,
  wasted_write_5m_tokens: Count,
  wasted_write_1h_tokens: Count,
  wasted_write_cost: Type.Number({
    description: 'USD: writes that expired unread (the key\'s next request came after their TTL, or none came and the TTL has passed), counted in the hour written; ' +
      'in a group, those of requests of its model or provider'
  })
}

export const CostSavings = Type.Object({
  ...savingsFigures,
  by_model: Type.Array(Type.Object({ model: Type.String(), ...savingsFigures }), { description: 'models with cache reads or writes, or wasted writes, largest gross saving first' }),
  by_provider: Type.Array(Type.Object({
    provider_id: Nullable(Uuid),
    provider_name: Nullable(Type.String()),
    ...savingsFigures
  }), { description: 'providers with cache reads or writes, or wasted writes, largest gross saving first; provider_id null: requests without a provider or whose provider was deleted' }),
  start_date: Timestamp,
  end_date: Timestamp
}, { description: 'finished requests created in [start_date, end_date); wasted writes by the hour written, every hour the range touches' })

// ── cost/forecast (issue 19) ──
export const ForecastQuery = Type.Object({
  days: Type.Integer({ minimum: 1, maximum: 90, default: 14, description: 'days to forecast, today first' }),
  history_days: Type.Integer({ minimum: 1, maximum: 366, default: 56, description: 'whole local days before today the method fits (from the first with traffic)' }),
  timezone: RangeQueryFields.timezone,
  tz_offset_minutes: RangeQueryFields.tz_offset_minutes
})

const Bound = Nullable(Type.Number({ description: 'USD; null without an interval (fewer than 14 days of history)' }))

export const CostForecast = Type.Object({
  history: Type.Array(Type.Object({ date: Type.String({ format: 'date' }), total_cost: Usd, total_requests: Count }), { description: 'each local day of the history, oldest first' }),
  forecast: Type.Array(Type.Object({
    date: Type.String({ format: 'date' }),
    total_cost: Type.Number({ minimum: 0, description: 'USD: the fitted mean, at least 0' }),
    lower_80: Bound,
    upper_80: Bound,
    lower_95: Bound,
    upper_95: Bound
  }), { description: 'today and the following days; prediction intervals at 80 % and 95 %, cut at 0' }),
  slope: Type.Number({ description: 'USD per day: the fitted trend' }),
  intercept: Type.Number({ description: 'USD: the fitted level on fit_start_date (week-average with weekday effects)' }),
  start_date: Type.String({ format: 'date', description: 'the history\'s first day' }),
  end_date: Type.String({ format: 'date', description: 'the forecast\'s last day' }),
  method: Type.Union([Type.Literal('linear_trend_weekday_ols'), Type.Literal('linear_trend'), Type.Literal('flat')], {
    description: 'linear_trend_weekday_ols: least squares on a trend and day-of-week effects, t intervals from the residuals (14 days of history or more); linear_trend: a line, no interval (2 to 13 days); flat: fewer days, no interval'
  }),
  history_days_used: Count,
  fit_start_date: Nullable(Type.String({ format: 'date', description: 'the first history day with traffic, where the fit starts' })),
  weekday_effects: Nullable(Type.Object({
    monday: Type.Number(), tuesday: Type.Number(), wednesday: Type.Number(), thursday: Type.Number(), friday: Type.Number(), saturday: Type.Number(), sunday: Type.Number()
  }, { description: 'USD added to the trend on each weekday (they sum to zero)' })),
  residual_sd: Nullable(Type.Number({ description: 'USD: the residuals\' standard deviation' })),
  timezone: Type.String({ description: 'the zone whose local days these are' })
}, { description: 'daily cost (list prices) of finished requests by local day, and its forecast' })

// ---- Latency percentiles (analytics/percentiles.ts) ----

export const PercentilesQuery = Type.Object({
  ...RangeQueryFields,
  granularity,
  provider_id: SeriesFilters.provider_id,
  model: SeriesFilters.model,
  group_by: Type.Union([Type.Literal('none'), Type.Literal('provider'), Type.Literal('model')], {
    default: 'none',
    description: 'none: one point per bucket; provider or model: one point per bucket and group (requests without a provider, or of a deleted one, under null)'
  })
})

const Percentile = Nullable(Type.Number({ minimum: 0, description: 'milliseconds, 0.1 ms; within max_relative_error_percent of the exact percentile_disc; null below 10 samples' }))

export const Percentiles = Type.Array(Type.Object({
  date: Type.String({ format: 'date', description: 'the local date of the bucket\'s start' }),
  p50_response_time_ms: Percentile,
  p90_response_time_ms: Percentile,
  p99_response_time_ms: Percentile,
  p50_first_byte_time_ms: Percentile,
  p90_first_byte_time_ms: Percentile,
  p99_first_byte_time_ms: Percentile,
  start: Timestamp,
  end: Timestamp,
  local_start: Type.String({ description: 'the bucket\'s start on the zone\'s wall clock, YYYY-MM-DDTHH:mm' }),
  response_time_samples: Count,
  first_byte_time_samples: Count,
  max_relative_error_percent: Type.Number({ description: 'the histograms\' stated bound on |reported − exact| / exact (latencies under an hour)' }),
  group_by: Type.Union([Type.Literal('none'), Type.Literal('provider'), Type.Literal('model')]),
  group_key: Nullable(Type.String({ description: 'the provider\'s id or the model; null ungrouped, or for requests without an existing provider' })),
  group_name: Nullable(Type.String({ description: 'the provider\'s name or the model' }))
}), { description: 'one point per bucket (and group), oldest first, zero-filled; finished requests by created_at' })

// ---- Errors distribution (analytics/errors.ts) ----

export const ErrorsQuery = Type.Object({
  ...RangeQueryFields,
  granularity,
  group_by: Type.Union([Type.Literal('status_class'), Type.Literal('status_code'), Type.Literal('provider')], {
    default: 'status_class',
    description: 'the category: status_class (4xx, 5xx, other; none without a status), status_code (the HTTP status; none), or provider (its name; none without one or for a deleted one)'
  })
})

export const ErrorDistribution = Type.Object({
  distribution: Type.Array(Type.Object({ category: Type.String(), count: Count }), { description: 'every category with failed requests in the range, most first (then by name)' }),
  trend: Type.Array(Type.Object({
    date: Type.String({ format: 'date', description: 'the local date of the bucket\'s start' }),
    total: Count,
    categories: Type.Record(Type.String(), Count, { description: 'category → failed requests; categories without any left out' }),
    start: Timestamp,
    end: Timestamp,
    local_start: Type.String({ description: 'the bucket\'s start on the zone\'s wall clock, YYYY-MM-DDTHH:mm' })
  }), { description: 'one point per bucket, oldest first, zero-filled' }),
  total: Count,
  group_by: Type.String(),
  start_date: Timestamp,
  end_date: Timestamp
}, { description: 'failed requests (status failed) by created_at in [start_date, end_date)' })
