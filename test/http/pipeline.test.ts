// The pipeline as Fastify's lifecycle: every admin and user call has its audit row,
// a call that ends in a 5xx included, and a list call's row carries its filters.
import t from 'tap'
import Type from 'typebox'
import { buildApp } from '../../src/app.js'
import { route, type Context } from '../../src/http/pipeline.js'
import { Message } from '../../src/http/schemas.js'
import { buildTestApp, createDatabase, signIn, testConfig } from '../helper.js'

t.test('a read that fails with a 500 leaves its audit row, status 500 and success=false', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  // the handler reads providers: without the table its query fails inside the database
  await app.prisma.$executeRawUnsafe('ALTER TABLE providers RENAME TO providers_away')
  const res = await app.inject({ method: 'GET', url: '/api/admin/providers?is_active=true', headers: admin.headers })
  await app.prisma.$executeRawUnsafe('ALTER TABLE providers_away RENAME TO providers')
  t.equal(res.statusCode, 500)
  t.same(res.json().error, { type: 'internal_error', message: 'internal server error' }, 'no internals leak')
  await app.pipeline.readAuditsWritten()
  const row = await app.prisma.auditLog.findFirstOrThrow({ where: { requestId: String(res.headers['x-request-id']) } })
  t.match(row, {
    eventType: 'admin', action: 'providers.list', principalType: 'admin', userId: admin.id, method: 'GET', path: '/api/admin/providers',
    statusCode: 500, success: false, errorMessage: 'internal server error'
  })
  t.same(row.metadata, { query: { is_active: true, skip: 0, limit: 100 } }, 'the failed call\'s filters too')
})

t.test('a mutation that fails with a 500 is rolled back and audited outside its transaction', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  // the provider is inserted, then its successful audit row is refused by the database: the transaction rolls back
  await app.prisma.$executeRawUnsafe(`ALTER TABLE audit_logs ADD CONSTRAINT refuse_created CHECK (action <> 'providers.create' OR success = false)`)
  const res = await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'doomed' } })
  t.equal(res.statusCode, 500)
  t.equal(await app.prisma.provider.count({ where: { name: 'doomed' } }), 0, 'nothing committed')
  await app.pipeline.readAuditsWritten()
  const rows = await app.prisma.auditLog.findMany({ where: { action: 'providers.create' } })
  t.equal(rows.length, 1, 'one row for the call')
  t.match(rows[0], { statusCode: 500, success: false, principalType: 'admin', userId: admin.id, requestId: res.headers['x-request-id'] })
})

t.test('a handler that throws, on a route declared through route(): 500, its write rolled back, its row written', async (t) => {
  const url = await createDatabase(t)
  const app = await buildApp(testConfig(url))
  await app.register(async (child) => {
    route(child, {
      method: 'POST',
      url: '/explode',
      schema: { querystring: Type.Object({ label: Type.String() }), response: { 200: Message } },
      action: 'test.explode',
      mode: 'admin',
      mutation: true,
      handle: async ({ db, user, query, audit }) => {
        await db.user.create({ data: { username: `made-by-${user.username}`, passwordHash: 'x' } })
        audit({ label: query.label })
        throw new Error('a bug')
      }
    })
  }, { prefix: '/api/admin/test-only' })
  await app.ready()
  t.teardown(() => app.close())
  const admin = await signIn(app, 'admin')
  const res = await app.inject({ method: 'POST', url: '/api/admin/test-only/explode?label=first', headers: admin.headers })
  t.equal(res.statusCode, 500)
  t.equal(await app.prisma.user.count({ where: { username: { startsWith: 'made-by-' } } }), 0, 'the handler\'s write was rolled back')
  await app.pipeline.readAuditsWritten()
  const row = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'test.explode' } })
  t.match(row, { eventType: 'admin', statusCode: 500, success: false, userId: admin.id, path: '/api/admin/test-only/explode', method: 'POST' })
  t.same(row.metadata, { query: { label: 'first' }, label: 'first' }, 'the query and what the handler added before it failed')

  const stranger = await app.inject({ method: 'POST', url: '/api/admin/test-only/explode' })
  t.equal(stranger.statusCode, 401, 'authenticated before the missing query is reported')
})

t.test('a list call\'s audit row carries its validated filters, credentials masked', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const listed = await app.inject({ method: 'GET', url: '/api/admin/users?role=user&is_active=true&limit=5', headers: admin.headers })
  t.equal(listed.statusCode, 200)
  const secret = `sk-${'a'.repeat(40)}`
  const filtered = await app.inject({ method: 'GET', url: `/api/admin/audit-logs?action=${secret}&success=false&user_id=${user.id}`, headers: admin.headers })
  t.equal(filtered.statusCode, 200)
  const own = await app.inject({ method: 'GET', url: '/api/users/me/api-keys?limit=3', headers: user.headers })
  t.equal(own.statusCode, 200)
  await app.pipeline.readAuditsWritten()
  const rowOf = (res: { headers: Record<string, unknown> }) => app.prisma.auditLog.findFirstOrThrow({ where: { requestId: String(res.headers['x-request-id']) } })
  t.same((await rowOf(listed)).metadata, { query: { role: 'user', is_active: true, skip: 0, limit: 5 } }, 'the filters as validated, defaults included')
  t.same((await rowOf(filtered)).metadata, { query: { action: 'sk-a…aaaa', success: false, user_id: user.id, limit: 50, offset: 0 } }, 'a credential-shaped filter is masked')
  t.match(await rowOf(own), { action: 'own_api_keys.list', userId: user.id, metadata: { query: { limit: 3 } } })
})

t.test('a call refused at validation has its row, without the unvalidated query', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const res = await app.inject({ method: 'GET', url: '/api/admin/users?limit=9999', headers: admin.headers })
  t.equal(res.statusCode, 400)
  const row = await app.prisma.auditLog.findFirstOrThrow({ where: { requestId: String(res.headers['x-request-id']) } })
  t.match(row, { action: 'users.list', statusCode: 400, success: false, userId: admin.id, metadata: null })
})

// compiled, not run: a gateway or key route's handler has no signed-in user to read
export function gatewayHandlerHasNoUser (ctx: Context<object, 'gateway'>): unknown {
  // @ts-expect-error a gateway route has no user
  return ctx.user
}
export function keyHandlerHasItsKey (ctx: Context<object, 'key'>): string {
  // @ts-expect-error a key route has no user either
  void ctx.user
  return ctx.principal.apiKeyId
}
