// Key holders reading their own usage (/api/key-stats), authenticated by the key
// itself — from the body (`api_key` or `apiKey`) or a bearer header, never by a key
// id — and only from the clients the key allows (its IP and User-Agent allow-lists,
// as verify checks them). Not audited row by row; rate-limited per client address
// before the key is even looked at, so guessing keys here is slow.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Errors } from '../../http/errors.js'
import { byAddress, refusal } from '../../http/rate-limit.js'
import { errorResponses } from '../../http/schemas.js'
import { route, type KeyPrincipal } from '../../http/pipeline.js'
import { VerifyRefusal } from '../gateway/schemas.js'
import { Refusals } from '../gateway/verify.js'
import { ipAllowed, ipMatcher, userAgentAllowed, userAgentMatcher } from '../keys/restrictions.js'
import { clientRestrictions } from './queries.js'
import { DailyUsage, DailyUsageBody, KeyBody, ModelStats, ModelStatsBody, UsageDetails, UserStats } from './schemas.js'
import { dailyUsage, usageDetails, userModelStats, userStats } from './stats.js'

export interface KeyStatsOptions {
  /** requests per client address per window (default 60) */
  limit?: number
  /** default one minute */
  windowMs?: number
}

const tags = ['key holders']

/** The key in the body (api_key first), if any. Runs before validation, so the body may be anything. */
function bodyKey (request: FastifyRequest): string | undefined {
  const body = request.body as Record<string, unknown> | null | undefined
  if (body === null || typeof body !== 'object') return undefined
  const key = body.api_key ?? body.apiKey
  return typeof key === 'string' ? key : undefined
}

const routes: FastifyPluginAsyncTypebox<KeyStatsOptions> = async (app, opts) => {
  // one limit for every route of this plugin (a route's own config.rateLimit would count each route apart)
  app.addHook('onRequest', app.rateLimit({
    max: opts.limit ?? 60, timeWindow: opts.windowMs ?? 60_000, keyGenerator: byAddress,
    errorResponseBuilder: refusal((message) => new Errors.TooManyRequests(message), 'too many requests from this address')
  }))
  // a bearer-only POST may come without a body: treat it as {} rather than a 400
  app.addHook('preValidation', async (request) => { if (request.method === 'POST' && request.body === undefined) request.body = {} })
  // after the pipeline authenticated the key: its holder reads from an allowed client only (the address as trustProxy gives it)
  app.addHook('preHandler', async (request) => {
    // every route here is key mode, authenticated in preValidation
    const { apiKeyId } = request.pipelineCall!.principal as KeyPrincipal
    // an access decision: read on the primary, never a lagging replica
    const key = await clientRestrictions(app.pools.stats, apiKeyId)
    if (!ipAllowed(ipMatcher(key.allowed_ips), request.ip)) throw new Refusals.ip_not_allowed(`client IP ${request.ip} is not allowed for this key`)
    if (!userAgentAllowed(userAgentMatcher(key.allowed_user_agents), request.headers['user-agent'])) throw new Refusals.client_not_allowed('this client (User-Agent) is not allowed for this key')
  })
  const timeZone = app.config.APP_TIMEZONE
  const counterSettings = { timeZone, pendingTimeoutMinutes: app.config.PENDING_TIMEOUT_MINUTES }

  route(app, {
    method: 'POST',
    url: '/user-stats',
    schema: { tags, summary: 'Your key: status, all-time usage, limits with their current use, restrictions', description: 'For the key\'s holder, without an account: send the key as api_key (or apiKey) in the body or as a bearer token. Every key-stats route answers only a client the key\'s allowed_ips and allowed_user_agents allow (403 ip_not_allowed or client_not_allowed). Rate-limited per client address before the key is looked at (429 with Retry-After).', body: KeyBody, response: { 200: UserStats, ...errorResponses(), 403: VerifyRefusal } },
    action: 'key_stats.user_stats',
    mode: 'key',
    credential: bodyKey,
    handle: async ({ principal }) => userStats(app.statsPg, principal.apiKeyId, counterSettings)
  })

  route(app, {
    method: 'POST',
    url: '/user-model-stats',
    schema: { tags, summary: 'Your usage per model today (daily) or this month (monthly), in APP_TIMEZONE', description: 'period is daily (today) or monthly (this month), in APP_TIMEZONE. The key goes in the body (api_key) or as a bearer token; rate-limited per client address.', body: ModelStatsBody, response: { 200: ModelStats, ...errorResponses(), 403: VerifyRefusal } },
    action: 'key_stats.user_model_stats',
    mode: 'key',
    credential: bodyKey,
    handle: async ({ principal, body }) => userModelStats(app.statsPg, principal.apiKeyId, timeZone, body.period)
  })

  route(app, {
    method: 'POST',
    url: '/daily-usage',
    schema: { tags, summary: 'Your usage per local day over the last 30 days (or `days`), and per model over the same days', description: 'One point per local day of APP_TIMEZONE, today so far included, days without requests as zeros; the models sorted by cost. The key goes in the body (api_key) or as a bearer token; rate-limited per client address. The key holder\'s page (/) draws its chart from this.', body: DailyUsageBody, response: { 200: DailyUsage, ...errorResponses(), 403: VerifyRefusal } },
    action: 'key_stats.daily_usage',
    mode: 'key',
    credential: bodyKey,
    handle: async ({ principal, body, db }) => dailyUsage(db, app.statsPg, principal.apiKeyId, timeZone, body.days ?? 30)
  })

  route(app, {
    method: 'GET',
    url: '/usage-details',
    schema: { tags, summary: 'Your requests per model over the last 24 hours (key as bearer)', description: 'The key goes as a bearer token only (a GET has no body). Rate-limited per client address.', response: { 200: UsageDetails, ...errorResponses(), 403: VerifyRefusal } },
    action: 'key_stats.usage_details',
    mode: 'key',
    handle: async ({ principal }) => usageDetails(app.statsPg, principal.apiKeyId)
  })
}

export default routes
