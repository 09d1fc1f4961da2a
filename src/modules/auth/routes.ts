// Sign-in and sign-out. Login sits outside the pipeline (there is no principal yet)
// but is audited all the same, success and failure.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { setTimeout as sleep } from 'node:timers/promises'
import { Errors } from '../../http/errors.js'
import { errorResponses, Message } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { writeAudit } from '../audit/service.js'
import { Profile } from '../users/schemas.js'
import { findUser, toProfile } from '../users/service.js'
import { checkLogin, createSession, findLoginAccount, SESSION_COOKIE } from './service.js'

const tags = ['auth']

const LoginBody = Type.Object({
  email: Type.String({ minLength: 1, maxLength: 254, description: 'email or username' }),
  password: Type.String({ minLength: 1, maxLength: 256 })
}, { additionalProperties: false })

const LoginReply = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  expires_in: Type.Integer({ description: 'seconds' }),
  user_id: Type.String(),
  email: Type.Union([Type.String(), Type.Null()]),
  username: Type.String(),
  role: Type.String()
})

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const throttle = app.loginThrottle
  const ttlSeconds = app.config.SESSION_TTL_HOURS * 3600

  const audit = (request: FastifyRequest, login: string, success: boolean, status: number, account: { id: string } | null, error?: string) => writeAudit(app.prisma, {
    eventType: 'auth', action: 'auth.login', principalType: success ? 'user' : 'anonymous', userId: success ? account?.id ?? null : null, ip: request.ip,
    userAgent: request.headers['user-agent'] ?? null, requestId: request.id, method: 'POST', path: '/api/auth/login',
    statusCode: status, success,
    // the typed identifier is kept only when it names an account: otherwise it may be a password in the wrong box
    metadata: account !== null ? { login } : { login_known: false },
    errorMessage: error ?? null
  })

  app.post('/login', {
    // counted before the password is checked: concurrent attempts cannot outrun the limit
    config: { rateLimit: throttle.rateLimit },
    // the throttle's 429 comes from its hook, before the handler: audited here like every attempt
    onError: async (request, _reply, error) => {
      if ((error as { code?: string }).code === 'KM_LOGIN_THROTTLED') await audit(request, request.body.email, false, 429, await findLoginAccount(app.prisma, request.body.email), 'too many failed logins')
    },
    schema: { tags, summary: 'Sign in; sets the session cookie and returns a bearer access token', description: 'email takes an email or a username. Failed attempts are throttled per client address (429 with Retry-After) and each attempt, refused or not, is audited. Send the returned access token as a bearer token, or let the browser keep the cookie.', operationId: 'authLogin', body: LoginBody, response: { 200: LoginReply, 400: errorResponses()[400], 401: errorResponses()[401], 429: errorResponses()[429] } }
  }, async (request, reply) => {
    const ip = request.ip
    // this attempt is already counted by the hook
    const delayMs = throttle.delayMs(ip, 1)
    if (delayMs > 0) await sleep(delayMs)
    const { user, account } = await checkLogin(app.prisma, request.body.email, request.body.password)
    if (user === null) {
      await audit(request, request.body.email, false, 401, account, 'invalid credentials')
      throw new Errors.Unauthorized('invalid email/username or password')
    }
    throttle.succeed(ip)
    const { token } = await createSession(app.prisma, app.keyring, user, app.config.SESSION_TTL_HOURS, { ip, userAgent: request.headers['user-agent'] })
    await audit(request, request.body.email, true, 200, user)
    reply.setCookie(SESSION_COOKIE, token, {
      path: '/', httpOnly: true, sameSite: 'lax', signed: true, secure: request.protocol === 'https', maxAge: ttlSeconds
    })
    return { access_token: token, token_type: 'bearer' as const, expires_in: ttlSeconds, user_id: user.id, email: user.email, username: user.username, role: user.role }
  })

  route(app, {
    method: 'POST',
    url: '/logout',
    schema: { tags, summary: 'Sign out: the session and its access token stop working', description: 'Ends the session that makes the call: its cookie is cleared and its access token is refused from then on. A management token cannot sign out.', response: { 200: Message, 401: errorResponses()[401] } },
    action: 'auth.logout',
    mode: 'management',
    mutation: true,
    handle: async ({ db, principal, reply }) => {
      await db.userSession.update({ where: { id: principal.sessionId }, data: { revokedAt: new Date() } })
      reply.clearCookie(SESSION_COOKIE, { path: '/' })
      return { message: 'signed out' }
    }
  })

  route(app, {
    method: 'GET',
    url: '/me',
    schema: { tags, summary: 'The signed-in user', description: 'Who the credential names. Use it to check a token before other calls.', response: { 200: Profile, 401: errorResponses()[401] } },
    action: 'auth.me',
    mode: 'user',
    handle: async ({ db, user }) => toProfile(await findUser(db, user.id))
  })
}

export default routes
