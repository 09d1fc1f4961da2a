// pino settings: one line per request with its id, and no secret ever written —
// redacted by path for headers, by field name anywhere in a logged object, and by
// shape (sk-…, kmm_…, kms_…) inside any logged string.
import type { FastifyServerOptions } from 'fastify'
import type { LoggerOptions } from 'pino'

const SECRET_FIELD = /(pass(word)?|secrets?|tokens?|keys?|authorization|cookies?|hash)$/i
const SECRET_VALUE = /\b(sk-[A-Za-z0-9]{8,}|km[ms]_[A-Za-z0-9]{8,})/g
const CENSOR = '[redacted]'

export function scrubString (value: string): string {
  return value.replace(SECRET_VALUE, (match) => `${match.slice(0, 4)}${CENSOR}`)
}

/** Deep copy of `value` with secret-named fields censored and secret-shaped strings masked. */
export function scrub (value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubString(value)
  if (value === null || typeof value !== 'object' || depth > 8) return value
  if (value instanceof Error) return { type: value.name, message: scrubString(value.message), stack: value.stack === undefined ? undefined : scrubString(value.stack) }
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1))
  // requests, replies and other class instances are left to their serializers
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return value
  const out: Record<string, unknown> = {}
  for (const [name, item] of Object.entries(value)) {
    // under a secret's name, anything that can carry one (strings, arrays, objects) is censored whole
    out[name] = SECRET_FIELD.test(name) && item !== null && typeof item !== 'boolean' && typeof item !== 'number' ? CENSOR : scrub(item, depth + 1)
  }
  return out
}

export function loggerOptions (level: string, stream?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  const options: LoggerOptions & { stream?: NodeJS.WritableStream } = {
    level,
    redact: {
      paths: [
        ...['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'api-key', 'x-goog-api-key'].map((name) => `req.headers["${name}"]`),
        'res.headers["set-cookie"]'
      ],
      censor: CENSOR
    },
    serializers: {
      req: (req: { method: string, url: string, ip?: string, id?: string }) => ({ method: req.method, url: scrubString(req.url), ip: req.ip }),
      err: (err: Error) => scrub(err) as Record<string, unknown>
    },
    formatters: { log: (object) => scrub(object) as Record<string, unknown> },
    hooks: {
      logMethod (args, method) {
        method.apply(this, args.map((arg) => typeof arg === 'string' ? scrubString(arg) : arg) as Parameters<typeof method>)
      }
    }
  }
  if (stream !== undefined) options.stream = stream
  return options as FastifyServerOptions['logger']
}
