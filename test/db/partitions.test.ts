// audit_logs partitioned by month (src/db/partitions.ts): rows land in their month's
// partition and read back in order; retention drops whole old partitions and deletes
// only the older rows of the straddling one (the rows a plain row delete would leave);
// a row whose month has no partition is kept in the default, nothing fails, and the
// month's partition made later takes it over; the months ahead are made at the app's
// start and by concurrent runs exactly once.
import pg from 'pg'
import t from 'tap'
import { ensureMonth, ensurePartitions, MONTHS_AHEAD, monthlyTable, monthStart, partitionName, partitionsOf } from '../../src/db/partitions.js'
import { writeReadAudit } from '../../src/modules/audit/service.js'
import { applyRetention, runCleanupJob } from '../../src/modules/cleanup/service.js'
import { buildTestApp, createDatabase, logCapture, signIn } from '../helper.js'

const AUDIT = monthlyTable('audit_logs')
const DAY = 86_400_000
const now = new Date()
const THIS_MONTH = monthStart(now)
/** The first instant of the UTC month `n` months from now's. */
const month = (n: number) => new Date(Date.UTC(THIS_MONTH.getUTCFullYear(), THIS_MONTH.getUTCMonth() + n, 1))

/** Each audit row tagged `tag`, by id: its time and the table it is stored in. */
async function stored (pool: pg.Pool, tag: string): Promise<Map<string, { at: Date, partition: string }>> {
  const { rows } = await pool.query<{ id: string, at: Date, partition: string }>(
    'SELECT id, created_at AS at, tableoid::regclass::text AS partition FROM audit_logs WHERE event_type = $1', [tag])
  return new Map(rows.map((r) => [r.id, { at: r.at, partition: r.partition }]))
}

const entry = (tag: string, action: string) => ({ eventType: tag, action, principalType: 'system', success: true })

/** Makes the partitions of months `from`..`to` (relative to now) that are missing. */
async function monthsBack (pool: pg.Pool, from: number, to: number): Promise<void> {
  for (let n = from; n <= to; n++) await ensureMonth(pool, AUDIT, month(n))
}

async function dropPartition (pool: pg.Pool, name: string): Promise<void> {
  await pool.query(`ALTER TABLE audit_logs DETACH PARTITION "${name}"`)
  await pool.query(`DROP TABLE "${name}"`)
}

t.test('rows of several months land in their months\' partitions and the audit API lists them newest first, across partitions', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  await monthsBack(app.pg, -13, -1)
  // a row on a month's first millisecond belongs to that month, one a millisecond earlier to the month before
  const times = [month(0).getTime() + DAY, month(-1).getTime(), month(-1).getTime() - 1, month(-5).getTime() + 3 * DAY, month(-13).getTime() + 7 * DAY, month(0).getTime() + 2 * DAY]
  for (const [i, at] of times.entries()) await writeReadAudit(app.pg, entry('months', `a${i}`), new Date(at))

  const rows = await stored(app.pg, 'months')
  t.same([...rows.values()].map((r) => [r.at.getTime(), r.partition]).sort(), times.map((at) => [at, partitionName('audit_logs', monthStart(new Date(at)))]).sort(),
    'each row in the partition of its UTC month')

  const list = async (query: string) => {
    const res = await app.inject({ method: 'GET', url: `/api/admin/audit-logs?event_type=months&${query}`, headers: admin.headers })
    t.equal(res.statusCode, 200)
    return res.json() as { items: Array<{ action: string, created_at: string }>, total: number }
  }
  const newestFirst = times.map((at, i) => ({ at, action: `a${i}` })).sort((a, b) => b.at - a.at)
  const all = await list('limit=100')
  t.same(all.items.map((i) => [i.action, i.created_at]), newestFirst.map((r) => [r.action, new Date(r.at).toISOString()]), 'newest first')
  t.equal(all.total, times.length)
  t.same((await list('limit=2&offset=2')).items.map((i) => i.action), newestFirst.slice(2, 4).map((r) => r.action), 'a page spanning partitions')
})

t.test('retention drops the partitions wholly past the cutoff and deletes only the straddling one\'s older rows: the rows a row delete would leave', async (t) => {
  const { app } = await buildTestApp(t)
  await monthsBack(app.pg, -15, -1)
  // every 9 days back to 520 days: the oldest months have no partition and sit in the default
  const ages = Array.from({ length: 58 }, (_, i) => i * 9 * DAY + 3_600_000)
  const cutoff = new Date(now.getTime() - 365 * DAY)
  // and about the cutoff: the straddling month's first instant, a millisecond before the cutoff, on it (kept: older only goes), an hour after
  const times = [...ages.map((age) => now.getTime() - age), monthStart(cutoff).getTime(), cutoff.getTime() - 1, cutoff.getTime(), cutoff.getTime() + 3_600_000]
  for (const [i, at] of times.entries()) await writeReadAudit(app.pg, entry('aged', `r${i}`), new Date(at))
  const before = await stored(app.pg, 'aged')
  t.ok([...before.values()].some((r) => r.partition === 'audit_logs_default'), 'some rows in the default')

  // independently: a row goes when it is older than the cutoff; a month's partition goes whole when its month ends by the cutoff
  const kept = [...before].filter(([, r]) => r.at >= cutoff).map(([id]) => id).sort()
  const wholeMonths = Array.from({ length: 15 }, (_, i) => -1 - i).filter((n) => month(n + 1) <= cutoff).map((n) => partitionName('audit_logs', month(n)))
  const straddling = partitionName('audit_logs', monthStart(cutoff))
  t.ok(wholeMonths.length >= 2, `${wholeMonths.join(', ')} wholly past the cutoff`)
  t.ok([...before.values()].some((r) => r.partition === straddling && r.at < cutoff) && [...before.values()].some((r) => r.partition === straddling && r.at >= cutoff),
    'the straddling partition holds rows on both sides')

  // two runs at once: the advisory lock makes one drop each partition, the other finds it gone
  const runs = await Promise.all([0, 1].map(() => applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 0, auditDays: 365 }, now)))
  t.equal(runs[0]!.auditRows + runs[1]!.auditRows, before.size - kept.length, 'every removed row counted once')
  t.equal(runs[0]!.auditPartitions + runs[1]!.auditPartitions, wholeMonths.length, 'each partition dropped once')

  const after = await stored(app.pg, 'aged')
  t.same([...after.keys()].sort(), kept, 'exactly the rows at or after the cutoff are left')
  const names = (await partitionsOf(app.pg, 'audit_logs')).map((p) => p.name)
  t.same(wholeMonths.filter((name) => names.includes(name)), [], 'the whole months are gone')
  t.ok(names.includes(straddling), 'the straddling partition stays')
  t.ok([...after.values()].some((r) => r.partition === straddling), 'with its newer rows')
  t.same(await applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 0, auditDays: 365 }, now), { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 0, bodyPartitions: 0, auditRows: 0, auditPartitions: 0, windowSeconds: 0 }, 'a second run finds nothing')
})

t.test('a partition whose lock is not had within the timeout is left to the row delete: the same rows go, and the next run drops it empty', async (t) => {
  const { app } = await buildTestApp(t)
  await monthsBack(app.pg, -15, -12)
  const old = month(-14)
  await writeReadAudit(app.pg, entry('held', 'old'), new Date(old.getTime() + DAY))
  await writeReadAudit(app.pg, entry('held', 'new'), now)
  // a long read of the audit log holds ACCESS SHARE on the parent and its partitions: DETACH cannot have its lock
  const reader = await app.pg.connect()
  await reader.query('BEGIN')
  await reader.query('SELECT count(*) FROM audit_logs')
  let retention: Awaited<ReturnType<typeof applyRetention>>
  try {
    retention = await applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 0, auditDays: 365 }, now)
  } finally {
    await reader.query('COMMIT')
    reader.release()
  }
  t.same(retention, { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 0, bodyPartitions: 0, auditRows: 1, auditPartitions: 0, windowSeconds: 0 }, 'the old row deleted one by one, no partition dropped')
  t.same([...(await stored(app.pg, 'held')).values()].map((r) => r.at), [now], 'the rows a row delete leaves')
  const names = async () => (await partitionsOf(app.pg, 'audit_logs')).map((p) => p.name)
  t.ok((await names()).includes(partitionName('audit_logs', old)), 'the partition stays, empty')
  const next = await applyRetention(app.prisma, app.pg, { usageDays: 0, bodyDays: 0, auditDays: 365 }, now)
  t.ok(next.auditPartitions >= 1 && next.auditRows === 0, 'the next run drops it (and any other past month), counting no row')
  t.notOk((await names()).includes(partitionName('audit_logs', old)))
})

t.test('a row whose month has no partition is kept in the default and fails nothing; the month\'s partition made later takes it over', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  // the current month's partition is gone (a server that ran past its months ahead)
  await dropPartition(app.pg, partitionName('audit_logs', month(0)))
  const res = await app.inject({ method: 'POST', url: '/api/admin/users', headers: admin.headers, payload: { username: 'made-meanwhile', password: 'made-meanwhile-password' } })
  t.equal(res.statusCode, 201, 'the change and its audit row commit')
  await writeReadAudit(app.pg, entry('orphan', 'far-future'), month(MONTHS_AHEAD + 3))
  await app.prisma.auditLog.create({ data: { ...entry('orphan', 'far-past'), createdAt: month(-30) } })

  const where = async () => (await app.pg.query<{ action: string, partition: string }>(
    "SELECT action, tableoid::regclass::text AS partition FROM audit_logs WHERE action IN ('users.create', 'far-future', 'far-past') ORDER BY action")).rows
  t.same(await where(), [{ action: 'far-future', partition: 'audit_logs_default' }, { action: 'far-past', partition: 'audit_logs_default' }, { action: 'users.create', partition: 'audit_logs_default' }])
  const all = (await app.pg.query('SELECT id, created_at FROM audit_logs ORDER BY id')).rows

  t.same(await ensurePartitions(app.pg, now), [partitionName('audit_logs', month(0))], 'the current month made again')
  t.same(await where(), [{ action: 'far-future', partition: 'audit_logs_default' }, { action: 'far-past', partition: 'audit_logs_default' }, { action: 'users.create', partition: partitionName('audit_logs', month(0)) }],
    'the month\'s rows moved out of the default')
  t.equal(await ensureMonth(app.pg, AUDIT, month(-30)), partitionName('audit_logs', month(-30)))
  t.same((await app.pg.query('SELECT id, created_at FROM audit_logs ORDER BY id')).rows, all, 'no row lost or changed')
  t.equal((await app.pg.query("SELECT tableoid::regclass::text AS p FROM audit_logs WHERE action = 'far-past'")).rows[0].p, partitionName('audit_logs', month(-30)))
})

t.test('the months ahead: made at the app\'s start, once each by runs at once, and a run with nothing missing makes nothing', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 6 })
  t.teardown(() => pool.end())
  const ahead = Array.from({ length: MONTHS_AHEAD + 1 }, (_, n) => partitionName('audit_logs', month(n)))
  for (const name of ahead) await dropPartition(pool, name)
  const present = async () => (await partitionsOf(pool, 'audit_logs')).map((p) => p.name).filter((name) => ahead.includes(name)).sort()
  t.same(await present(), [])

  const { app } = await buildTestApp(t, { url })
  t.same(await present(), [...ahead].sort(), 'the app\'s start made the current month and the next ones')

  for (const name of ahead) await dropPartition(pool, name)
  const runs = await Promise.all([0, 1, 2].map(() => ensurePartitions(pool, now)))
  t.same(runs.flat().sort(), [...ahead].sort(), 'three runs at once made each month once, without an error')
  t.same(await ensurePartitions(app.pg, now), [], 'idempotent')
  t.same(await present(), [...ahead].sort())
})

t.test('a start that cannot make its months logs it and serves on: the default partition takes their rows', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  const name = partitionName('audit_logs', month(0))
  await dropPartition(pool, name)
  // a stray table under the month's name: the creation fails
  await pool.query(`CREATE TABLE "${name}" (x int)`)
  const log = logCapture()
  const { app } = await buildTestApp(t, { url, logStream: log.stream })
  t.match(log.text(), /partitions ahead not created/)
  const admin = await signIn(app, 'admin')
  t.equal((await app.inject({ method: 'GET', url: '/api/admin/users', headers: admin.headers })).statusCode, 200)
  t.equal((await pool.query("SELECT tableoid::regclass::text AS p FROM audit_logs WHERE event_type = 'auth' LIMIT 1")).rows[0]?.p, 'audit_logs_default', 'the sign-in\'s row kept in the default')
  t.throws(() => monthlyTable('usage_key_seconds'), /not partitioned by month/)
})

t.test('the cleanup run makes a missing month ahead and says so', async (t) => {
  const { app, config } = await buildTestApp(t)
  const name = partitionName('audit_logs', month(MONTHS_AHEAD))
  await dropPartition(app.pg, name)
  t.equal(await runCleanupJob(app.prisma, app.pg, config), `disabled 0, deleted 0, created partitions ${name}`)
  t.ok((await partitionsOf(app.pg, 'audit_logs')).some((p) => p.name === name))
})
