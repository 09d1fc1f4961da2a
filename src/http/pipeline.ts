// The one door for /api/admin, /api/users/me, /api/gateway and key-holder endpoints:
// authenticate for the adapter's mode, authorise, check the (attached) validation
// result, run the handler, and write the audit row. A mutation runs in a transaction
// that also inserts its audit row, so no change is ever committed without one. A
// read's audit row is written behind its answer (see `auditRead`).
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Db } from '../db/prisma.js'
import type { Keyring } from '../lib/keyring.js'
import { writeAudit, writeReadAudit, type AuditEntry } from '../modules/audit/service.js'
import {
  bearerToken, cookieToken, gatewayDigests, gatewayPrincipal, keyPrincipal, managementPrincipal, sessionPrincipal,
  type AuthUser, type Principal
} from '../modules/auth/service.js'
import { Errors, errorReply } from './errors.js'

/**
 * admin: a session or management token of an admin · user: any signed-in user
 * (session or management token) · management: a session only, for managing
 * management tokens · gateway: GATEWAY_TOKEN · key: the caller's own API key.
 */
export type Mode = 'admin' | 'user' | 'management' | 'gateway' | 'key'

export interface Context<Req extends FastifyRequest> {
  request: Req
  body: Req['body']
  query: Req['query']
  params: Req['params']
  principal: Principal
  /** the signed-in user; only in admin, user and management modes */
  user: AuthUser
  /** the transaction in mutations, the client otherwise */
  db: Db
  /** adds metadata to this call's audit row (and may rename its action) */
  audit: (metadata: Record<string, unknown>, action?: string) => void
}

export interface Adapter<Req extends FastifyRequest, T> {
  action: string
  mode: Mode
  /** run the handler and its audit row in one transaction */
  mutation?: boolean
  /** success status, 200 unless said */
  status?: number
  /** where the key-mode credential is found when it is not a bearer header */
  credential?: (request: Req) => string | undefined
  handle: (ctx: Context<Req>) => Promise<T>
}

export interface Pipeline {
  run: <Req extends FastifyRequest, T>(request: Req, reply: FastifyReply, adapter: Adapter<Req, T>) => Promise<T>
  /** `listener` runs after every mutation's transaction has committed, before the reply (caches drop what it changed) */
  onCommit: (listener: (action: string) => void) => void
  /** resolves when every read's audit row started so far is written (or its failure logged) */
  readAuditsWritten: () => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance { pipeline: Pipeline }
}

const AUDITED: ReadonlySet<Mode> = new Set(['admin', 'user', 'management'])

export interface PipelineOptions { keyring: Keyring, gatewayTokens: string[] }

export default fp<PipelineOptions>(async (app, opts) => {
  const commitListeners: Array<(action: string) => void> = []
  const gatewayTokenDigests = gatewayDigests(opts.gatewayTokens)
  const pendingReadAudits = new Set<Promise<void>>()

  /**
   * A read's audit row is inserted while its answer goes out, not before: the insert
   * was a third sequential round trip (about a third of a detail view's time). It is
   * on the reads' pool, committed asynchronously (writeReadAudit), and closing the app
   * waits for every row still being written; a failed insert is logged, the answer
   * having already been given. Mutations and refusals are unchanged: their rows are
   * written before the reply.
   */
  function auditRead (entry: AuditEntry): void {
    const write: Promise<void> = writeReadAudit(app.statsPg, entry, new Date())
      .catch((error: unknown) => { app.log.error({ err: error, action: entry.action }, 'a read call\'s audit row was not written') })
      .finally(() => { pendingReadAudits.delete(write) })
    pendingReadAudits.add(write)
  }
  const readAuditsWritten = async () => { await Promise.all([...pendingReadAudits]) }
  // registered after the database plugin, so this runs before its pools are ended
  app.addHook('onClose', readAuditsWritten)

  async function authenticate (request: FastifyRequest, mode: Mode, credential: string | undefined): Promise<Principal> {
    const token = credential ?? bearerToken(request) ?? (mode === 'gateway' || mode === 'key' ? null : cookieToken(request))
    if (token === null) throw new Errors.Unauthorized('authentication required')
    let principal: Principal | null
    if (mode === 'gateway') principal = gatewayPrincipal(gatewayTokenDigests, token)
    else if (mode === 'key') principal = await keyPrincipal(app.prisma, opts.keyring, token)
    else principal = await sessionPrincipal(app.pg, opts.keyring, token) ?? await managementPrincipal(app.prisma, opts.keyring, token, request.ip)
    if (principal === null) throw new Errors.Unauthorized('invalid or expired credentials')
    return principal
  }

  function authorize (principal: Principal, mode: Mode): void {
    if (mode === 'admin' && (!('user' in principal) || principal.user.role !== 'admin')) throw new Errors.Forbidden('admin role required')
    if (mode === 'management' && principal.kind !== 'session') throw new Errors.Forbidden('management tokens cannot manage management tokens; sign in')
  }

  async function run<Req extends FastifyRequest, T> (request: Req, reply: FastifyReply, adapter: Adapter<Req, T>): Promise<T> {
    const started = performance.now()
    const audited = AUDITED.has(adapter.mode)
    let principal: Principal | undefined
    let action = adapter.action
    const metadata: Record<string, unknown> = {}
    const entry = (status: number, error?: string): AuditEntry => ({
      eventType: adapter.mode === 'admin' ? 'admin' : 'user',
      action,
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
      durationMs: Math.round(performance.now() - started),
      metadata: Object.keys(metadata).length > 0 ? metadata : undefined,
      errorMessage: error ?? null
    })
    const status = adapter.status ?? 200
    request.audited = audited
    try {
      principal = await authenticate(request, adapter.mode, adapter.credential?.(request))
      authorize(principal, adapter.mode) // after `principal` is set, so a refusal's audit row names who was refused
      if (request.validationError !== undefined) throw request.validationError
      const ctx = (db: Db): Context<Req> => ({
        request,
        body: request.body,
        query: request.query,
        params: request.params,
        principal: principal!,
        user: principal !== undefined && 'user' in principal ? principal.user : undefined as never,
        db,
        audit: (more, rename) => { Object.assign(metadata, more); if (rename !== undefined) action = rename }
      })
      let result: T
      if (adapter.mutation === true) {
        result = await app.prisma.$transaction(async (tx) => {
          const value = await adapter.handle(ctx(tx))
          if (audited) await writeAudit(tx, entry(status))
          return value
        })
        for (const listener of commitListeners) listener(action)
      } else {
        result = await adapter.handle(ctx(app.prisma))
        if (audited) auditRead(entry(status))
      }
      reply.code(status)
      return result
    } catch (error) {
      const refusal = errorReply(error)
      // the refused call is audited too (its transaction, if any, was rolled back)
      if (audited && refusal.status < 500) await writeAudit(app.prisma, entry(refusal.status, refusal.message))
      throw error
    }
  }

  app.decorate('pipeline', { run, onCommit: (listener) => { commitListeners.push(listener) }, readAuditsWritten })
}, { name: 'pipeline', dependencies: ['prisma'] })
