// The coded errors the API answers with (KM_*): plain error classes, so that code
// outside the HTTP layer (dates, time zones, services) can refuse input; http/errors.ts
// maps each to its status and error body.
import createError from '@fastify/error'

const coded = (code: string, status: number) => createError(code, '%s', status)

export const Errors = {
  InvalidInput: coded('KM_INVALID_INPUT', 400),
  Unauthorized: coded('KM_UNAUTHORIZED', 401),
  Forbidden: coded('KM_FORBIDDEN', 403),
  NotFound: coded('KM_NOT_FOUND', 404),
  Conflict: coded('KM_CONFLICT', 409),
  LimitReached: coded('KM_LIMIT_REACHED', 409),
  InsufficientBalance: coded('KM_INSUFFICIENT_BALANCE', 400),
  NotStandalone: coded('KM_NOT_STANDALONE', 400),
  TooManyRequests: coded('KM_TOO_MANY_REQUESTS', 429),
  LoginThrottled: coded('KM_LOGIN_THROTTLED', 429)
} as const
