// The process's one logger (pino): JSON lines, or a readable form on a terminal; one line
// per request with its id, route, status and duration; and no secret ever written —
// redacted by path for headers, by field name anywhere in a logged object, and by
// shape (sk-…, kmm_…, kms_…) inside any logged string.
import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

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

function loggerOptions (level: string): LoggerOptions {
  return {
    level,
    redact: {
      paths: [
        ...['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'api-key', 'x-goog-api-key', 'x-forwarded-for', 'forwarded'].map((name) => `req.headers["${name}"]`),
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
}

export type LogFormat = 'auto' | 'json' | 'pretty'

/** LOG_FORMAT before the configuration is read (it may be what fails): an invalid value is auto. */
export const envLogFormat = (value = process.env.LOG_FORMAT): LogFormat => (['json', 'pretty'] as const).find((format) => format === value) ?? 'auto'

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const OWN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'err'])

/** A pino JSON line as a person reads it: time, level, message, then the other fields as name=value (an error's stack below). */
export function prettyLine (line: string): string {
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(line) as Record<string, unknown>
  } catch {
    return line
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : ''
  const fields = Object.entries(entry).filter(([name]) => !OWN_FIELDS.has(name)).map(([name, value]) => `${name}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
  const err = entry.err as { stack?: string, message?: string } | undefined
  const below = err === undefined ? '' : `\n    ${(err.stack ?? err.message ?? '').split('\n').join('\n    ')}`
  return `${[time, (LEVELS[entry.level as number] ?? String(entry.level)).padEnd(5), String(entry.msg ?? ''), ...fields].join(' ')}${below}\n`
}

/** Writes each pino line to `out` in the readable form. */
function prettyStream (out: NodeJS.WritableStream): DestinationStream {
  return new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') out.write(prettyLine(line))
      done()
    }
  })
}

export interface LoggerSettings {
  level: string
  format: LogFormat
  /** every line here, as JSON (tests); else warnings and below on stdout, errors on stderr */
  stream?: NodeJS.WritableStream
  /** whether stdout is a terminal (LOG_FORMAT=auto then means pretty) */
  terminal?: boolean
}

/**
 * The logger of the process, shared by the boot, the app and the stop: one format for all.
 * Errors go to stderr and the rest to stdout, so a clean run's stderr stays empty.
 */
export function createLogger (settings: LoggerSettings): Logger {
  const options = loggerOptions(settings.level)
  if (settings.stream !== undefined) return pino(options, settings.stream as DestinationStream)
  const pretty = settings.format === 'pretty' || (settings.format === 'auto' && (settings.terminal ?? process.stdout.isTTY))
  const to = (fd: 1 | 2) => pretty ? prettyStream(fd === 1 ? process.stdout : process.stderr) : pino.destination({ fd, sync: true })
  return pino(options, pino.multistream([{ level: 'trace', stream: to(1) }, { level: 'error', stream: to(2) }], { dedupe: true }))
}

/** One line per answered request, with what an operator filters on (the request id comes with request.log). */
export function logRequests (app: FastifyInstance): void {
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      path: scrubString(request.url.split('?', 1)[0]!),
      status: reply.statusCode,
      duration_ms: Math.round(reply.elapsedTime * 100) / 100,
      ip: request.ip
    }, 'request completed')
  })
}
