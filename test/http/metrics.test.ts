import { readFile } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { durationBuckets, nanoAsUsd } from '../../src/http/metrics.js'
import { scheduleCleanup } from '../../src/modules/cleanup/schedule.js'
import { countLiveHolds } from '../../src/modules/gateway/holds.js'
import { buildTestApp, GATEWAY_TOKEN, signIn, testConfig, waitUntil } from '../helper.js'
import { gateway } from '../modules/gateway/fixtures.js'
import { promtool, sample } from './metrics-exposition.js'

t.test('GET /metrics counts requests per route pattern, verifications by result and events by outcome', async (t) => {
  const { app } = await buildTestApp(t)
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/api/admin/users/00000000-0000-4000-8000-000000000000' })
  await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { key: 'sk-nope' } })
  await app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { events: [{ type: 'stream', request_id: 'r', first_byte_time_ms: 1 }] } })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  t.match(res.body, /keymeter_http_requests_total\{method="GET",route="\/health",status="200"\} 1/)
  t.match(res.body, /keymeter_http_requests_total\{method="GET",route="\/api\/admin\/users\/:id",status="401"\} 1/, 'labelled by pattern, not by id')
  t.match(res.body, /keymeter_key_verifications_total\{result="key_invalid"\} 1/)
  t.match(res.body, /keymeter_gateway_events_total\{type="stream",outcome="rejected"\} 1/)
  t.match(res.body, /keymeter_process_cpu_seconds_total/)
})

t.test('the exposition passes promtool check metrics', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha "quoted"\\')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  await g.send([{ type: 'complete', request_id: 'p', api_key_id: key.id, model: 'm', provider_id: alpha.id, status: 'completed', input_tokens: 5, output_tokens: 5 }])
  const text = (await g.app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(text, 'keymeter_usage_requests_total', { model: 'm', provider: 'alpha "quoted"\\', status: 'completed' }), 1, 'a provider name is escaped')
  const verdict = promtool(text)
  if (verdict === null) {
    t.comment('promtool is not installed here (CI installs it: .ci/run); skipped')
    return
  }
  t.equal(verdict.status, 0, `promtool: ${verdict.output}`)
  t.equal(verdict.output.trim(), '', 'no lint finding')
})

t.test('build info, the pools, the duration buckets', async (t) => {
  const { app } = await buildTestApp(t, { env: { DB_POOL_STATS: '1', DB_POOL_WAIT_MS: '2000', STATS_STATEMENT_TIMEOUT_MS: '20000', DB_TRANSACTION_TIMEOUT_MS: '15000' } })
  const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const version = (JSON.parse(await readFile('package.json', 'utf8')) as { version: string }).version
  let text = await scrape()
  t.equal(sample(text, 'keymeter_build_info', { version, node: process.version }), 1)
  t.equal(sample(text, 'keymeter_db_pool_max', { pool: 'stats' }), 1)
  t.equal(sample(text, 'keymeter_db_pool_max', { pool: 'admin' }), 6)
  t.equal(sample(text, 'keymeter_db_pool_in_use', { pool: 'verify' }), 0)

  const held = await app.pg.connect()
  const stats = await app.statsPg.connect()
  const waiting = app.statsPg.connect()
  text = await scrape()
  t.equal(sample(text, 'keymeter_db_pool_in_use', { pool: 'verify' }), 1, 'a verify connection checked out')
  t.equal(sample(text, 'keymeter_db_pool_in_use', { pool: 'stats' }), 1)
  t.equal(sample(text, 'keymeter_db_pool_waiting', { pool: 'stats' }), 1, 'a call waits for the one stats connection')
  held.release()
  stats.release()
  ;(await waiting).release()
  text = await scrape()
  t.equal(sample(text, 'keymeter_db_pool_waiting', { pool: 'stats' }), 0)
  t.equal(sample(text, 'keymeter_db_pool_in_use', { pool: 'verify' }), 0)

  // 2 s of pool wait + 20 s of statement: the last bucket is 22 s
  const bounds = [...text.matchAll(/keymeter_http_request_duration_seconds_bucket\{le="([^"]+)",method="GET",route="\/metrics"\}/g)].map((m) => m[1])
  t.same(bounds, ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '15', '22', '+Inf'])
  t.same(durationBuckets(5000), [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
  t.same([nanoAsUsd(1_500_000_000n), nanoAsUsd(5_100_000n), nanoAsUsd(12_000_000_000_250_000_000n)], [1.5, 0.0051, 12_000_000_000.25])
})

t.test('METRICS_TOKEN: a scrape without it, or with another, is refused 401; with it, answered', async (t) => {
  const token = 'scrape-token-0123456789'
  const { app } = await buildTestApp(t, { env: { METRICS_TOKEN: token } })
  const none = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(none.statusCode, 401)
  t.equal(none.json().error.type, 'unauthorized')
  t.match(none.json().error.message, /METRICS_TOKEN/)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="metrics"')
  t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer scrape-token-012345678' } })).statusCode, 401, 'one character short')
  t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: token } })).statusCode, 401, 'not as a bearer')
  const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } })
  t.equal(ok.statusCode, 200)
  t.match(ok.body, /keymeter_build_info/)
  t.throws(() => testConfig('postgresql://x/y', { METRICS_TOKEN: 'short' }), /METRICS_TOKEN: must have at least 16 characters$/, 'a short token stops the boot, unrepeated')
})

t.test('verify outcomes count reserving verifies too; live holds are read from the table', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const scrape = async () => (await g.app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal((await g.verify({ key: key.key, request_id: 'r1' })).statusCode, 200)
  t.equal((await g.verify({ key: key.key, request_id: 'r2' })).statusCode, 200)
  t.equal((await g.verify({ key: 'sk-nope', request_id: 'r3' })).statusCode, 401)
  t.equal((await g.verify({ key: key.key })).statusCode, 200)
  let text = await scrape()
  t.equal(sample(text, 'keymeter_key_verifications_total', { result: 'allowed' }), 3, 'two reserving, one advisory')
  t.equal(sample(text, 'keymeter_key_verifications_total', { result: 'key_invalid' }), 1, 'a refused reservation')
  t.equal(sample(text, 'keymeter_admission_holds_taken_total'), 2)
  t.equal(sample(text, 'keymeter_admission_holds_live'), 2)
  // settled by its completion; the gauge reuses its reading for a few seconds
  await g.send([{ type: 'complete', request_id: 'r1', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1, output_tokens: 1 }])
  t.equal(sample(await scrape(), 'keymeter_admission_holds_live'), 2, 'cached')
  t.equal((await countLiveHolds(g.app.pg)), 1, 'one live in the table')

  // a reading that fails keeps the last value; one that hangs does not hold the scrape past a second
  t.capture(Date, 'now', () => Number.MAX_SAFE_INTEGER)
  // the live holds are counted on the primary's statistics pool (a replica's count may be behind)
  const query = t.capture(g.app.pools.stats, 'query', async () => { throw new Error('database away') })
  text = await scrape()
  query.restore?.()
  t.equal(sample(text, 'keymeter_admission_holds_live'), 2, 'the last value, the failure logged')
  t.capture(Date, 'now', () => Number.MAX_SAFE_INTEGER + 1e4)
  const hanging = t.capture(g.app.pools.stats, 'query', () => new Promise(() => {}))
  const started = performance.now()
  text = await scrape()
  hanging.restore?.()
  t.ok(performance.now() - started < 3000, 'answered without the reading')
  t.equal(sample(text, 'keymeter_admission_holds_live'), 2)
})

t.test('audit rows that cannot be written are counted, behind an answer or of a refusal', async (t) => {
  const { app } = await buildTestApp(t)
  const user = await signIn(app, 'user')
  await app.prisma.$executeRawUnsafe(`ALTER TABLE audit_logs ADD CONSTRAINT refuse_me CHECK (user_id IS NULL OR user_id <> '${user.id}'::uuid) NOT VALID`)
  t.equal((await app.inject({ method: 'GET', url: '/api/users/me', headers: user.headers })).statusCode, 200)
  await app.pipeline.readAuditsWritten()
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/users', headers: user.headers })).statusCode, 403)
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/users', headers: user.headers })).statusCode, 403)
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(text, 'keymeter_audit_write_failures_total', { write: 'behind' }), 1)
  t.equal(sample(text, 'keymeter_audit_write_failures_total', { write: 'refusal' }), 2)
})

t.test('the in-process cleanup: runs by outcome and the last run\'s time', async (t) => {
  const { app, config } = await buildTestApp(t)
  const scrape = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const job = scheduleCleanup(app.prisma, app.pg, { ...config, CLEANUP_CRON: '* * * * * *' }, app.log, app.metrics)
  t.teardown(() => job?.stop())
  const before = Date.now() / 1000
  await waitUntil('a scheduled run', scrape, (text) => sample(text, 'keymeter_cleanup_runs_total', { outcome: 'success' }) !== undefined, { intervalMs: 100 })
  job?.stop()
  const text = await scrape()
  t.ok(sample(text, 'keymeter_cleanup_last_run_timestamp_seconds', { outcome: 'success' })! >= before)

  // a pool that is gone: the run fails, and says so
  const gone = new pg.Pool({ connectionString: 'postgresql://nobody@127.0.0.1:1/none' })
  await gone.end()
  const failing = scheduleCleanup(app.prisma, gone, { ...config, CLEANUP_CRON: '* * * * * *' }, app.log, app.metrics)
  t.teardown(() => failing?.stop())
  const failed = await waitUntil('a failed run', scrape, (body) => sample(body, 'keymeter_cleanup_runs_total', { outcome: 'failure' }) !== undefined, { intervalMs: 100 })
  failing?.stop()
  t.equal(sample(failed, 'keymeter_cleanup_runs_total', { outcome: 'failure' }), 1)
  t.ok(sample(failed, 'keymeter_cleanup_last_run_timestamp_seconds', { outcome: 'failure' })! >= before)
})

t.test('a bad request to /metrics or the API document gets the error body, as every route does', async (t) => {
  const { app } = await buildTestApp(t)
  for (const url of ['/metrics?skip=a%00b', '/docs/json?x=a%00b']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 400, url)
    t.match(res.json(), { error: { type: 'invalid_input', field: 'query.' }, request_id: String }, `${url}: the app's error body`)
  }
})
