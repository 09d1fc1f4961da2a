// Issue 20, item 4: three real server processes on one database, started at once, the
// gateway's and the admins' traffic spread across them. Reserving verifies against a key
// with room for exactly K requests admit exactly K, whichever instance each reaches; usage
// events (starts and completions on different instances, some resent to a third) are
// recorded once; the key and user totals and every rollup equal sums over the raw rows
// (assertConsistent's SQL, and the test's own sums of what it sent); and a key disabled
// through one instance is refused by the others within VERIFY_CACHE_TTL_MS.
import t from 'tap'
import { buildApp } from '../src/app.js'
import { assertConsistent } from './modules/gateway/fixtures.js'
import { createDatabase, GATEWAY_TOKEN, testConfig } from './helper.js'
import { spawnServerProcess, type ServerProcess } from './process.js'

// three processes booting on a busy 2-core machine
t.setTimeout(240_000)

const ADMIN_PASSWORD = 'multi-instance-admin-password'
const CACHE_TTL_MS = 1000
/** the reserving key's room: rate_limit requests per window */
const K = 7
const GATEWAY = { authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-type': 'application/json' }

type Json = Record<string, any>
type Event = Record<string, unknown> & { type: string, request_id: string }

async function call (base: string, headers: Record<string, string>, method: string, path: string, body?: object): Promise<{ status: number, json: Json }> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) })
  return { status: res.status, json: await res.json() as Json }
}

async function ok (base: string, headers: Record<string, string>, method: string, path: string, body?: object): Promise<Json> {
  const { status, json } = await call(base, headers, method, path, body)
  if (status >= 300) throw new Error(`${method} ${path} → ${status} ${JSON.stringify(json)}`)
  return json
}

t.test('three instances on one database: admission exact, usage once, the books balance, caches converge', async (t) => {
  const url = await createDatabase(t)
  const env = {
    DATABASE_URL: url,
    SESSION_SECRET: 'multi-instance-session-secret-0123456789',
    ENCRYPTION_KEY: 'multi-instance-encryption-key-0123456789',
    GATEWAY_TOKEN,
    ADMIN_PASSWORD,
    CLEANUP_CRON: 'off',
    LOG_LEVEL: 'info',
    VERIFY_CACHE_TTL_MS: String(CACHE_TTL_MS)
  }
  const started = Date.now()
  // at once, as a deployment's first start: one of them creates the first admin
  const servers: ServerProcess[] = await Promise.all([0, 1, 2].map(() => spawnServerProcess(t, env)))
  await Promise.all(servers.map((s) => s.waitFor(/Server listening/)))
  t.comment(`three instances listening after ${Date.now() - started} ms`)
  const bases = servers.map((s) => s.base)
  const on = (n: number) => bases[n % bases.length]!

  // admin traffic, each call on another instance; a session made on one is honoured by all
  const login = await ok(on(0), {}, 'POST', '/api/auth/login', { email: 'admin', password: ADMIN_PASSWORD })
  const admin = { authorization: `Bearer ${login.access_token as string}` }
  t.equal(((await ok(on(1), admin, 'GET', '/api/auth/me')) as Json).role, 'admin', 'a session made on one instance is honoured by another')
  await ok(on(2), admin, 'POST', '/api/admin/model-prices', { model: 'm', effective_from: '2020-01-01T00:00:00Z', tiers: [{ up_to: null, input: 3, output: 15 }], price_per_request_usd: 0.001 })
  const ada = await ok(on(0), admin, 'POST', '/api/admin/users', { username: 'ada', password: 'correct-horse-battery', quota_usd: 1000 })
  const grace = await ok(on(1), admin, 'POST', '/api/admin/users', { username: 'grace', password: 'correct-horse-battery', quota_usd: 1000 })
  const limited = await ok(on(2), admin, 'POST', `/api/admin/users/${ada.id as string}/api-keys`, { name: 'limited', rate_limit: K, rate_window_seconds: 3600 })
  const open = await ok(on(0), admin, 'POST', `/api/admin/users/${grace.id as string}/api-keys`, { name: 'open' })
  const standalone = await ok(on(1), admin, 'POST', '/api/admin/api-keys', { name: 'standalone' })
  // a standalone key's usage is charged to the admin who made it
  const adminId = ((await ok(on(2), admin, 'GET', '/api/auth/me')) as Json).id as string
  await ok(on(2), admin, 'PUT', `/api/admin/api-keys/${standalone.id as string}`, { name: 'standalone-renamed' })

  // 3K reserving verifies at once, round the instances: exactly K admitted
  const verify = (n: number, body: object) => call(on(n), GATEWAY, 'POST', '/api/gateway/keys/verify', body)
  const answers = await Promise.all(Array.from({ length: 3 * K }, (_, i) => verify(i, { key: limited.key, request_id: `res-${i}`, model: 'm' })))
  const admitted = answers.flatMap((a, i) => a.status === 200 ? [`res-${i}`] : [])
  t.equal(admitted.length, K, `exactly ${K} of ${3 * K} admitted across three instances`)
  t.same([...new Set(answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${a.json.error?.type as string}`))], ['429 rate_limited'], 'the rest refused by the rate limit')
  // a verify resent to another instance answers its hold, and takes no second one
  for (const [i, id] of admitted.slice(0, 3).entries()) {
    const again = await verify(i + 1, { key: limited.key, request_id: id, model: 'm' })
    t.equal(again.status, 200, `${id} verified again elsewhere: its hold`)
  }

  // usage: each admitted request started on one instance and completed on the next; open and
  // standalone keys' requests completed at once; every third batch resent to a third instance
  const sent = new Map<string, { key: string, user: string, input: number, output: number }>()
  const complete = (id: string, key: Json, user: string, n: number, withStart: boolean): Event => {
    const input = 100 + (n * 37) % 900
    const output = 10 + (n * 13) % 300
    sent.set(id, { key: key.id, user, input, output })
    return { type: 'complete', request_id: id, status: 'completed', status_code: 200, input_tokens: input, output_tokens: output, response_time_ms: 40 + n, ...(withStart && { api_key_id: key.id, model: 'm' }) }
  }
  const batches: Event[][] = []
  batches.push(admitted.map((id) => ({ type: 'start', request_id: id, api_key_id: limited.id, model: 'm' })))
  batches.push(admitted.map((id, n) => complete(id, limited, ada.id, n, false)))
  for (let b = 0; b < 6; b++) {
    batches.push(Array.from({ length: 10 }, (_, j) => {
      const n = b * 10 + j
      return n % 2 === 0 ? complete(`open-${n}`, open, grace.id, n, true) : complete(`solo-${n}`, standalone, adminId, n, true)
    }))
  }
  const outcomes: string[] = []
  for (const [i, events] of batches.entries()) {
    const res = await call(on(i), GATEWAY, 'POST', '/api/gateway/usage', { events })
    t.equal(res.status, 200)
    outcomes.push(...(res.json.results as Json[]).map((r) => r.outcome as string))
    if (i % 3 === 1) {
      const resent = await call(on(i + 1), GATEWAY, 'POST', '/api/gateway/usage', { events })
      t.same((resent.json.results as Json[]).map((r) => r.outcome), events.map(() => 'duplicate'), `batch ${i} resent to another instance: all duplicates`)
    }
  }
  t.same([...new Set(outcomes)], ['recorded'], 'every event recorded on its first sending')
  // in parallel too: the same completions sent to all three at once count once
  const raced = [complete('race-0', open, grace.id, 99, true), complete('race-1', standalone, adminId, 98, true)]
  const racedAnswers = await Promise.all(bases.map((base) => call(base, GATEWAY, 'POST', '/api/gateway/usage', { events: raced })))
  for (const [j] of raced.entries()) {
    t.same(racedAnswers.map((a) => (a.json.results as Json[])[j]!.outcome).sort(), ['duplicate', 'duplicate', 'recorded'], `${raced[j]!.request_id} sent to three instances at once: recorded by one`)
  }
  // the window now holds K requests (completed): a new reservation anywhere is still refused
  for (let i = 0; i < 3; i++) t.equal((await verify(i, { key: limited.key, request_id: `late-${i}`, model: 'm' })).status, 429, `after the usage, instance ${i} still admits no more`)

  // caches: each instance has read the open key (advisory verifies), one disables it
  for (let i = 0; i < 3; i++) t.equal((await verify(i, { key: open.key, model: 'm' })).status, 200)
  await ok(on(0), admin, 'PATCH', `/api/admin/api-keys/${open.id as string}`)
  const disabledAt = performance.now()
  t.equal((await verify(0, { key: open.key, model: 'm' })).json.error?.type, 'key_disabled', 'the instance that changed it: at once')
  const seenAfter = await Promise.all([1, 2].map(async (i) => {
    for (;;) {
      const res = await verify(i, { key: open.key, model: 'm' })
      if (res.status === 401) return performance.now() - disabledAt
      if (performance.now() - disabledAt > 10 * CACHE_TTL_MS) return Infinity
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }))
  t.comment(`the other instances refused the disabled key after ${seenAfter.map((ms) => Math.round(ms)).join(' and ')} ms (VERIFY_CACHE_TTL_MS ${CACHE_TTL_MS})`)
  // the TTL, plus one verify's round trip on a loaded machine
  for (const ms of seenAfter) t.ok(ms <= CACHE_TTL_MS + 750, `converged within the cache's TTL (${Math.round(ms)} ms)`)

  // the books, read by an app of the test's own on the same database
  const app = await buildApp(testConfig(url))
  t.teardown(() => app.close())
  await app.ready()
  await assertConsistent(t, app, 'three instances: ')
  // and the test's own sums of what it sent
  t.equal(Number((await app.pg.query('SELECT count(*) FROM users WHERE role = \'admin\'')).rows[0].count), 1, 'three instances started at once made one first admin')
  const { rows } = await app.pg.query<{ request_id: string, api_key_id: string, user_id: string, status: string, input_tokens: number, output_tokens: number }>(
    'SELECT request_id, api_key_id, user_id, status, input_tokens, output_tokens FROM usage ORDER BY request_id')
  t.same(rows.map((r) => r.request_id), [...sent.keys()].sort(), 'one usage row per request sent, none doubled')
  for (const row of rows) {
    const want = sent.get(row.request_id)!
    t.same([row.api_key_id, row.user_id, row.status, row.input_tokens, row.output_tokens], [want.key, want.user, 'completed', want.input, want.output], row.request_id)
  }
  const keys = await app.pg.query<{ id: string, total_requests: string, total_tokens: string }>('SELECT id, total_requests::text, total_tokens::text FROM api_keys')
  for (const key of keys.rows) {
    const mine = [...sent.values()].filter((s) => s.key === key.id)
    t.same([Number(key.total_requests), Number(key.total_tokens)], [mine.length, mine.reduce((sum, s) => sum + s.input + s.output, 0)], `key ${key.id}: the requests and tokens sent`)
  }
  t.equal(Number((await app.pg.query('SELECT count(*) FROM admission_holds')).rows[0].count), 0, 'every hold settled by its completion')
  const receipts = await app.pg.query<{ n: string }>('SELECT count(*)::text AS n FROM gateway_events')
  t.equal(Number(receipts.rows[0]!.n), K + sent.size, 'one receipt per event sent (K starts, one completion per request)')
  t.comment(`whole test: ${Date.now() - started} ms`)
})
