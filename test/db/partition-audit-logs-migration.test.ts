// Migration 20261210120000_partition_audit_logs on a database holding audit rows: every
// row is there after it, unchanged, in one partition spanning the old rows' months (the
// old table attached, not copied), with the months ahead and the default beside it; the
// schema is what Prisma models; and the table then works as a partitioned one.
import { readdir } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { ensurePartitions, monthlyTable, partitionName, partitionsOf, removeBefore } from '../../src/db/partitions.js'
import { month, poolBefore } from './migrated-before.js'

const PARTITION = '20261210120000_partition_audit_logs'
const DAY = 86_400_000

const everyRow = async (pool: pg.Pool) => (await pool.query('SELECT * FROM audit_logs ORDER BY id')).rows

async function insertOld (pool: pg.Pool, times: Date[]): Promise<void> {
  for (const [i, at] of times.entries()) {
    await pool.query(`INSERT INTO audit_logs (event_type, action, principal_type, user_id, ip, request_id, method, path, status_code, success, duration_ms, metadata, error_message, created_at)
      VALUES ('admin', $1, 'admin', gen_random_uuid(), '10.0.0.1', $2, 'POST', '/api/admin/users', 201, $3, $4, $5, $6, $7)`,
    [`old.${i}`, `req-${i}`, i % 2 === 0, i, JSON.stringify({ i, nested: { at: at.toISOString() } }), i % 3 === 0 ? null : `error ${i}`, at])
  }
}

t.test(`${PARTITION}: every old row is kept, unchanged, in one partition spanning their months; the months ahead and the default beside it; no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  // twenty months back to now, with two rows on the same month's edges
  const times = [month(-20), new Date(month(-20).getTime() + 5 * DAY), new Date(month(-7).getTime() - 1), month(-7), new Date(month(-1).getTime() + 13 * DAY), new Date()]
  await insertOld(pool, times)
  const old = await everyRow(pool)
  t.equal(old.length, times.length)

  t.same(await applyMigrations(url), [PARTITION, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > PARTITION).sort()], 'the partitioning migration applied')
  t.same(await everyRow(pool), old, 'every row, every column, as it was')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')

  const legacy = partitionName('audit_logs', month(-20)) + `_${partitionName('audit_logs', month(0)).slice('audit_logs_p'.length)}`
  t.same((await partitionsOf(pool, 'audit_logs')).map((p) => [p.name, p.from, p.to]), [
    [legacy, month(-20), month(1)],
    ...[1, 2, 3].map((n) => [partitionName('audit_logs', month(n)), month(n), month(n + 1)]),
    ['audit_logs_default', null, null]
  ], 'the old table attached as one partition through the current month, the next three months, the default')
  t.same((await pool.query('SELECT DISTINCT tableoid::regclass::text AS p FROM audit_logs')).rows, [{ p: legacy }], 'the old rows stayed where they were')
  const key = await pool.query('SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary', [legacy])
  t.match(key.rows[0]?.def, /UNIQUE INDEX \S+ ON public\.\S+ USING btree \(id, created_at\)/, 'the old partition has the parent\'s key')

  // the table works as a partitioned one: a new month's rows go to their partition, a repeated (id, created_at) is refused
  await pool.query("INSERT INTO audit_logs (event_type, action, principal_type, success, created_at) VALUES ('system', 'next', 'system', true, $1)", [new Date(month(2).getTime() + DAY)])
  t.equal((await pool.query("SELECT tableoid::regclass::text AS p FROM audit_logs WHERE action = 'next'")).rows[0].p, partitionName('audit_logs', month(2)))
  await t.rejects(pool.query('INSERT INTO audit_logs (id, event_type, action, principal_type, success, created_at) SELECT id, event_type, action, principal_type, success, created_at FROM audit_logs WHERE action = $1', ['old.0']),
    { code: '23505' }, 'the key holds across the attached table')
  t.same(await ensurePartitions(pool), [], 'the app finds its months made')

  // retention on the old partition: it straddles any cutoff within its months, so its older rows go one by one
  const cutoff = new Date(month(-7).getTime())
  const removed = await removeBefore(pool, monthlyTable('audit_logs'), cutoff)
  t.same(removed, { partitions: [], rows: 3 }, 'the three rows before the cutoff deleted, nothing dropped whole')
  t.same((await everyRow(pool)).filter((r) => r.action !== 'next'), old.filter((r) => r.created_at >= cutoff))
})

t.test(`${PARTITION}: an empty audit table becomes the current month's partition`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  await applyMigrations(url)
  t.same((await partitionsOf(pool, 'audit_logs')).map((p) => p.name),
    [0, 1, 2, 3].map((n) => partitionName('audit_logs', month(n))).concat('audit_logs_default'))
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [])
})
