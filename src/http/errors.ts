// The one mapping from any thrown value (the coded errors of lib/errors.ts included)
// to the status and the spec's error body: {"error": {"type", "message", field?}, "request_id",
// "detail"} (detail repeats the message: Aether's dashboard shows it).
import type { FastifyReply } from 'fastify'
import Type from 'typebox'
import { Errors } from '../lib/errors.js'
import { shared } from './openapi.js'

export { Errors }

/** PostgreSQL's query_canceled: a statement_timeout (or an operator's cancel) stopped the query */
const QUERY_CANCELED = '57014'

/** Seconds a client is told to wait when the database is away or saturated. */
export const DATABASE_RETRY_AFTER_SECONDS = 1

/**
 * Errors meaning the database is away (restart, failover, terminated connection): the
 * codes of PostgreSQL (admin/crash shutdown, starting up, class 08), Node's sockets and
 * Prisma (P1001 cannot reach, P1017 closed), then the messages of node-postgres and
 * Prisma that carry no code.
 */
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '57P05', '25P03', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'P1001', 'P1002', 'P1017'])
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout'])
const UNAVAILABLE_MESSAGE = /Connection terminated|not queryable|terminating connection|the database system is (starting up|shutting down|not yet accepting|in recovery)|Can't reach database server|Server has closed the connection|connect ECONNREFUSED/
/**
 * Errors meaning it is saturated or the statement lost a race it may win when asked again:
 * too many connections, lock_timeout, a serialization failure or deadlock (a standby's
 * recovery conflict among them), a pool or Prisma's transaction wait timed out.
 */
const BUSY_CODES = new Set(['53300', '55P03', '40001', '40P01', 'P2024', 'P2028', 'P2037'])
const BUSY_KINDS = new Set(['TooManyConnections'])
const BUSY_MESSAGE = /timeout exceeded when trying to connect|Unable to start a transaction in the given time|Transaction already closed|expired transaction/

/** 'unavailable', 'busy' or null, looking through the wrappers of Prisma and its adapter. */
export function databaseTrouble (thrown: unknown): 'unavailable' | 'busy' | null {
  const seen = new Set<unknown>()
  const queue: unknown[] = [thrown]
  while (queue.length > 0) {
    const error = queue.shift() as Record<string, unknown> | null | undefined
    if (error === null || typeof error !== 'object' || seen.has(error)) continue
    seen.add(error)
    const codes = [error.code, error.originalCode].filter((c): c is string => typeof c === 'string')
    const kind = typeof error.kind === 'string' ? error.kind : ''
    const message = typeof error.message === 'string' ? error.message : ''
    if (codes.some((c) => UNAVAILABLE_CODES.has(c) || c.startsWith('08')) || UNAVAILABLE_KINDS.has(kind) || UNAVAILABLE_MESSAGE.test(message)) return 'unavailable'
    if (codes.some((c) => BUSY_CODES.has(c)) || BUSY_KINDS.has(kind) || BUSY_MESSAGE.test(message)) return 'busy'
    const meta = error.meta as Record<string, unknown> | undefined
    queue.push(error.cause, meta?.driverAdapterError, ...(Array.isArray(error.errors) ? error.errors : []))
  }
  return null
}

/** The error types errorReply gives of its own, besides each coded error's (see codedTypes). */
const REPLY_TYPES = [
  'validation_error', 'invalid_request', 'conflict', 'not_found', 'body_too_large', 'unsupported_media_type',
  'unauthorized', 'forbidden', 'method_not_allowed', 'not_acceptable', 'too_many_requests', 'client_error',
  'database_unavailable', 'database_busy', 'query_timeout', 'internal_error'
] as const
type ReplyType = typeof REPLY_TYPES[number]

/** A coded error's type in the body: KM_NOT_FOUND answers not_found. */
const typeOfCode = (code: string) => code.slice(3).toLowerCase()

/** The types a set of coded errors (createError constructors, KM_*) answer with. */
export function codedTypes (errors: Record<string, new (message: string) => { code: string }>): string[] {
  return Object.values(errors).map((Coded) => typeOfCode(new Coded('').code))
}

/** Every type a pipeline route's error body can carry. */
export const ERROR_TYPES: readonly string[] = [...new Set([...REPLY_TYPES, ...codedTypes(Errors)])]

/** The error object, its `type` one of `types`, as the component `name` of the API document. */
export function errorBody (name: string, types: readonly string[], description = 'Error body') {
  return shared(name, Type.Object({
    error: Type.Object({
      type: Type.String({ enum: [...types], description: 'machine-readable code, e.g. not_found, validation_error' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'the failing input, for validation errors' }))
    }),
    request_id: Type.String(),
    detail: Type.String({ description: 'error.message again, where Aether\'s dashboard reads it' })
  }, { description }))
}

/** The error object every non-2xx response carries. */
export const ErrorBody = errorBody('ErrorBody', ERROR_TYPES)

export interface ErrorReply { status: number, type: string, message: string, field?: string, retryAfter?: number }

interface ErrorLike {
  code?: string
  statusCode?: number
  message?: string
  retryAfter?: number
  field?: string
  validation?: Array<{ instancePath?: string, message?: string, params?: Record<string, unknown> }>
  validationContext?: string
  meta?: Record<string, unknown>
}

/** One of REPLY_TYPES: the compiler refuses a type errorReply would give undocumented. */
const replyType = <T extends ReplyType>(type: T): T => type

/** Maps anything thrown to the status and body the client sees; a 5xx never says why. */
export function errorReply (thrown: unknown): ErrorReply {
  const error = (thrown ?? {}) as ErrorLike
  if (Array.isArray(error.validation)) return validationReply(error.validation, error.validationContext)
  const code = typeof error.code === 'string' ? error.code : ''
  if (code.startsWith('KM_') && error.statusCode !== undefined) {
    return {
      status: error.statusCode,
      type: typeOfCode(code),
      message: error.message ?? '',
      ...(error.field !== undefined && { field: error.field }),
      ...(error.retryAfter !== undefined && { retryAfter: error.retryAfter })
    }
  }
  const trouble = databaseTrouble(thrown)
  if (trouble === 'unavailable') {
    return { status: 503, type: replyType('database_unavailable'), message: 'the database is unavailable; retry shortly', retryAfter: DATABASE_RETRY_AFTER_SECONDS }
  }
  if (trouble === 'busy') {
    return { status: 503, type: replyType('database_busy'), message: 'the database is saturated; retry shortly', retryAfter: DATABASE_RETRY_AFTER_SECONDS }
  }
  if (code === QUERY_CANCELED) {
    return { status: 503, type: replyType('query_timeout'), message: 'the query ran past its time limit and was cancelled; narrow the date range or the filters' }
  }
  if (code === 'P2002') return { status: 409, type: replyType('conflict'), message: `already exists: ${uniqueTarget(error.meta)}` }
  if (code === 'P2025') return { status: 404, type: replyType('not_found'), message: 'not found' }
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 400, type: replyType('body_too_large'), message: 'request body is larger than the limit' }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 415, type: replyType('unsupported_media_type'), message: 'send application/json' }
  const status = typeof error.statusCode === 'number' ? error.statusCode : 500
  if (status >= 400 && status < 500) {
    return { status, type: status === 400 ? replyType('invalid_request') : statusType(status), message: error.message ?? 'bad request' }
  }
  return { status: status >= 500 ? status : 500, type: replyType('internal_error'), message: 'internal server error' }
}

function validationReply (issues: NonNullable<ErrorLike['validation']>, context = 'body'): ErrorReply {
  const first = issues[0] ?? {}
  const missing = typeof first.params?.missingProperty === 'string' ? `/${first.params.missingProperty}` : ''
  const extra = typeof first.params?.additionalProperty === 'string' ? `/${first.params.additionalProperty}` : ''
  const path = `${first.instancePath ?? ''}${missing}${extra}`
  const field = [context, ...path.split('/').filter(Boolean)].join('.')
  const message = extra !== '' ? 'unknown field' : (first.message ?? 'is invalid')
  return { status: 400, type: replyType('validation_error'), message: `${field} ${message}`, field }
}

function uniqueTarget (meta: Record<string, unknown> | undefined): string {
  const target = meta?.target ?? (meta?.driverAdapterError as { cause?: { constraint?: { fields?: unknown } } } | undefined)?.cause?.constraint?.fields
  return Array.isArray(target) ? target.join(', ') : typeof target === 'string' ? target : 'unique field'
}

function statusType (status: number): ReplyType {
  const types: Record<number, ReplyType> = { 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed', 406: 'not_acceptable', 409: 'conflict', 413: 'body_too_large', 415: 'unsupported_media_type', 429: 'too_many_requests' }
  return types[status] ?? 'client_error'
}

export function sendError (reply: FastifyReply, requestId: string, refusal: ErrorReply): FastifyReply {
  if (refusal.retryAfter !== undefined) reply.header('retry-after', String(refusal.retryAfter))
  const field = refusal.field === undefined ? {} : { field: refusal.field }
  return reply.code(refusal.status).send({ error: { type: refusal.type, message: refusal.message, ...field }, request_id: requestId, detail: refusal.message })
}
