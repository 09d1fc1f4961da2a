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

t.test('GET /api/admin/monitoring/audit-logs: Aether\'s event names, its filters, a user by name, and no successful reads unless asked', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin', 'root')
  const user = await signIn(app, 'user', 'mallory')
  await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: 'mallory', password: 'wrong-password' } })
  const created = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'newbie', password: 'newbie-password' } })
  await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'newbie', password: 'newbie-password' } }) // 409
  await app.inject({ method: 'GET', url: '/api/admin/users', headers: user.headers }) // 403
  await app.inject({ method: 'GET', url: '/api/admin/users', headers: admin.headers }) // a successful read
  await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'acme' } })
  await app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'mine' } })
  await app.pipeline.readAuditsWritten()

  const get = async (query: string) => {
    const res = await app.inject({ method: 'GET', url: `/api/admin/monitoring/audit-logs?${query}`, headers: admin.headers })
    t.equal(res.statusCode, 200, query)
    return res.json() as { items: Array<Record<string, unknown>>, total: number, limit: number, offset: number }
  }
  const page = await get('days=7&limit=100&offset=0&unknown_param=1')
  const events = page.items.map((i) => `${String(i.event_type)} ${String(i.action)} ${String(i.status_code)}`)
  t.ok(events.includes('login_success auth.login 200'), 'a sign-in')
  t.ok(events.includes('login_failed auth.login 401'), 'a failed sign-in is login_failed, not unauthorized_access')
  t.ok(events.includes('user_created users.create 201'))
  t.ok(events.includes('admin users.create 409'), 'a refused create keeps keymeter\'s event type')
  t.ok(events.includes('unauthorized_access users.list 403'))
  t.ok(events.includes('provider_added providers.create 201'))
  t.ok(events.includes('api_key_created own_api_keys.create 201'))
  t.notOk(page.items.some((i) => i.method === 'GET' && i.success === true), 'no successful read by default')
  t.equal(page.total, page.items.length)

  const row = page.items.find((i) => i.action === 'users.create' && i.status_code === 201)!
  t.match(row, { user_id: admin.id, user_username: 'root', user_email: 'root@example.com', ip_address: '127.0.0.1', keymeter_event_type: 'admin', metadata: { username: 'newbie' } })
  t.match(row.description, /users\.create.*POST \/api\/admin\/users.*201/, 'one human line')
  t.equal(created.statusCode, 201)

  const filtered = await get('event_type=user_created')
  t.same(filtered.items.map((i) => i.action), ['users.create'], 'event_type maps back to the actions')
  t.same((await get('event_type=unauthorized_access')).items.map((i) => i.status_code), [403])
  t.same((await get('event_type=login_failed')).items.map((i) => i.success), [false])
  const reads = await get('event_type=admin&limit=500')
  t.ok(reads.items.some((i) => i.action === 'users.list' && i.success === true), 'keymeter\'s own event type shows reads when asked')
  t.notOk(reads.items.some((i) => i.event_type !== 'admin'), 'and only rows shown under that name')

  for (const who of ['mallory', 'MALLORY@example.com', user.id]) {
    const mine = await get(`user_id=${encodeURIComponent(who)}`)
    t.ok(mine.total > 0 && mine.items.every((i) => i.user_id === user.id), `user_id=${who}: that user's rows`)
  }
  t.equal((await get('user_id=nobody%20at%20all')).total, 0, 'free text naming no one: no rows, no 400')

  await app.prisma.auditLog.updateMany({ where: { action: 'providers.create' }, data: { createdAt: new Date(Date.now() - 3 * 86_400_000) } })
  t.notOk((await get('days=1')).items.some((i) => i.action === 'providers.create'), 'days=1: older rows left out')
  t.ok((await get('days=7')).items.some((i) => i.action === 'providers.create'), 'days=7: kept')
  const paged = await get('limit=2&offset=1')
  t.match(paged, { limit: 2, offset: 1 })
  t.equal(paged.items.length, 2)

  for (const query of ['days=0', 'days=367', 'limit=501', 'offset=-1']) {
    const bad = await app.inject({ method: 'GET', url: `/api/admin/monitoring/audit-logs?${query}`, headers: admin.headers })
    t.equal(bad.statusCode, 400, `${query} → 400`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/monitoring/audit-logs', headers: user.headers })).statusCode, 403, 'admins only')
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/monitoring/audit-logs' })).statusCode, 401)
})
