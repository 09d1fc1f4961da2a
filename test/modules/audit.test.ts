import pg from 'pg'
import t from 'tap'
import { buildTestApp, logCapture, signIn } from '../helper.js'

t.test('a mutation and its audit row commit together: a failing audit insert rolls the change back', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  // make exactly this action's audit insert fail inside the database
  await app.prisma.$executeRawUnsafe(`ALTER TABLE audit_logs ADD CONSTRAINT refuse_user_create CHECK (action <> 'users.create' OR success = false)`)
  const res = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'orphan', password: 'orphan-password' } })
  t.equal(res.statusCode, 500)
  t.same(res.json().error, { type: 'internal_error', message: 'internal server error' }, 'no internals leak')
  t.equal(await app.prisma.user.count({ where: { username: 'orphan' } }), 0, 'the user was not created')
  await app.prisma.$executeRawUnsafe('ALTER TABLE audit_logs DROP CONSTRAINT refuse_user_create')
  const ok = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'orphan', password: 'orphan-password' } })
  t.equal(ok.statusCode, 201)
  const row = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'users.create', success: true } })
  t.match(row, { eventType: 'admin', principalType: 'admin', userId: admin.id, method: 'POST', path: '/api/admin/users', statusCode: 201, ip: '127.0.0.1', requestId: ok.headers['x-request-id'] })
  t.match(row.metadata, { username: 'orphan', role: 'user' })
  t.ok(row.durationMs !== null && row.durationMs >= 0)
})

t.test('a handler that fails after writing leaves nothing behind, and the refusal is audited', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  // deleting yourself fails after the lookup; deleting a real user then failing mid-way is simulated by a unique clash
  await app.prisma.user.create({ data: { username: 'taken', passwordHash: 'x' } })
  const res = await app.inject({ method: 'PUT', url: `/api/admin/users/${user.id}`, headers: admin.headers, payload: { username: 'taken', quota_usd: 5 } })
  t.equal(res.statusCode, 409)
  const row = await app.prisma.user.findUniqueOrThrow({ where: { id: user.id } })
  t.equal(row.quota, null, 'no partial write')
  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'users.update' } })
  t.match(audit, { success: false, statusCode: 409 })
})

t.test('GET /api/admin/audit-logs filters and pages', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  await app.inject({ method: 'GET', url: '/api/admin/users', headers: user.headers }) // refused 403
  await app.inject({ method: 'GET', url: '/api/admin/users', headers: admin.headers })
  await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })
  await app.pipeline.readAuditsWritten()

  const get = async (query: string) => {
    const res = await app.inject({ method: 'GET', url: `/api/admin/audit-logs?${query}`, headers: admin.headers })
    t.equal(res.statusCode, 200, query)
    return res.json()
  }
  const failed = await get('success=false')
  t.ok(failed.items.every((i: { success: boolean }) => !i.success))
  t.ok(failed.items.some((i: { status_code: number, action: string }) => i.status_code === 403 && i.action === 'users.list'))
  const byUser = await get(`user_id=${user.id}`)
  t.ok(byUser.items.length >= 2 && byUser.items.every((i: { user_id: string }) => i.user_id === user.id))
  const byAction = await get('action=users.me')
  t.equal(byAction.total, 1)
  const byType = await get('event_type=auth')
  t.equal(byType.total, 2, 'two logins')
  const page = await get('limit=1&offset=1')
  t.match(page, { limit: 1, offset: 1 })
  t.equal(page.items.length, 1)
  const future = await get(`start_date=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`)
  t.equal(future.total, 0)
  const window = await get(`start_date=2020-01-01T00:00:00Z&end_date=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)
  t.ok(window.total >= 5)
  const bad = await app.inject({ method: 'GET', url: '/api/admin/audit-logs?limit=501', headers: admin.headers })
  t.equal(bad.statusCode, 400)
  const noOffset = await app.inject({ method: 'GET', url: '/api/admin/audit-logs?start_date=2020-01-01T00:00:00', headers: admin.headers })
  t.equal(noOffset.statusCode, 400, 'a date without an offset is refused')
})

t.test('a read call is audited on the reads pool, with every field a mutation row has', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  const res = await app.inject({ method: 'GET', url: '/api/users/me?x=1', headers: { ...user.headers, 'user-agent': 'audit-test/1' } })
  t.equal(res.statusCode, 200)
  // written behind the answer: readAuditsWritten() waits for it
  await app.pipeline.readAuditsWritten()
  const row = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'users.me' } })
  t.match(row, {
    eventType: 'user', principalType: 'user', userId: user.id, managementTokenId: null, method: 'GET', path: '/api/users/me',
    statusCode: 200, success: true, ip: '127.0.0.1', userAgent: 'audit-test/1', requestId: res.headers['x-request-id'], errorMessage: null, metadata: null
  })
  t.ok(row.durationMs !== null && row.durationMs >= 0)
  const { rows: [setting] } = await app.statsPg.query<{ synchronous_commit: string }>('SHOW synchronous_commit')
  t.equal(setting!.synchronous_commit, 'off', 'the reads pool commits asynchronously')
})

t.test('closing the app waits for every read\'s audit row still being written, queued ones included', async (t) => {
  const { app, url } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  const blocker = new pg.Client({ connectionString: url })
  await blocker.connect()
  t.teardown(() => blocker.end())
  // hold the inserts back: four wait on the lock, holding the reads pool's four connections, and the rest queue for one
  await blocker.query('BEGIN')
  await blocker.query('LOCK TABLE audit_logs IN EXCLUSIVE MODE')
  const replies = await Promise.all(Array.from({ length: 10 }, () => app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })))
  t.same(replies.map((r) => r.statusCode), Array(10).fill(200), 'answered without waiting for their audit rows')
  const closed = app.close()
  setTimeout(() => { blocker.query('COMMIT').catch(() => {}) }, 200)
  await closed
  const { rows } = await blocker.query('SELECT request_id FROM audit_logs WHERE action = $1', ['users.me'])
  t.same(rows.map((r) => r.request_id).sort(), replies.map((r) => r.headers['x-request-id']).sort(), 'every row written before the close finished')
})

t.test('a read whose audit row cannot be written still gets its answer, and the failure is logged', async (t) => {
  const logs = logCapture()
  const { app } = await buildTestApp(t, { logStream: logs.stream })
  const user = await signIn(app, 'user')
  await app.prisma.$executeRawUnsafe(`ALTER TABLE audit_logs ADD CONSTRAINT refuse_me CHECK (action <> 'users.me')`)
  const res = await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })
  t.equal(res.statusCode, 200)
  t.equal(res.json().id, user.id)
  await app.pipeline.readAuditsWritten()
  t.equal(await app.prisma.auditLog.count({ where: { action: 'users.me' } }), 0)
  const logged = logs.lines.map((line) => JSON.parse(line) as { msg: string, action?: string, level: number })
  t.ok(logged.some((line) => line.msg === 'a read call\'s audit row was not written' && line.action === 'users.me' && line.level === 50), 'logged as an error')
})
