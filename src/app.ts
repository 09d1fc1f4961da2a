// The application as a plugin tree: external plugins, our decorators, routes, then
// one error handler and one not-found handler. The process (src/server.ts) and every
// test build it through buildApp() with the same serverOptions().
import { randomUUID } from 'node:crypto'
import cookie from '@fastify/cookie'
import helmet from '@fastify/helmet'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify'
import { ConfigError, gatewayTokens, parseTrustProxy, readUrls, type AppConfig, type TrustProxy } from './config.js'
import { ensurePartitions } from './db/partitions.js'
import prismaPlugin from './db/prisma.js'
import { Errors, errorReply, sendError } from './http/errors.js'
import { byAddress, CLIENTS_TRACKED, RateLimitStores, refusal, registerRateLimit, type Clock } from './http/rate-limit.js'
import { createLogger, logRequests } from './http/logging.js'
import type { Logger } from 'pino'
import metricsPlugin from './http/metrics.js'
import { finishDocument } from './http/openapi.js'
import pipelinePlugin, { operationIdOf, SECURITY_SCHEMES } from './http/pipeline.js'
import { findUnstorable, validatorCompiler } from './http/validation.js'
import { createKeyring, type Keyring } from './lib/keyring.js'
import { TimeZones } from './lib/time.js'
import alertRoutes from './modules/alerts/routes.js'
import { countBacklog } from './modules/alerts/delivery.js'
import auditRoutes from './modules/audit/routes.js'
import { writeAudit, writeReadAudit } from './modules/audit/service.js'
import authRoutes from './modules/auth/routes.js'
import budgetRoutes from './modules/budgets/routes.js'
import { authenticator, LoginThrottle } from './modules/auth/service.js'
import cacheRoutes from './modules/cache/routes.js'
import dashboardRoutes from './modules/dashboard/routes.js'
import { countLiveHolds } from './modules/gateway/holds.js'
import gatewayRoutes from './modules/gateway/routes.js'
import healthRoutes from './modules/health/routes.js'
import keyRoutes from './modules/keys/routes.js'
import keyStatsRoutes from './modules/keystats/routes.js'
import priceRoutes from './modules/prices/routes.js'
import providerRoutes from './modules/providers/routes.js'
import apiFormatRoutes from './modules/providers/formats.js'
import statsRoutes from './modules/stats/routes.js'
import usageExportRoutes from './modules/analytics/export.js'
import tagRoutes from './modules/analytics/tags.js'
import analyticsRoutes, { costRoutes } from './modules/analytics/routes.js'
import tokenRoutes from './modules/tokens/routes.js'
import usageRoutes from './modules/usage/routes.js'
import userRoutes from './modules/users/routes.js'
import keyHolderPage from './web/routes.js'

export type App = FastifyInstance & { withTypeProvider: FastifyInstance['withTypeProvider'] }

export interface RouteInfo { method: string, url: string, schema: RouteOptions['schema'] }

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
    keyring: Keyring
    loginThrottle: LoginThrottle
    /** every rate limit's counts (@fastify/rate-limit's store) */
    rateLimitStores: RateLimitStores
    /** the time zones PostgreSQL and Intl both accept, read at boot */
    timeZones: TimeZones
    /** every route registered, for the OpenAPI and route-table tests */
    routeTable: RouteInfo[]
  }
  interface FastifyContextConfig {
    /** the body's list (by name) whose items the handler checks one by one, refusing each bad one alone */
    itemsCheckedByHandler?: string
  }
}

const DOCS_PREFIX = '/docs'
const API_CSP = { defaultSrc: ["'none'"], frameAncestors: ["'none'"] }
const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value)

export interface ServerExtras {
  /** the process's logger (server.ts), so the app's lines and the boot's are one stream */
  logger?: Logger
  /** every line as JSON here instead (tests) */
  logStream?: NodeJS.WritableStream
  /** the rate limits' clock (tests move time instead of sleeping) */
  clock?: Clock
  /** clients each rate limit remembers (default CLIENTS_TRACKED) */
  clientsTracked?: number
}

/** Fastify's two lines a request off (logRequests writes one, at its answer); its error lines kept. */
class OneLinePerRequest extends LogController {
  override incomingRequest (): void {}
  override requestCompleted (): void {}
}

export function serverOptions (config: AppConfig, extras: ServerExtras = {}): FastifyServerOptions {
  return {
    loggerInstance: extras.logger ?? createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, ...(extras.logStream !== undefined && { stream: extras.logStream }) }),
    bodyLimit: config.BODY_LIMIT_BYTES,
    trustProxy: parseTrustProxy(config.TRUST_PROXY) as TrustProxy,
    // genReqId reads x-request-id itself: with requestIdHeader set, Fastify would take any header value unchecked
    requestIdHeader: false,
    // accept a caller's id only when it is short and plain, else make one
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID()
    },
    logController: new OneLinePerRequest({ requestIdLogLabel: 'request_id' }),
    return503OnClosing: true,
    connectionTimeout: 60_000,
    // a start against a busy database waits for its first answer (avvio's 10 s failed starts under load)
    pluginTimeout: 60_000,
    requestTimeout: 120_000,
    // model names (up to 200 characters) travel as path parameters
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    // the router's own refusals (bad percent-encoding, over-long parameters) get the error body too
    frameworkErrors: (error, request, reply) => {
      const refusal = errorReply(error)
      reply.header('x-request-id', request.id)
      void sendError(reply, request.id, { ...refusal, status: refusal.status >= 500 ? 400 : refusal.status, type: refusal.status >= 500 ? 'invalid_request' : refusal.type, message: refusal.status >= 500 ? 'malformed request' : refusal.message })
    }
  }
}

export async function buildApp (config: AppConfig, extras: ServerExtras = {}) {
  const app = Fastify(serverOptions(config, extras)).withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(validatorCompiler())
  // Aether's bodyless PATCHes (toggles, the quota reset) may still say application/json: an empty body is no body, not a 400
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body.length === 0) done(null, undefined)
    else parseJson(request, body as string, done) // parseAs: 'string'
  })

  logRequests(app)
  app.decorate('config', config)
  app.decorate('keyring', createKeyring(config.ENCRYPTION_KEY))
  const rateLimitStores = new RateLimitStores(extras.clientsTracked ?? CLIENTS_TRACKED, extras.clock ?? Date.now)
  app.decorate('rateLimitStores', rateLimitStores)
  app.decorate('loginThrottle', new LoginThrottle(rateLimitStores.group(LoginThrottle.GROUP)))
  app.decorate('routeTable', [] as RouteInfo[])
  app.addHook('onRoute', (route) => {
    // the Swagger UI page loads its own scripts and styles, sets inline styles and data: icons: helmet's default CSP allows just that
    if (route.url === DOCS_PREFIX || route.url.startsWith(`${DOCS_PREFIX}/`)) route.helmet = { contentSecurityPolicy: { useDefaults: true } }
    // the gateway's calls come from a server, never a browser: browser-protection headers would only cost the hot path
    if (route.url.startsWith('/api/gateway/')) route.helmet = false
    if (route.schema?.hide !== true) {
      // routes outside the pipeline (sign-in, health, metrics) answer anyone unless they say otherwise; the pipeline's routes carry their own
      if (route.schema !== undefined) route.schema = { operationId: operationIdOf(`${route.method}${route.url.replace(/^\/api/, '').replaceAll('/', '.')}`.toLowerCase()), security: [], ...route.schema }
      for (const method of [route.method].flat()) if (method !== 'HEAD') app.routeTable.push({ method, url: route.url, schema: route.schema })
    }
  })
  app.addHook('onSend', async (request, reply) => { reply.header('x-request-id', request.id) })
  // runs before validation (and before the pipeline's authentication): nothing the database cannot store reaches a handler
  app.addHook('preValidation', async (request) => {
    const perItem = request.routeOptions.config.itemsCheckedByHandler
    const body = perItem !== undefined && isRecord(request.body) && Array.isArray(request.body[perItem]) ? { ...request.body, [perItem]: [] } : request.body
    for (const [part, value] of [['body', body], ['query', request.query], ['params', request.params], ['headers', { 'user-agent': request.headers['user-agent'] }]] as const) {
      const found = findUnstorable(value, part)
      if (found !== null) throw Object.assign(new Errors.InvalidInput(`${found.path} ${found.reason}`), { field: found.path })
    }
  })

  // before any route (/metrics, the docs' own included): a route keeps the error handler set when it was registered
  app.setErrorHandler(async (error, request, reply) => {
    const refusal = errorReply(error)
    if (refusal.status >= 500) request.log.error({ err: error }, 'request failed')
    return sendError(reply, request.id, refusal)
  })

  // security headers on every answer; the API's answers are JSON, which loads nothing, so its CSP allows nothing
  await app.register(helmet, { contentSecurityPolicy: { useDefaults: false, directives: API_CSP } })
  await registerRateLimit(app, rateLimitStores)
  await app.register(cookie, { secret: config.SESSION_SECRET })
  await app.register(swagger, {
    openapi: {
      // 3.1: its schema dialect is JSON Schema 2020-12, TypeBox's own, so the route schemas are documented as validated (3.0 refuses numeric exclusiveMinimum, type null, formatMinimum)
      openapi: '3.1.0',
      info: { title: 'keymeter', version: '0.1.0', description: 'Admin and accounting backend of an LLM API gateway' },
      servers: [{ url: '/', description: 'this instance' }],
      components: { securitySchemes: SECURITY_SCHEMES }
    },
    transformObject: (document) => finishDocument(('openapiObject' in document ? document.openapiObject : document) as Record<string, unknown>)
  })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
  await app.register(prismaPlugin, {
    databaseUrl: config.DATABASE_URL,
    statsStatementTimeoutMs: config.STATS_STATEMENT_TIMEOUT_MS,
    pools: { admin: config.DB_POOL_ADMIN, verify: config.DB_POOL_VERIFY, ingest: config.DB_POOL_INGEST, stats: config.DB_POOL_STATS },
    poolWaitMs: config.DB_POOL_WAIT_MS,
    poolIdleMs: config.DB_POOL_IDLE_MS,
    transactionTimeoutMs: config.DB_TRANSACTION_TIMEOUT_MS,
    readUrls: readUrls(config.DATABASE_READ_URL),
    readMaxLagMs: config.DATABASE_READ_MAX_LAG_MS,
    readCheckMs: config.DATABASE_READ_CHECK_MS
  })
  await app.register(metricsPlugin, {
    pools: app.pools,
    reads: app.statsPg,
    // the primary's counts: a replica's may be behind
    liveHolds: () => countLiveHolds(app.pools.stats),
    alertBacklog: () => countBacklog(app.pools.stats),
    // a call may wait for a connection, then run a statement or a transaction to its limit
    longestRequestMs: config.DB_POOL_WAIT_MS + Math.max(config.STATS_STATEMENT_TIMEOUT_MS, config.DB_TRANSACTION_TIMEOUT_MS),
    ...(config.METRICS_TOKEN !== undefined && { token: config.METRICS_TOKEN })
  })
  // Intl accepts zones PostgreSQL does not (SST, US/Pacific-New): with one of those every verify would fail in SQL
  const timeZones = await TimeZones.load(app.pg)
  if (timeZones.find(config.APP_TIMEZONE) === undefined) {
    await app.close()
    throw new ConfigError(`invalid configuration: APP_TIMEZONE: "${config.APP_TIMEZONE}" is not a time zone name PostgreSQL knows (see pg_timezone_names), e.g. Europe/Paris`)
  }
  app.decorate('timeZones', timeZones)
  // the pipeline knows no domain: who a credential names, and where audit rows go, are given here
  await app.register(pipelinePlugin, {
    authenticate: authenticator({ prisma: app.prisma, pg: app.pg, keyring: app.keyring, gatewayTokens: gatewayTokens(config.GATEWAY_TOKEN) }),
    writeAudit,
    // a write: on the primary's statistics pool (asynchronous commit), never a replica
    writeAuditBehind: async (record, at) => { await writeReadAudit(app.pools.stats, record, at) },
    onAuditFailure: (write) => { app.metrics.auditWriteFailures.inc({ write }) },
    transaction: { maxWait: config.DB_POOL_WAIT_MS, timeout: config.DB_TRANSACTION_TIMEOUT_MS }
  })

  // unknown paths: 404, and 429 for an address that keeps probing
  const probes = app.rateLimit({
    max: 120, timeWindow: 60_000, keyGenerator: byAddress,
    errorResponseBuilder: refusal((message) => new Errors.TooManyRequests(message), 'too many requests for unknown paths')
  })
  app.setNotFoundHandler({ preHandler: probes }, async (request, reply) =>
    sendError(reply, request.id, errorReply(new Errors.NotFound(`no route ${request.method} ${request.url.split('?')[0]}`))))

  await app.register(healthRoutes)
  await app.register(authRoutes, { prefix: '/api/auth' })
  await app.register(userRoutes, { prefix: '/api' })
  await app.register(tokenRoutes, { prefix: '/api' })
  await app.register(keyRoutes, { prefix: '/api' })
  await app.register(budgetRoutes, { prefix: '/api' })
  await app.register(providerRoutes, { prefix: '/api' })
  await app.register(apiFormatRoutes, { prefix: '/api' })
  await app.register(priceRoutes, { prefix: '/api' })
  await app.register(gatewayRoutes, { prefix: '/api' })
  await app.register(usageRoutes, { prefix: '/api' })
  await app.register(statsRoutes, { prefix: '/api' })
  await app.register(usageExportRoutes, { prefix: '/api' })
  await app.register(tagRoutes, { prefix: '/api' })
  await app.register(analyticsRoutes, { prefix: '/api' })
  await app.register(costRoutes, { prefix: '/api' })
  await app.register(cacheRoutes, { prefix: '/api' })
  await app.register(dashboardRoutes, { prefix: '/api' })
  await app.register(keyStatsRoutes, { prefix: '/api/key-stats' })
  await app.register(auditRoutes, { prefix: '/api/admin' })
  await app.register(alertRoutes, { prefix: '/api' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  // the key holder's page at /, with a CSP of its own (src/web/routes.ts)
  await app.register(keyHolderPage)

  // the current month's partitions and the next ones before the first request; a failure is not fatal, the default partition holds the rows
  app.addHook('onReady', async () => {
    try {
      const created = await ensurePartitions(app.pg)
      if (created.length > 0) app.log.info(`partitions created: ${created.join(', ')}`)
    } catch (error) {
      app.log.error({ err: error }, 'partitions ahead not created: their months\' rows go to the default partition until a cleanup run creates them')
    }
  })

  return app
}

export type KeymeterApp = Awaited<ReturnType<typeof buildApp>>
