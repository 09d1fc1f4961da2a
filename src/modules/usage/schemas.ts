// The usage events the gateway reports (start, stream, complete) and the per-event
// results: the usage module owns them; the gateway route only carries them.
import Type, { type Static } from 'typebox'
import { IsoDateTime, Nullable, Uuid } from '../../http/schemas.js'
import { findUnstorable } from '../../http/validation.js'

/** usage.total_tokens is an int4: a completion's counts must add up below it */
export const MAX_TOTAL_TOKENS = 2_147_483_647

const TokenCount = Type.Integer({ minimum: 0, maximum: 2_147_483_647 })
const Millis = Type.Integer({ minimum: 0, maximum: 86_400_000 })
const RequestId = Type.String({ minLength: 1, maxLength: 128 })
const Text = (max: number) => Type.String({ maxLength: max })
const Json = Type.Unknown()

const startFields = {
  api_key_id: Uuid,
  model: Type.String({ minLength: 1, maxLength: 200 }),
  api_format: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  is_stream: Type.Optional(Type.Boolean()),
  provider_id: Type.Optional(Nullable(Uuid)),
  provider_endpoint_id: Type.Optional(Nullable(Uuid)),
  provider_api_key_id: Type.Optional(Nullable(Uuid)),
  created_at: Type.Optional(IsoDateTime)
}

export const StartEvent = Type.Object({
  type: Type.Literal('start'),
  request_id: RequestId,
  ...startFields,
  target_model: Type.Optional(Text(200)),
  metadata: Type.Optional(Type.Object({}, { additionalProperties: true }))
}, { additionalProperties: false })

export const StreamEvent = Type.Object({
  type: Type.Literal('stream'),
  request_id: RequestId,
  first_byte_time_ms: Millis
}, { additionalProperties: false })

export const Candidate = Type.Object({
  candidate_index: Type.Integer({ minimum: 0, maximum: 1000 }),
  retry_index: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  provider_id: Type.Optional(Nullable(Uuid)),
  provider_endpoint_id: Type.Optional(Nullable(Uuid)),
  provider_api_key_id: Type.Optional(Nullable(Uuid)),
  status: Type.Union(['available', 'pending', 'streaming', 'success', 'failed', 'skipped'].map((s) => Type.Literal(s))),
  skip_reason: Type.Optional(Nullable(Text(500))),
  is_cached: Type.Optional(Type.Boolean()),
  status_code: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 999 }))),
  error_type: Type.Optional(Nullable(Text(200))),
  error_message: Type.Optional(Nullable(Text(4000))),
  latency_ms: Type.Optional(Nullable(Millis)),
  started_at: Type.Optional(Nullable(IsoDateTime)),
  finished_at: Type.Optional(Nullable(IsoDateTime))
}, { additionalProperties: false })

export const CompleteEvent = Type.Object({
  type: Type.Literal('complete'),
  request_id: RequestId,
  // a request reported only at its end carries its start fields too
  ...Object.fromEntries(Object.entries(startFields).map(([name, schema]) => [name, Type.Optional(schema)])) as { [K in keyof typeof startFields]: ReturnType<typeof Type.Optional<(typeof startFields)[K]>> },
  status: Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')]),
  status_code: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 999 }))),
  error_message: Type.Optional(Nullable(Text(4000))),
  input_tokens: TokenCount,
  output_tokens: TokenCount,
  cache_creation_input_tokens: Type.Optional(TokenCount),
  cache_creation_5m_input_tokens: Type.Optional(TokenCount),
  cache_creation_1h_input_tokens: Type.Optional(TokenCount),
  cache_read_input_tokens: Type.Optional(TokenCount),
  response_time_ms: Type.Optional(Nullable(Millis)),
  first_byte_time_ms: Type.Optional(Nullable(Millis)),
  target_model: Type.Optional(Nullable(Text(200))),
  finished_at: Type.Optional(IsoDateTime),
  candidates: Type.Optional(Type.Array(Candidate, { maxItems: 64 })),
  request_headers: Type.Optional(Type.Object({}, { additionalProperties: true })),
  response_headers: Type.Optional(Type.Object({}, { additionalProperties: true })),
  request_body: Type.Optional(Json),
  response_body: Type.Optional(Json),
  metadata: Type.Optional(Type.Object({}, { additionalProperties: true }))
}, { additionalProperties: false })

export const UsageEvent = Type.Union([StartEvent, StreamEvent, CompleteEvent])
export const UsageBatch = Type.Object({ events: Type.Array(UsageEvent, { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false })

/**
 * Why one schema-valid event cannot be recorded, or null: text the database cannot
 * store (NUL, lone surrogate: a request_id would be stored as U+FFFD and miss its own
 * receipt), nesting past the limit, token counts whose sum does not fit total_tokens.
 */
export function eventProblem (event: UsageEventBody, path: string): string | null {
  const found = findUnstorable(event, path)
  if (found !== null) return `${found.path} ${found.reason}`
  if (event.type !== 'complete') return null
  // the larger cache write figure: when the total and its parts differ ingestion refuses the event anyway
  const parts = (event.cache_creation_5m_input_tokens ?? 0) + (event.cache_creation_1h_input_tokens ?? 0)
  const sum = event.input_tokens + event.output_tokens + Math.max(event.cache_creation_input_tokens ?? 0, parts) + (event.cache_read_input_tokens ?? 0)
  if (sum > MAX_TOTAL_TOKENS) return `${path} token counts add up to ${sum}, past the ${MAX_TOTAL_TOKENS} a request may total`
  return null
}

export const EventResult = Type.Object({
  request_id: Type.String(),
  type: Type.String(),
  outcome: Type.Union([Type.Literal('recorded'), Type.Literal('duplicate'), Type.Literal('rejected')]),
  cost_usd: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String())
})
export const UsageBatchResult = Type.Object({ results: Type.Array(EventResult) })

export type StartEventBody = Static<typeof StartEvent>
export type StreamEventBody = Static<typeof StreamEvent>
export type CompleteEventBody = Static<typeof CompleteEvent>
export type UsageEventBody = Static<typeof UsageEvent>
export type EventResultBody = Static<typeof EventResult>
