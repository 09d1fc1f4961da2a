// POST …/api-keys/:id/rotate: a new secret shown once, the old one verifying for the
// grace period only (even from verify's cache), both doors audited, every refusal a 4xx.
import t from 'tap'
import pg from 'pg'
import { setTimeout as sleep } from 'node:timers/promises'
import { signIn } from '../../helper.js'
import { gateway, UNKNOWN_UUID } from '../gateway/fixtures.js'

const KEY = /^sk-[0-9A-Za-z]{48}$/
/** a cache far longer than any grace used here, so the old secret's state is answered from it */
const LONG_CACHE = { VERIFY_CACHE_TTL_MS: '60000' }

const secondsFromNow = (iso: string) => (new Date(iso).getTime() - Date.now()) / 1000

t.test('admin rotation: new secret once, old one works through the grace period, then stops even while cached', async (t) => {
  const g = await gateway(t, LONG_CACHE)
  const key = await g.standaloneKey({ initial_balance_usd: 5, concurrent_limit: 1 })
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'cached before the rotation')

  const res = await g.app.inject({ method: 'POST', url: `/api/admin/api-keys/${key.id}/rotate`, headers: g.admin.headers, payload: { grace_seconds: 2 } })
  t.equal(res.statusCode, 200)
  const rotated = res.json()
  t.match(rotated.key, KEY)
  t.not(rotated.key, key.key, 'a new secret')
  t.match(rotated, { id: key.id, name: key.name, current_balance_usd: 5, concurrent_limit: 1 }, 'the same key: id, limits and balance stay')
  t.equal(rotated.key_display, `${rotated.key.slice(0, 7)}…${rotated.key.slice(-4)}`)
  const grace = secondsFromNow(rotated.previous_key_expires_at)
  t.ok(grace > 0 && grace <= 2, `the old secret verifies for 2 s (${grace})`)

  const viaNew = await g.verify({ key: rotated.key })
  const viaOld = await g.verify({ key: key.key })
  t.equal(viaNew.statusCode, 200)
  t.equal(viaOld.statusCode, 200, 'the old secret still verifies during the grace period')
  t.equal(viaOld.json().key_id, key.id)
  t.equal(viaNew.json().key_id, key.id)

  // both secrets are one key: a hold taken through the new one fills the old one's concurrency limit
  const held = await g.verify({ key: rotated.key, request_id: 'rot-1' })
  t.equal(held.statusCode, 200)
  const second = await g.verify({ key: key.key, request_id: 'rot-2' })
  t.equal(second.statusCode, 429, 'the old secret sees the hold taken through the new one')
  t.equal(second.json().error.type, 'concurrency_limited')
  const [settled] = await g.send([{ type: 'complete', request_id: 'rot-1', api_key_id: key.id, model: 'm', status: 'completed', status_code: 200, input_tokens: 1, output_tokens: 0 }])
  t.equal(settled?.outcome, 'recorded', 'the held request completes: its slot frees')

  // the key principal (key-stats) takes the old secret while its grace lasts
  const stats = (secret: string) => g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: { authorization: `Bearer ${secret}` }, payload: {} })
  t.equal((await stats(key.key)).statusCode, 200, 'key-stats with the old secret during the grace period')

  // the admin reveal and the record show the new secret
  const reveal = await g.adminCall('GET', `/api/admin/api-keys/${key.id}?include_key=true`)
  t.equal(reveal.key, rotated.key)

  await sleep(2100)
  const late = await g.verify({ key: key.key })
  t.equal(late.statusCode, 401, 'past the grace period the old secret is refused although its state is cached')
  t.equal(late.json().error.type, 'key_invalid')
  const lateReserve = await g.verify({ key: key.key, request_id: 'rot-3' })
  t.equal(lateReserve.statusCode, 401, 'and refused by a reservation')
  t.equal((await stats(key.key)).statusCode, 401, 'and by key-stats')
  t.equal((await g.verify({ key: rotated.key })).statusCode, 200, 'the new secret goes on')
  t.equal((await g.adminCall('GET', `/api/admin/api-keys/${key.id}`)).previous_key_expires_at, null, 'no old secret left to show')

  await g.app.pipeline.readAuditsWritten()
  const audit = await g.app.prisma.auditLog.findFirstOrThrow({ where: { action: 'api_keys.rotate' } })
  t.match(audit.metadata, { key_id: key.id, grace_seconds: 2 })

  // no column of any table and no audit row holds either secret in clear
  const client = new pg.Client({ connectionString: g.url })
  await client.connect()
  t.teardown(() => client.end())
  const tables = await client.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\'')
  for (const { table_name: table } of tables.rows) {
    const text = JSON.stringify((await client.query(`SELECT * FROM "${table}"`)).rows)
    for (const secret of [key.key as string, rotated.key as string]) t.notOk(text.includes(secret.slice(3)), `no secret in ${table}`)
  }
})

t.test('grace 0 ends the old secret at once; the default is one day; a second rotation ends the first one\'s old secret', async (t) => {
  const g = await gateway(t, LONG_CACHE)
  const a = await g.standaloneKey()
  t.equal((await g.verify({ key: a.key })).statusCode, 200)
  const now = await g.adminCall('POST', `/api/admin/api-keys/${a.id}/rotate`, { grace_seconds: 0 })
  t.equal(now.previous_key_expires_at, null)
  t.equal((await g.verify({ key: a.key })).statusCode, 401, 'grace 0: the old secret is refused at once')
  t.equal((await g.verify({ key: now.key })).statusCode, 200)

  const b = await g.standaloneKey()
  const first = await g.adminCall('POST', `/api/admin/api-keys/${b.id}/rotate`, {})
  const day = secondsFromNow(first.previous_key_expires_at)
  t.ok(day > 86_390 && day <= 86_400, `the default grace is 86400 s (${day})`)
  const second = await g.adminCall('POST', `/api/admin/api-keys/${b.id}/rotate`, { grace_seconds: 600 })
  t.equal((await g.verify({ key: b.key })).statusCode, 401, 'the first secret stops at the second rotation')
  t.equal((await g.verify({ key: first.key })).statusCode, 200, 'the second secret is in its grace period')
  t.equal((await g.verify({ key: second.key })).statusCode, 200)

  // two rotations at once chain: both new secrets verify (one current, one in its grace period)
  const c = await g.standaloneKey()
  const both = await Promise.all([0, 1].map(() => g.adminCall('POST', `/api/admin/api-keys/${c.id}/rotate`, { grace_seconds: 600 })))
  for (const rotated of both) t.equal((await g.verify({ key: rotated.key })).statusCode, 200, 'a concurrent rotation\'s secret is not lost')
  t.equal((await g.verify({ key: c.key })).statusCode, 401, 'the secret before both is')
})

t.test('a rotation\'s body is optional: no body, with or without a JSON content type, takes the default grace', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  const mine = (await g.app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'mine' } })).json()
  const keys = [await g.standaloneKey(), await g.standaloneKey()]
  const calls: Array<[string, string, Record<string, string>, Record<string, string>]> = [
    ['admin, no content type', `/api/admin/api-keys/${keys[0]!.id}/rotate`, g.admin.headers, {}],
    ['admin, JSON content type, empty body', `/api/admin/api-keys/${keys[1]!.id}/rotate`, g.admin.headers, { 'content-type': 'application/json' }],
    ['own key, no content type', `/api/users/me/api-keys/${mine.id}/rotate`, user.headers, {}],
    ['own key, JSON content type, empty body', `/api/users/me/api-keys/${mine.id}/rotate`, user.headers, { 'content-type': 'application/json' }]
  ]
  for (const [what, url, auth, type] of calls) {
    const res = await g.app.inject({ method: 'POST', url, headers: { ...auth, ...type }, ...(type['content-type'] !== undefined && { payload: '' }) })
    t.equal(res.statusCode, 200, what)
    t.match(res.json().key, KEY, `${what}: a new secret`)
    const grace = secondsFromNow(res.json().previous_key_expires_at)
    t.ok(grace > 86_390 && grace <= 86_400, `${what}: the default grace of 86400 s (${grace})`)
  }
  t.equal((await g.verify({ key: keys[0]!.key })).statusCode, 200, 'the old secret verifies in its grace period')
  await g.app.pipeline.readAuditsWritten()
  t.equal(await g.app.prisma.auditLog.count({ where: { action: 'api_keys.rotate', success: true } }), 2, 'both admin rotations audited')
  t.equal(await g.app.prisma.auditLog.count({ where: { action: 'own_api_keys.rotate', success: true } }), 2, 'both own rotations audited')
})

t.test('a user rotates their own key; refusals are 4xx, change nothing and are audited', async (t) => {
  const g = await gateway(t)
  const user = await signIn(g.app, 'user')
  const mine = (await g.app.inject({ method: 'POST', url: '/api/users/me/api-keys', headers: user.headers, payload: { name: 'mine' } })).json()
  const other = await g.standaloneKey()
  const rotate = (url: string, headers: Record<string, string>, payload?: object) => g.app.inject({ method: 'POST', url, headers, ...(payload !== undefined && { payload }) })

  const res = await rotate(`/api/users/me/api-keys/${mine.id}/rotate`, user.headers, { grace_seconds: 60 })
  t.equal(res.statusCode, 200)
  t.match(res.json().key, KEY)
  t.equal((await g.verify({ key: mine.key })).statusCode, 200, 'old secret in its grace period')
  t.equal((await g.verify({ key: res.json().key })).statusCode, 200)

  const refusals: Array<[string, Record<string, string>, object | undefined, number, string?]> = [
    [`/api/users/me/api-keys/${other.id}/rotate`, user.headers, {}, 404, 'not_found'],
    [`/api/users/me/api-keys/${UNKNOWN_UUID}/rotate`, user.headers, {}, 404, 'not_found'],
    [`/api/admin/api-keys/${mine.id}/rotate`, user.headers, {}, 403],
    [`/api/admin/api-keys/${UNKNOWN_UUID}/rotate`, g.admin.headers, {}, 404, 'not_found'],
    [`/api/admin/api-keys/${other.id}/rotate`, g.admin.headers, { grace_seconds: 604_801 }, 400],
    [`/api/admin/api-keys/${other.id}/rotate`, g.admin.headers, { grace_seconds: -1 }, 400],
    [`/api/admin/api-keys/${other.id}/rotate`, g.admin.headers, { grace_seconds: 1.5 }, 400],
    [`/api/admin/api-keys/${other.id}/rotate`, g.admin.headers, { grace: 60 }, 400],
    [`/api/admin/api-keys/not-a-uuid/rotate`, g.admin.headers, {}, 400],
    [`/api/admin/api-keys/${other.id}/rotate`, {}, {}, 401]
  ]
  for (const [url, headers, payload, status, type] of refusals) {
    const refused = await rotate(url, headers, payload)
    t.equal(refused.statusCode, status, `${url} ${JSON.stringify(payload)} → ${status}`)
    t.type(refused.json().detail ?? refused.json().error?.message, 'string', 'a reason in the body')
    if (type !== undefined) t.equal(refused.json().error.type, type)
  }
  t.equal((await g.verify({ key: other.key })).statusCode, 200, 'the refused rotations left the key alone')
  const stored = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: other.id } })
  t.equal(stored.previousKeyHash, null)

  await g.app.pipeline.readAuditsWritten()
  const own = await g.app.prisma.auditLog.findMany({ where: { action: 'own_api_keys.rotate' }, orderBy: { createdAt: 'asc' } })
  t.equal(own.length, 3, 'the rotation and its two refusals')
  t.match(own[0]!.metadata, { key_id: mine.id, grace_seconds: 60 })
  t.notOk(JSON.stringify(own).includes(res.json().key.slice(3)), 'no secret in the audit rows')
  const admin = await g.app.prisma.auditLog.count({ where: { action: 'api_keys.rotate' } })
  t.ok(admin >= 5, `the admin door's refusals are audited too (${admin})`)
})
