// STATS_STATEMENT_TIMEOUT_MS: a statistics query past the limit is cancelled by
// PostgreSQL itself (not left running after the client gave up) and answered 503
// query_timeout. The query is made slow for real: another session holds locks on
// the tables every read waits for, and lock waits count toward statement_timeout.
import pg from 'pg'
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'

t.test('a statistics query past STATS_STATEMENT_TIMEOUT_MS is cancelled server-side and answered 503', async (t) => {
  const g = await gateway(t, { STATS_STATEMENT_TIMEOUT_MS: '300' })
  const locker = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
  await locker.connect()
  t.teardown(() => locker.end())

  const fine = await g.app.inject({ method: 'GET', url: '/api/admin/usage/records', headers: g.admin.headers })
  t.equal(fine.statusCode, 200, 'unblocked, it answers')

  await locker.query('BEGIN')
  // usage, and the tables the interval timeline reads instead of it
  await locker.query('LOCK TABLE usage, cache_points_hourly, cache_timeline_points IN ACCESS EXCLUSIVE MODE')
  const started = Date.now()
  for (const url of ['/api/admin/usage/records', '/api/admin/usage/stats', '/api/admin/usage/heatmap?timezone=Asia/Kolkata', '/api/admin/usage/cache-affinity/interval-timeline']) {
    const res = await g.app.inject({ method: 'GET', url, headers: g.admin.headers })
    t.equal(res.statusCode, 503, `${url}: 503`)
    t.match(res.json(), { error: { type: 'query_timeout', message: /cancelled/ }, request_id: /./ }, `${url}: the error body says why`)
  }
  t.ok(Date.now() - started < 10_000, 'each answered after about the limit, not when the lock went away')
  // nothing of the statistics still waits on the lock: PostgreSQL cancelled the statements (another
  // session may be busy meanwhile, e.g. an audit row written behind an answer, but not blocked on the lock)
  const waiting = await g.app.pg.query(`SELECT query FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> $1 AND state = 'active' AND wait_event_type = 'Lock'`, [(locker as unknown as { processID: number }).processID])
  t.same(waiting.rows, [], 'no statement left waiting on the lock')
  await locker.query('ROLLBACK')

  const again = await g.app.inject({ method: 'GET', url: '/api/admin/usage/stats', headers: g.admin.headers })
  t.equal(again.statusCode, 200, 'the lock gone, the same pool answers again')
})
