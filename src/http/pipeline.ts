// The one door for admin, user, gateway and key-holder routes. A route declares its
// method, URL, schema, action and mode once (`route(app, {...})`); the pipeline then runs
// as Fastify's lifecycle: onRequest starts the call, preValidation authenticates and
// authorises for the route's mode (so a stranger learns nothing from 400s), the handler
// runs (a mutation in a transaction that also inserts its audit row, so no change is
// committed without one), and onError audits every failed call, 5xx included. Who a
// credential names and where rows are stored are given by app.ts: nothing here knows
// the domain.
import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, HTTPMethods, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Static, TSchema } from 'typebox'
import type { Db } from '../db/prisma.js'
import type { User } from '../generated/prisma/client.js'
import { Errors, errorReply } from './errors.js'

/**
 * admin: a session or management token of an admin · user: any signed-in user
 * (session or management token) · management: a session only, for managing
 * management tokens · gateway: GATEWAY_TOKEN · key: the caller's own API key.
 */
export type Mode = 'admin' | 'user' | 'management' | 'gateway' | 'key'
/** the modes whose caller is a signed-in user, and whose every call is audited (SPEC §4) */
export type UserMode = 'admin' | 'user' | 'management'

export type AuthUser = Pick<User, 'id' | 'role' | 'username' | 'email'>
export interface SessionPrincipal { kind: 'session', user: AuthUser, sessionId: string }
export interface ManagementPrincipal { kind: 'management', user: AuthUser, tokenId: string }
export interface GatewayPrincipal { kind: 'gateway' }
export interface KeyPrincipal { kind: 'key', apiKeyId: string, userId: string }
export type Principal = SessionPrincipal | ManagementPrincipal | GatewayPrincipal | KeyPrincipal

/** The principal a handler sees, once its route's mode has admitted the caller. */
export interface PrincipalOf {
  admin: SessionPrincipal | ManagementPrincipal
  user: SessionPrincipal | ManagementPrincipal
  management: SessionPrincipal
  gateway: GatewayPrincipal
  key: KeyPrincipal
}

/** The static type of one part of a route's schema (unknown when the route declares none). */
type Part<S, K extends string> = S extends { [P in K]: infer T } ? (T extends TSchema ? Static<T> : unknown) : unknown
/** What a handler answers: the schema's 200 or 201 response. */
type Answer<S> = S extends { response: infer R }
  ? { [C in keyof R]: C extends 200 | 201 ? (R[C] extends TSchema ? Static<R[C]> : never) : never }[keyof R]
  : unknown

export type Context<S, M extends Mode> = {
  request: FastifyRequest
  reply: FastifyReply
  body: Part<S, 'body'>
  query: Part<S, 'querystring'>
  params: Part<S, 'params'>
  principal: PrincipalOf[M]
  /** the transaction in mutations, the client otherwise */
  db: Db
  /** adds metadata to this call's audit row (and may rename its action) */
  audit: (metadata: Record<string, unknown>, rename?: string) => void
} & (M extends UserMode ? { /** the signed-in user */ user: AuthUser } : unknown)

/** A declared route as its lifecycle hooks and handler see it. */
export interface PipelineRoute {
  action: string
  mode: Mode
  /** run the handler and its audit row in one transaction */
  mutation: boolean
  /** success status */
  status: number
  /** where the key-mode credential is found when it is not a bearer header */
  credential?: (request: FastifyRequest) => string | undefined
  /** the route validates a querystring: its values go into the audit row */
  hasQuery: boolean
}

export interface RouteDeclaration<S extends FastifySchema, M extends Mode> {
  method: HTTPMethods
  url: string
  schema: S
  action: string
  mode: M
  mutation?: boolean
  /** success status, 200 unless said */
  status?: number
  credential?: (request: FastifyRequest) => string | undefined
  /** Fastify route config besides the pipeline's own (e.g. itemsCheckedByHandler) */
  config?: FastifyContextConfig
  bodyLimit?: number
  handle: (ctx: Context<S, M>) => Promise<Answer<S>>
}

/** One audit row as the pipeline records a call. */
export interface CallRecord {
  eventType: string
  action: string
  principalType: string
  userId: string | null
  managementTokenId: string | null
  ip: string
  userAgent: string | null
  requestId: string
  method: string
  path: string
  statusCode: number
  success: boolean
  durationMs: number | null
  metadata?: Record<string, unknown>
  errorMessage: string | null
}

export interface PipelineOptions {
  /** the caller's principal for the route's mode; throws a 401 when the credential is missing or names no one */
  authenticate: (request: FastifyRequest, mode: Mode, credential: string | undefined) => Promise<Principal>
  /** stores a row in the given client or transaction (mutations, refusals) */
  writeAudit: (db: Db, record: CallRecord) => Promise<void>
  /** stores a row written behind the answer (reads, failures), stamped with the answer's time */
  writeAuditBehind: (record: CallRecord, at: Date) => Promise<void>
  /** an audit row could not be written and was only logged: behind an answer, or a refusal's */
  onAuditFailure: (write: 'behind' | 'refusal') => void
  /** every mutation's transaction: how long it may wait for a connection and run (ms) */
  transaction: { maxWait: number, timeout: number }
}

export interface Pipeline {
  /** `listener` runs after every mutation's transaction has committed, before the reply (caches drop what it changed) */
  onCommit: (listener: (action: string) => void) => void
  /** resolves when every audit row written behind an answer so far is written (or its failure logged) */
  readAuditsWritten: () => Promise<void>
  /** a declared route's lifecycle hooks; `route` adds them to the route's options */
  hooks: (declared: PipelineRoute) => Pick<RouteOptions, 'onRequest' | 'preValidation' | 'onError'>
  /** runs a declared route's handler; called by the handler `route` registers */
  serve: <S extends FastifySchema, M extends Mode>(request: FastifyRequest, reply: FastifyReply, route: PipelineRoute, declared: RouteDeclaration<S, M>) => Promise<Answer<S>>
}

/** One call's state, from onRequest to its audit row. */
interface Call {
  started: number
  action: string
  metadata: Record<string, unknown>
  /** set once preValidation starts authenticating: a failure before it is a call refused before anyone was identified */
  authenticating: boolean
  principal?: Principal
  /** the validated querystring, once the handler runs */
  query?: unknown
  audited: boolean
}

declare module 'fastify' {
  interface FastifyInstance { pipeline: Pipeline }
  interface FastifyRequest { pipelineCall: Call | null }
}

const AUDITED: ReadonlySet<Mode> = new Set<UserMode>(['admin', 'user', 'management'])

/** The API document's security schemes: each credential the modes take (modules/auth authenticator). */
export const SECURITY_SCHEMES = {
  bearer: { type: 'http', scheme: 'bearer', description: 'a signed-in user\'s access token (from POST /api/auth/login) or a management token (kmm_…)' },
  session: { type: 'apiKey', in: 'cookie', name: 'km_session', description: 'the signed session cookie POST /api/auth/login sets' },
  gateway: { type: 'http', scheme: 'bearer', description: 'GATEWAY_TOKEN, the gateway\'s own token' },
  apiKey: { type: 'http', scheme: 'bearer', description: 'an API key (sk-…), for its holder\'s own figures' }
} as const

type Requirement = Array<Partial<Record<keyof typeof SECURITY_SCHEMES, []>>>
/** What each mode accepts, as OpenAPI security requirements (any one of them). */
const MODE_SECURITY: Record<Mode, Requirement> = {
  admin: [{ bearer: [] }, { session: [] }],
  user: [{ bearer: [] }, { session: [] }],
  // a session only, by its access token or its cookie: a management token is refused
  management: [{ bearer: [] }, { session: [] }],
  gateway: [{ gateway: [] }],
  key: [{ apiKey: [] }]
}

/** Who may call a mode's routes, said in every operation's description. */
const MODE_CALLER: Record<Mode, string> = {
  admin: 'an admin, signed in (bearer access token or session cookie) or by management token',
  user: 'any signed-in user (bearer access token or session cookie) or management token',
  management: 'a signed-in user\'s session (bearer access token or session cookie); management tokens are refused',
  gateway: 'the gateway, by GATEWAY_TOKEN',
  key: 'the key\'s holder, by the API key as bearer token'
}

/** A route's operationId: its action in camelCase (api_keys.list is apiKeysList), unless its schema names one. */
export const operationIdOf = (action: string) => action.replace(/[^A-Za-z0-9]+([A-Za-z0-9]?)/g, (_match, letter: string) => letter.toUpperCase())

/** The documentation a declared route gets from its declaration: operationId, security, and who may call it. */
function documented (schema: FastifySchema & { description?: string, operationId?: string, security?: unknown }, declared: Pick<RouteDeclaration<FastifySchema, Mode>, 'action' | 'mode' | 'mutation'>) {
  const audit = AUDITED.has(declared.mode) ? ` Audited as \`${declared.action}\`${declared.mutation === true ? ', in the same transaction as the change' : ''}.` : ''
  return {
    ...schema,
    operationId: schema.operationId ?? operationIdOf(declared.action),
    security: schema.security ?? MODE_SECURITY[declared.mode],
    description: `${schema.description ?? ''}\n\nCaller: ${MODE_CALLER[declared.mode]}.${audit}`.trim()
  }
}

/**
 * Declares a pipeline route: method, URL, schema, action and mode in one place. The
 * pipeline's hooks are the route's own (closures over its declaration), so a call pays
 * for no lookup of its route and routes outside the pipeline pay for nothing.
 */
export function route<S extends FastifySchema, M extends Mode> (app: FastifyInstance, declared: RouteDeclaration<S, M>): void {
  if (!app.hasDecorator('pipeline')) throw new Error(`${declared.method} ${declared.url}: register the pipeline plugin before its routes`)
  const pipeline: PipelineRoute = {
    action: declared.action,
    mode: declared.mode,
    mutation: declared.mutation === true,
    status: declared.status ?? 200,
    credential: declared.credential,
    hasQuery: declared.schema.querystring !== undefined
  }
  const hooks = app.pipeline.hooks(pipeline)
  const options: RouteOptions = {
    method: declared.method,
    url: declared.url,
    schema: documented(declared.schema, declared),
    ...(declared.bodyLimit !== undefined && { bodyLimit: declared.bodyLimit }),
    ...(declared.config !== undefined && { config: declared.config }),
    ...hooks,
    handler: async (request, reply) => app.pipeline.serve(request, reply, pipeline, declared)
  }
  app.route(options)
}

function authorize (principal: Principal, mode: Mode): void {
  if (mode === 'admin' && (!('user' in principal) || principal.user.role !== 'admin')) throw new Errors.Forbidden('admin role required')
  if (mode === 'management' && principal.kind !== 'session') throw new Errors.Forbidden('management tokens cannot manage management tokens; sign in')
}

export default fp<PipelineOptions>(async (app, opts) => {
  const commitListeners: Array<(action: string) => void> = []
  const pendingBehind = new Set<Promise<void>>()

  /**
   * A row written while the answer goes out, not before: for a read the insert was a
   * third sequential round trip (about a third of a detail view's time). Closing the app
   * waits for every row still being written; a failed insert is logged, the answer
   * having already been given.
   */
  function writeBehind (record: CallRecord, failure = 'a read call\'s audit row was not written'): void {
    const write: Promise<void> = opts.writeAuditBehind(record, new Date())
      .catch((error: unknown) => { app.log.error({ err: error, action: record.action }, failure); opts.onAuditFailure('behind') })
      .finally(() => { pendingBehind.delete(write) })
    pendingBehind.add(write)
  }
  const readAuditsWritten = async () => { await Promise.all([...pendingBehind]) }
  // registered after the database plugin, so this runs before its pools are ended
  app.addHook('onClose', readAuditsWritten)

  function record (request: FastifyRequest, declared: PipelineRoute, call: Call, status: number, error?: string): CallRecord {
    const { principal } = call
    const metadata = { ...(call.query !== undefined && { query: call.query }), ...call.metadata }
    // refused before anyone was identified (unparsable or unstorable input): not yet a call of the route's action
    const identified = call.authenticating
    return {
      eventType: !identified ? 'http' : declared.mode === 'admin' ? 'admin' : 'user',
      action: identified ? call.action : 'http.rejected',
      principalType: principal === undefined ? 'anonymous' : principal.kind === 'session' ? principal.user.role : principal.kind,
      userId: principal !== undefined && 'user' in principal ? principal.user.id : null,
      managementTokenId: principal?.kind === 'management' ? principal.tokenId : null,
      ip: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
      requestId: request.id,
      method: request.method,
      path: request.url.split('?')[0] ?? request.url,
      statusCode: status,
      success: status < 400,
      durationMs: identified ? Math.round(performance.now() - call.started) : null,
      metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
      errorMessage: error ?? null
    }
  }

  app.decorateRequest('pipelineCall', null)

  const hooks = (declared: PipelineRoute): Pick<RouteOptions, 'onRequest' | 'preValidation' | 'onError'> => ({
    onRequest: async (request) => {
      request.pipelineCall = { started: performance.now(), action: declared.action, metadata: {}, authenticating: false, audited: false }
    },
    // route hooks run after app.ts's global preValidation (nothing unstorable gets this far) and before the schema's validation
    preValidation: async (request) => {
      const call = request.pipelineCall
      if (call === null) return
      call.authenticating = true
      call.principal = await opts.authenticate(request, declared.mode, declared.credential?.(request))
      authorize(call.principal, declared.mode) // after `principal` is set, so a refusal's audit row names who was refused
    },
    onError: async (request, _reply, error) => {
      const call = request.pipelineCall
      if (call === null || call.audited || !AUDITED.has(declared.mode)) return
      call.audited = true
      const refusal = errorReply(error)
      const row = record(request, declared, call, refusal.status, refusal.message)
      // outside any (rolled-back) transaction; a 5xx's row goes behind the answer, which it must not delay
      if (refusal.status >= 500) writeBehind(row, 'a failed call\'s audit row was not written')
      else await opts.writeAudit(app.prisma, row).catch((auditError: unknown) => { request.log.error({ err: auditError }, 'audit write failed'); opts.onAuditFailure('refusal') })
    }
  })

  async function serve<S extends FastifySchema, M extends Mode> (request: FastifyRequest, reply: FastifyReply, route: PipelineRoute, declared: RouteDeclaration<S, M>): Promise<Answer<S>> {
    const call = request.pipelineCall
    if (call === null || call.principal === undefined) throw new Error(`${request.method} ${request.url}: a pipeline route reached its handler unauthenticated`)
    if (route.hasQuery) call.query = request.query
    const principal = call.principal
    const ctx = (db: Db) => ({
      request,
      reply,
      body: request.body,
      query: request.query,
      params: request.params,
      principal,
      ...('user' in principal && { user: principal.user }),
      db,
      audit: (more: Record<string, unknown>, rename?: string) => { Object.assign(call.metadata, more); if (rename !== undefined) call.action = rename }
    }) as unknown as Context<S, M> // the mode admitted this principal (authorize) and the schema validated these parts
    const audited = AUDITED.has(route.mode)
    let result: Answer<S>
    if (route.mutation) {
      result = await app.prisma.$transaction(async (tx) => {
        const value = await declared.handle(ctx(tx))
        if (audited) await opts.writeAudit(tx, record(request, route, call, route.status))
        return value
      }, opts.transaction)
      call.audited = audited
      for (const listener of commitListeners) listener(call.action)
    } else {
      result = await declared.handle(ctx(app.prisma))
      if (audited) writeBehind(record(request, route, call, route.status))
      call.audited = audited
    }
    reply.code(route.status)
    return result
  }

  app.decorate('pipeline', { onCommit: (listener) => { commitListeners.push(listener) }, readAuditsWritten, hooks, serve })
}, { name: 'pipeline', dependencies: ['prisma'] })
