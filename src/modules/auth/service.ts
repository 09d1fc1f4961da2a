// Who is calling: login sessions (cookie or bearer access token), management tokens,
// the gateway token and API keys. Tokens are stored only as keyed hashes.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import sql from 'sql-template-tag'
import type {} from '@fastify/cookie'
import { constantTimeEqual, DUMMY_PASSWORD_HASH, randomBase62, verifyPassword } from '../../lib/crypto.js'
import { hashApiKey, hashToken, type Keyring } from '../../lib/keyring.js'
import type { Db, Sql } from '../../db/prisma.js'
import type { User } from '../../generated/prisma/client.js'
import { GATEWAY_TOKEN_MIN_LENGTH } from '../../config.js'
import { Errors } from '../../lib/errors.js'
import type { AuthUser, GatewayPrincipal, KeyPrincipal, ManagementPrincipal, Mode, Principal, SessionPrincipal } from '../../http/pipeline.js'
import { CLIENTS_TRACKED, refusal, WindowStore } from '../../http/rate-limit.js'
import { parsedIp } from '../audit/service.js'

export const SESSION_COOKIE = 'km_session'
export const SESSION_TOKEN_PREFIX = 'kms_'
export const MANAGEMENT_TOKEN_PREFIX = 'kmm_'

const userFields = { id: true, role: true, username: true, email: true, isActive: true, isDeleted: true } as const

function activeUser (user: (AuthUser & { isActive: boolean, isDeleted: boolean }) | null): AuthUser | null {
  if (user === null || !user.isActive || user.isDeleted) return null
  return { id: user.id, role: user.role, username: user.username, email: user.email }
}

/** The password check behind every login; an object so that a test can count the checks the throttle lets through. */
export const passwordCheck = { verify: verifyPassword }

/** The account a login identifier (email or username) names, if any. */
export async function findLoginAccount (db: Db, login: string): Promise<User | null> {
  return db.user.findFirst({ where: { OR: [{ email: login }, { username: login }], isDeleted: false } })
}

/**
 * Checks a password in constant time, whether or not the user exists. `account` is the
 * account the identifier names (right password or not): only then may the identifier be
 * recorded, since a login field can hold a password typed in the wrong box.
 */
export async function checkLogin (db: Db, login: string, password: string): Promise<{ user: User | null, account: User | null }> {
  const account = await findLoginAccount(db, login)
  const ok = await passwordCheck.verify(password, account?.passwordHash ?? DUMMY_PASSWORD_HASH)
  return { user: ok && account !== null && account.isActive ? account : null, account }
}

export async function createSession (db: Db, keyring: Keyring, user: User, ttlHours: number, client: { ip: string, userAgent?: string }) {
  const token = SESSION_TOKEN_PREFIX + randomBase62(40)
  const expiresAt = new Date(Date.now() + ttlHours * 3_600_000)
  const session = await db.userSession.create({
    data: { userId: user.id, tokenHash: hashToken(keyring, token), expiresAt, ip: parsedIp(client.ip), userAgent: client.userAgent }
  })
  await db.user.update({ where: { id: user.id }, data: { lastLoginAt: new Date() } })
  return { token, session }
}

/**
 * The session of a token, on every admin and user call: one named statement on the pg
 * pool (user_sessions (token_hash) unique index, users primary key), about 1 ms cheaper
 * than the same lookup through the Prisma client.
 */
export async function sessionPrincipal (db: Sql, keyring: Keyring, token: string): Promise<SessionPrincipal | null> {
  if (!token.startsWith(SESSION_TOKEN_PREFIX)) return null
  const lookup = sql`SELECT s.id AS session_id, u.id, u.role::text AS role, u.username, u.email, u.is_active, u.is_deleted
                       FROM user_sessions s JOIN users u ON u.id = s.user_id
                      WHERE s.token_hash = ${hashToken(keyring, token)} AND s.revoked_at IS NULL AND s.expires_at > now()`
  const { rows: [row] } = await db.query<AuthUser & { session_id: string, is_active: boolean, is_deleted: boolean }>({ name: 'session-principal', text: lookup.text, values: lookup.values })
  const user = row === undefined ? null : activeUser({ ...row, isActive: row.is_active, isDeleted: row.is_deleted })
  return user === null ? null : { kind: 'session', user, sessionId: row!.session_id }
}

export async function managementPrincipal (db: Db, keyring: Keyring, token: string, ip: string): Promise<ManagementPrincipal | null> {
  if (!token.startsWith(MANAGEMENT_TOKEN_PREFIX)) return null
  const row = await db.managementToken.findUnique({ where: { tokenHash: hashToken(keyring, token) }, include: { user: { select: userFields } } })
  if (row === null || !row.isActive || (row.expiresAt !== null && row.expiresAt <= new Date())) return null
  const allowed = Array.isArray(row.allowedIps) ? row.allowedIps as string[] : null
  const address = parsedIp(ip)
  if (allowed !== null && allowed.length > 0 && (address === null || !allowed.includes(address))) return null
  const user = activeUser(row.user)
  if (user === null) return null
  await db.managementToken.update({ where: { id: row.id }, data: { lastUsedAt: new Date(), lastUsedIp: address, usageCount: { increment: 1 } } })
  return { kind: 'management', user, tokenId: row.id }
}

/** GATEWAY_TOKEN's tokens as SHA-256 digests; a token too short to be a credential is never accepted, whatever the config. */
export function gatewayDigests (tokens: string[]): Buffer[] {
  return tokens.filter((token) => token.length >= GATEWAY_TOKEN_MIN_LENGTH).map(sha256)
}

/** Digests on both sides: equal lengths for timingSafeEqual, so neither a token's length nor its content leaks through timing. */
export function gatewayPrincipal (digests: Buffer[], token: string): GatewayPrincipal | null {
  const given = sha256(token)
  let match = false
  for (const candidate of digests) match = timingSafeEqual(candidate, given) || match // no early exit: same time for every token
  return match ? { kind: 'gateway' } : null
}

function sha256 (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

export async function keyPrincipal (db: Db, keyring: Keyring, key: string): Promise<KeyPrincipal | null> {
  const hash = hashApiKey(keyring, key)
  // one joined query whatever the key's state, so the answer's timing says nothing about it
  // by the current secret, or (api_keys unique previous_key_hash) the one a rotation replaced while its grace lasts
  const [row] = await db.$queryRaw<Array<{ id: string, user_id: string, key_hash: string, is_active: boolean, expires_at: Date | null, user_active: boolean }>>`
    SELECT k.id, k.user_id, CASE WHEN k.key_hash = ${hash} THEN k.key_hash ELSE k.previous_key_hash END AS key_hash, k.is_active, k.expires_at, u.is_active AND NOT u.is_deleted AS user_active
      FROM api_keys k JOIN users u ON u.id = k.user_id
     WHERE k.key_hash = ${hash} OR (k.previous_key_hash = ${hash} AND k.previous_key_expires_at > now())`
  if (row === undefined || !constantTimeEqual(row.key_hash, hash) || !row.is_active || !row.user_active) return null
  if (row.expires_at !== null && row.expires_at <= new Date()) return null
  return { kind: 'key', apiKeyId: row.id, userId: row.user_id }
}

export function bearerToken (request: FastifyRequest): string | null {
  const header = request.headers.authorization
  if (typeof header !== 'string') return null
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1] ?? null
}

/** The session token from the signed cookie, when its signature holds. */
export function cookieToken (request: FastifyRequest): string | null {
  const raw = request.cookies[SESSION_COOKIE]
  if (raw === undefined) return null
  const unsigned = request.unsignCookie(raw)
  return unsigned.valid ? unsigned.value : null
}

export interface AuthenticatorOptions { prisma: Db, pg: Sql, keyring: Keyring, gatewayTokens: string[] }

/**
 * The pipeline's `authenticate`: the principal a request's credential names for a route's
 * mode. Gateway and key routes take a bearer header (or the route's own credential) only;
 * signed-in modes also the session cookie.
 */
export function authenticator (opts: AuthenticatorOptions): (request: FastifyRequest, mode: Mode, credential: string | undefined) => Promise<Principal> {
  const gatewayTokenDigests = gatewayDigests(opts.gatewayTokens)
  return async (request, mode, credential) => {
    const token = credential ?? bearerToken(request) ?? (mode === 'gateway' || mode === 'key' ? null : cookieToken(request))
    if (token === null) throw new Errors.Unauthorized('authentication required')
    let principal: Principal | null
    if (mode === 'gateway') principal = gatewayPrincipal(gatewayTokenDigests, token)
    else if (mode === 'key') principal = await keyPrincipal(opts.prisma, opts.keyring, token)
    else principal = await sessionPrincipal(opts.pg, opts.keyring, token) ?? await managementPrincipal(opts.prisma, opts.keyring, token, request.ip)
    if (principal === null) throw new Errors.Unauthorized('invalid or expired credentials')
    return principal
  }
}

/**
 * Repeated login failures from one address: after FREE failures each answer is
 * slowed by a growing delay; after LIMIT failures the address is refused for the
 * rest of a WINDOW_MS window. The counting is @fastify/rate-limit's, on the login
 * route (`rateLimit` below): every attempt is counted before its password is hashed,
 * so concurrent attempts cannot outrun the limit, and a right password takes its own
 * attempt back (`succeed`): only failures stay counted. This object reads and
 * corrects that route's store.
 */
export class LoginThrottle {
  static readonly FREE = 3
  static readonly LIMIT = 10
  static readonly WINDOW_MS = 15 * 60_000
  /** the route's rate-limit group: the plugin appends it to the address to make the key */
  static readonly GROUP = 'login'

  constructor (private readonly store: WindowStore = new WindowStore(CLIENTS_TRACKED, Date.now)) {}

  /** The login route's `config.rateLimit`: counted after validation (a malformed body is no attempt), before the handler's hash. */
  get rateLimit () {
    return {
      max: LoginThrottle.LIMIT,
      timeWindow: LoginThrottle.WINDOW_MS,
      groupId: LoginThrottle.GROUP,
      hook: 'preHandler' as const,
      errorResponseBuilder: refusal((message) => new Errors.LoginThrottled(message), 'too many failed logins; try again later')
    }
  }

  private key (ip: string): string {
    return `${ip}${LoginThrottle.GROUP}`
  }

  /** Failures (and attempts in flight) counted for the address in its window. */
  failures (ip: string): number {
    return this.store.count(this.key(ip), LoginThrottle.WINDOW_MS)
  }

  /** Seconds the address must wait, or 0 when it may try. */
  retryAfter (ip: string): number {
    if (this.failures(ip) < LoginThrottle.LIMIT) return 0
    return Math.ceil(this.store.remainingMs(this.key(ip), LoginThrottle.WINDOW_MS) / 1000)
  }

  /** Delay before answering an attempt, in milliseconds; `counted`: the attempt's own count, when already made. */
  delayMs (ip: string, counted = 0): number {
    const count = this.failures(ip) - counted
    return count < LoginThrottle.FREE ? 0 : Math.min(250 * 2 ** (count - LoginThrottle.FREE), 4000)
  }

  /** Counts a failure, as the route's hook counts an attempt. */
  fail (ip: string): void {
    this.store.incr(this.key(ip), () => {}, LoginThrottle.WINDOW_MS)
  }

  /**
   * A correct password: its own attempt, counted by the hook, is taken back. The address's
   * failures stay: a sign-in to one's own account must not reset the count of guesses
   * at others' from the same address.
   */
  succeed (ip: string): void {
    this.store.decrement(this.key(ip), LoginThrottle.WINDOW_MS)
  }
}
