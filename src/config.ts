// The environment, described once. `Config` is derived from the schema; invalid
// values stop the boot with a message naming the variable.
import Type, { type Static } from 'typebox'
import Value from 'typebox/value'
import { Cron } from 'croner'
import { isIP } from 'node:net'
import { isTimeZone } from './lib/time.js'

/** Each of GATEWAY_TOKEN's comma-separated tokens is at least this long. */
export const GATEWAY_TOKEN_MIN_LENGTH = 16

const Bool = (defaultValue: boolean, description: string) => Type.Boolean({ default: defaultValue, description })

export const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'PostgreSQL connection string; unset = embedded PostgreSQL under DATA_DIR' })),
  DATABASE_READ_URL: Type.Optional(Type.String({ description: 'Comma-separated PostgreSQL URLs of read replicas that serve the statistics and analytics reads; unset = the primary serves them' })),
  DATABASE_READ_MAX_LAG_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 10_000, description: 'A read replica whose replay lag is above this is skipped (its reads go to another replica or the primary)' }),
  DATABASE_READ_CHECK_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 2000, description: 'How often each read replica\'s lag is read, and a skipped or unreachable one tried again' }),
  DATA_DIR: Type.String({ default: '.data', description: 'Where the embedded database and generated secrets live' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'HTTP port' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Listen address (0.0.0.0 in containers)' }),
  LOG_FORMAT: Type.Union(['auto', 'json', 'pretty'].map((f) => Type.Literal(f)), { default: 'auto', description: 'Log lines as JSON, or readable (pretty); auto = pretty when stdout is a terminal, JSON otherwise' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'When set, GET /metrics requires it as a bearer token (>= 16 chars)' })),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino log level' }),
  ADMIN_EMAIL: Type.String({ format: 'email', default: 'admin@keymeter.local', description: 'Email of the first admin, created at boot when no admin exists' }),
  ADMIN_USERNAME: Type.String({ minLength: 1, maxLength: 64, default: 'admin', description: 'Username of the first admin' }),
  ADMIN_PASSWORD: Type.Optional(Type.String({ minLength: 8, description: 'Password of the first admin; unset = generated and printed once' })),
  SESSION_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'Signs session cookies (>= 32 chars)' })),
  ENCRYPTION_KEY: Type.Optional(Type.String({ minLength: 32, description: 'Derives key hashing and AES-256-GCM keys (>= 32 chars); never change it on a live database' })),
  GATEWAY_TOKEN: Type.Optional(Type.String({ description: `Comma-separated bearer tokens accepted from the gateway, each >= ${GATEWAY_TOKEN_MIN_LENGTH} chars` })),
  APP_TIMEZONE: Type.String({ default: 'UTC', description: 'IANA time zone for day boundaries and the cleanup schedule' }),
  MIGRATE_ON_START: Bool(true, 'Apply pending migrations before serving'),
  SESSION_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 90, default: 24, description: 'Lifetime of a login session / access token' }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 2 * 1024 * 1024, description: 'Largest accepted request body' }),
  TRUST_PROXY: Type.String({ default: 'false', description: 'Proxies whose X-Forwarded-For is believed: "false", a comma-separated list of addresses/CIDRs, or a hop count' }),
  CLEANUP_CRON: Type.String({ default: '0 3 * * *', description: 'In-process expiry cleanup schedule (cron, in APP_TIMEZONE); "off" disables it' }),
  PENDING_TIMEOUT_MINUTES: Type.Integer({ minimum: 1, maximum: 24 * 60, default: 10, description: 'A pending or streaming request older than this is marked failed (504)' }),
  USAGE_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36500, default: 0, description: 'Usage rows (and their candidates and bodies) older than this are removed by the cleanup, whole months at a time where a month is past; the rollups, totals and balances keep what they counted. 0 keeps them forever' }),
  USAGE_BODY_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36500, default: 30, description: 'Stored request/response headers and bodies older than this are deleted by the cleanup; 0 keeps them forever' }),
  AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36500, default: 365, description: 'Audit rows older than this are deleted by the cleanup; 0 keeps them forever' }),
  STATS_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5000, description: 'A usage statistics query running longer than this is cancelled by PostgreSQL and answered 503 query_timeout' }),
  VERIFY_CACHE_TTL_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000, description: 'Gateway verify reuses a key\'s state read from the database for at most this long; changes made through this process apply at once, changes made elsewhere within this time; 0 disables the cache' }),
  ADMISSION_HOLD_TTL_SECONDS: Type.Integer({ minimum: 5, maximum: 7 * 24 * 3600, default: 600, description: 'A hold taken by a verify with a request_id and never settled by its completion is released after this long' }),
  ADMISSION_HOLD_SWEEP_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 30, description: 'How often each instance releases expired holds (each once, whichever instance sweeps first)' }),
  ADMISSION_HOLD_VACUUM_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 2, description: 'How often each instance checks admission_holds for dead rows (settled holds) and vacuums it past 1,000; 0 leaves it to autovacuum' }),
  ADMISSION_DEFAULT_HOLD_USD: Type.Number({ minimum: 0, maximum: 1_000_000, default: 0.1, description: 'The hold of a verify with a request_id whose model has no price, or that gives no estimated_input_tokens and max_output_tokens' }),
  DB_POOL_ADMIN: Type.Integer({ minimum: 1, maximum: 100, default: 6, description: 'Connections of the admin/user API pool (Prisma: admin and user calls, sign-in, audit, cleanup)' }),
  DB_POOL_VERIFY: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'Connections of the gateway verify pool (also the session lookups of every authenticated call)' }),
  DB_POOL_INGEST: Type.Integer({ minimum: 1, maximum: 100, default: 8, description: 'Connections of the usage ingestion pool (one per batch being recorded)' }),
  DB_POOL_STATS: Type.Integer({ minimum: 1, maximum: 100, default: 4, description: 'Connections of the usage statistics pool' }),
  DB_POOL_WAIT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 5000, description: 'Longest wait for a pooled connection (or for Prisma to start a transaction); past it the call is answered 503 database_busy with Retry-After' }),
  DB_POOL_IDLE_MS: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 600_000, description: 'A pooled connection idle this long is closed (0: never); a new one plans its statements again before its first answer' }),
  DB_TRANSACTION_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 15_000, description: 'Longest interactive transaction of the API, and lock wait or idle transaction of any session; past it the transaction is rolled back and the call answered 503' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'On SIGTERM/SIGINT, in-flight requests get this long to finish; then the process exits anyway' }),
  ALERT_DELIVERY_INTERVAL_MS: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000, description: 'How often each instance sends the due alert deliveries to their webhooks (docs/alerts.md); 0 = this instance sends none' }),
  ALERT_DELIVERY_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 100, default: 8, description: 'Attempts of one alert delivery before it is left failed (an admin may replay it)' }),
  ALERT_DELIVERY_BACKOFF_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 30_000, description: 'Delay before a failed alert delivery\'s first retry; each next one doubles (at most 6 hours)' }),
  ALERT_WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 10_000, description: 'Longest wait for a webhook endpoint\'s answer' }),
  AUTO_DELETE_EXPIRED_KEYS: Bool(false, 'Expired keys whose auto_delete_on_expiry is null are deleted (true) or disabled (false)')
})

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Reads the environment (or any record of strings) into a checked Config. */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const name of Object.keys(ConfigSchema.properties)) {
    const value = env[name]
    if (value !== undefined && value !== '') raw[name] = value
  }
  const value = Value.Convert(ConfigSchema, Value.Default(ConfigSchema, raw)) as Record<string, unknown>
  // Convert truncates "80.5" to 80 and reads "0x50" or "1e3": an integer must be plain digits, else it stays invalid
  for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
    const given = env[name]
    if ((schema as { type?: unknown }).type === 'integer' && given !== undefined && given !== '' && !/^\s*\d+\s*$/.test(given)) value[name] = given
  }
  const failing = new Set([...Value.Errors(ConfigSchema, value)].map((e) => e.instancePath.slice(1)))
  const problems = [...failing].map((name) => `${name}: ${expectation(name)}${SECRET_VARIABLES.has(name) ? '' : `; got '${env[name] ?? ''}'`}`)
  const config = value as Config
  if (!isTimeZone(config.APP_TIMEZONE)) problems.push(`APP_TIMEZONE: unknown IANA time zone "${config.APP_TIMEZONE}"`)
  if (config.CLEANUP_CRON !== 'off' && !isCron(config.CLEANUP_CRON)) problems.push(`CLEANUP_CRON: not a cron expression (or "off"): "${config.CLEANUP_CRON}"`)
  if (config.GATEWAY_TOKEN !== undefined) problems.push(...gatewayTokenProblems(config.GATEWAY_TOKEN))
  if (config.DATABASE_READ_URL !== undefined) problems.push(...readUrlProblems(config.DATABASE_READ_URL))
  const trust = parseTrustProxy(config.TRUST_PROXY)
  if (typeof trust === 'object' && !Array.isArray(trust)) problems.push(`TRUST_PROXY: ${trust.problem}`)
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  return config
}

// their values never reach a message: the boot log is not a place for credentials
const SECRET_VARIABLES = new Set(['DATABASE_URL', 'DATABASE_READ_URL', 'ADMIN_PASSWORD', 'SESSION_SECRET', 'ENCRYPTION_KEY', 'GATEWAY_TOKEN', 'METRICS_TOKEN'])

interface SchemaFacts { type?: string, anyOf?: Array<{ const?: unknown }>, minimum?: number, maximum?: number, minLength?: number, maxLength?: number, pattern?: string, format?: string }

/** What a variable accepts, in words, read from its schema: the allowed values, the range, the form. */
function expectation (name: string): string {
  const schema = (ConfigSchema.properties as Record<string, SchemaFacts>)[name] ?? {}
  if (schema.anyOf !== undefined) return `must be one of ${schema.anyOf.map((option) => String(option.const)).join(', ')}`
  if (schema.type === 'boolean') return 'must be true or false'
  if (schema.type === 'integer') return `must be a whole number from ${schema.minimum ?? 0} to ${schema.maximum ?? Number.MAX_SAFE_INTEGER}`
  if (schema.format === 'email') return 'must be an email address'
  if (schema.pattern !== undefined) return `must match ${schema.pattern}`
  const min = schema.minLength ?? 0
  const max = schema.maxLength
  if (max !== undefined) return `must have ${min} to ${max} characters`
  return `must have at least ${min} characters`
}

/** GATEWAY_TOKEN's tokens, trimmed, empty entries dropped. */
export function gatewayTokens (value: string | undefined): string[] {
  return (value ?? '').split(',').map((token) => token.trim()).filter((token) => token !== '')
}

// names the token by its position, never by its value: the message reaches the boot log
function gatewayTokenProblems (value: string): string[] {
  const tokens = gatewayTokens(value)
  if (tokens.length === 0) return ['GATEWAY_TOKEN: no token given (unset it to refuse every gateway call)']
  return tokens.flatMap((token, i) => token.length >= GATEWAY_TOKEN_MIN_LENGTH
    ? []
    : [`GATEWAY_TOKEN: token ${i + 1} of ${tokens.length} is ${token.length} characters; each comma-separated token must have at least ${GATEWAY_TOKEN_MIN_LENGTH}`])
}

/** DATABASE_READ_URL's URLs, trimmed, empty entries dropped. */
export function readUrls (value: string | undefined): string[] {
  return (value ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '')
}

// names a URL by its position, never by its value: it may hold a password
function readUrlProblems (value: string): string[] {
  const urls = readUrls(value)
  if (urls.length === 0) return ['DATABASE_READ_URL: no URL given (unset it to read from the primary)']
  return urls.flatMap((url, i) => /^postgres(ql)?:\/\/./.test(url) && URL.canParse(url)
    ? []
    : [`DATABASE_READ_URL: URL ${i + 1} of ${urls.length} is not a postgres:// or postgresql:// URL; give comma-separated URLs such as postgres://user:password@replica:5432/keymeter`])
}

/** Fastify's `trustProxy`: false, or the proxies' addresses and CIDRs (and proxy-addr's names loopback, linklocal, uniquelocal). */
export type TrustProxy = false | string[]

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])
const LIST_THE_PROXIES = 'list the proxies\' addresses or CIDRs instead (e.g. 10.0.0.2,10.1.0.0/16)'

/**
 * TRUST_PROXY read: `false` (or `0`), or a comma-separated list of proxies. `true` and hop
 * counts are refused: `true` would believe any client's X-Forwarded-For, and a hop count
 * cannot tell a proxy from a client (Fastify 5 ignores X-Forwarded-For under one).
 */
export function parseTrustProxy (value: string): TrustProxy | { problem: string } {
  const text = value.trim()
  if (/^(false|0)$/i.test(text)) return false
  if (/^true$/i.test(text)) return { problem: `"true" would trust every hop, so any client could choose its own address with X-Forwarded-For; ${LIST_THE_PROXIES}` }
  if (/^\d+$/.test(text)) return { problem: `a hop count cannot tell a proxy from a client; ${LIST_THE_PROXIES}` }
  const entries = text.split(',').map((entry) => entry.trim())
  const bad = entries.filter((entry) => !isProxyAddress(entry))
  if (bad.length > 0) return { problem: `not an IP address or CIDR: ${bad.map((entry) => JSON.stringify(entry)).join(', ')}` }
  return entries
}

function isProxyAddress (entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address = '', prefix, extra] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || extra !== undefined) return false
  if (prefix === undefined) return true
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128)
}

function isCron (expression: string): boolean {
  try {
    new Cron(expression, { paused: true }).stop()
    return true
  } catch {
    return false
  }
}

/** The secrets the app cannot run without, once resolved by the process. */
export type AppConfig = Config & { SESSION_SECRET: string, ENCRYPTION_KEY: string, DATABASE_URL: string }

export function requireSecrets (config: Config): AppConfig {
  const missing = (['DATABASE_URL', 'SESSION_SECRET', 'ENCRYPTION_KEY'] as const).filter((name) => config[name] === undefined)
  if (missing.length > 0) throw new ConfigError(`invalid configuration: ${missing.map((m) => `${m}: required`).join('; ')}`)
  return config as AppConfig
}
