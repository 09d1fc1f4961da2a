// Analytics: Aether's paths and field names (AETHER.md §1: other query parameters are
// ignored, not refused), keymeter's fields beside them; money in USD.
import Type from 'typebox'
import { Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { GRANULARITIES } from './buckets.js'
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

const granularity = Type.Optional(Type.Union(GRANULARITIES.map((g) => Type.Literal(g)), {
  default: 'day',
  description: 'day, week (ISO, from Monday) and month in the zone; hour: the UTC hours (whole local hours in a zone on whole-hour offsets), at most 31 days'
}))

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
