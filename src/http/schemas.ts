// Schema pieces every module uses: ids, timestamps, paging, nullable fields and the
// error responses, so each route's OpenAPI entry lists every status it can answer.
import Type, { type TSchema } from 'typebox'
import { EARLIEST_INSTANT, INSTANT_LIMIT } from '../lib/time.js'
import { ErrorBody } from './errors.js'

export const Uuid = Type.String({ format: 'uuid' })
export const IdParams = Type.Object({ id: Uuid }, { additionalProperties: false })
export const Timestamp = Type.String({ format: 'date-time' })
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])

/**
 * Every date input: ISO 8601 with an explicit offset (Z or ±hh:mm), so a range never
 * depends on the server's zone, and an instant within the years 2000–2999 (UTC).
 */
export const IsoDateTime = Type.String({
  format: 'date-time',
  pattern: '(Z|[+-]\\d{2}:\\d{2})$',
  formatMinimum: EARLIEST_INSTANT,
  formatExclusiveMaximum: INSTANT_LIMIT,
  description: `ISO 8601 with offset, from ${EARLIEST_INSTANT} and before ${INSTANT_LIMIT}`
})

/** Deeper than this, offset paging is the wrong tool (and a bigger number is not an integer PostgreSQL takes). */
export const MAX_OFFSET = 1_000_000_000

export const SkipLimit = (max: number, fallback: number) => ({
  skip: Type.Integer({ minimum: 0, maximum: MAX_OFFSET, default: 0 }),
  limit: Type.Integer({ minimum: 1, maximum: max, default: fallback })
})

export const Message = Type.Object({ message: Type.String() })

/**
 * A page as a bare array (Aether's list pages read one) with the whole count in the
 * X-Total-Count header, which the API document then shows (@fastify/swagger lifts `headers`).
 */
export const CountedArray = <T extends TSchema>(item: T, order: string) => Type.Array(item, {
  description: `${order}; the total is in X-Total-Count`,
  headers: { 'X-Total-Count': { type: 'integer', minimum: 0, description: 'every row the filters match, whatever skip and limit' } }
})

/** Sets the header CountedArray documents. */
export const sendTotal = (reply: { header: (name: string, value: string) => unknown }, total: number) => { reply.header('x-total-count', String(total)) }

/** Error responses for a route: the ones every pipeline route can give, plus its own. */
export function errorResponses (...extra: number[]): Record<number, typeof ErrorBody> {
  const statuses = new Set([400, 401, 403, 429, ...extra])
  return Object.fromEntries([...statuses].map((status) => [status, ErrorBody]))
}
