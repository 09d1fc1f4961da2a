// Migration 20261211090000_partition_candidates_and_bodies on a database holding
// candidates and bodies: every row is there after it, unchanged, each table's rows in one
// partition spanning their months (the old table attached, not copied), the months ahead
// and the default beside it; the schema is what Prisma models; the keys and the bodies'
// foreign key hold across the attached table.
import { readdir } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { ensurePartitions, partitionName, partitionsOf } from '../../src/db/partitions.js'
import { month, poolBefore } from './migrated-before.js'

const PARTITION = '20261211090000_partition_candidates_and_bodies'
const DAY = 86_400_000
const TABLES = ['request_candidates', 'usage_bodies'] as const

const everyRow = async (pool: pg.Pool) => ({
  candidates: (await pool.query('SELECT * FROM request_candidates ORDER BY id')).rows,
  bodies: (await pool.query('SELECT * FROM usage_bodies ORDER BY usage_id')).rows
})

/** A usage row per time, with two candidates and a body (the body stored a second after the request, as ingestion used to). */
async function insertOld (pool: pg.Pool, times: Date[]): Promise<void> {
  for (const [i, at] of times.entries()) {
    const { rows: [usage] } = await pool.query<{ id: string }>('INSERT INTO usage (request_id, model, created_at) VALUES ($1, \'m\', $2) RETURNING id', [`req-${i}`, at])
    for (const c of [0, 1]) {
      await pool.query(`INSERT INTO request_candidates (request_id, candidate_index, provider_id, status, status_code, error_message, latency_ms, created_at)
        VALUES ($1, $2, gen_random_uuid(), $3, $4, $5, $6, $7)`, [`req-${i}`, c, c === 0 ? 'failed' : 'success', c === 0 ? 529 : 200, c === 0 ? `busy ${i}` : null, 100 * i + c, at])
    }
    await pool.query('INSERT INTO usage_bodies (usage_id, request_headers, request_body, created_at) VALUES ($1, $2, $3, $4)',
      [usage!.id, JSON.stringify({ 'x-n': String(i) }), JSON.stringify({ i, nested: [at.toISOString()] }), new Date(at.getTime() + 1000)])
  }
}

t.test(`${PARTITION}: every old row is kept, unchanged, in one partition per table spanning their months; the months ahead and the default beside it; no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  // fourteen months back to now, with rows on a month's edges
  const times = [month(-14), new Date(month(-14).getTime() + 5 * DAY), new Date(month(-4).getTime() - 1), month(-4), new Date(month(-1).getTime() + 13 * DAY), new Date(Date.now() - 60_000)]
  await insertOld(pool, times)
  const old = await everyRow(pool)
  t.same([old.candidates.length, old.bodies.length], [2 * times.length, times.length])

  t.same(await applyMigrations(url), [PARTITION, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > PARTITION).sort()], 'the partitioning migration applied')
  // as it was, but that 20261213090000 (usage partitioned, applied after it) dates each old body by its request, as ingestion now does
  const requestTimes = new Map((await pool.query<{ id: string, created_at: Date }>('SELECT id, created_at FROM usage')).rows.map((u) => [u.id, u.created_at]))
  t.same(await everyRow(pool), { ...old, bodies: old.bodies.map((b) => ({ ...b, created_at: requestTimes.get(b.usage_id) })) }, 'every row, every column, as it was')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')

  for (const table of TABLES) {
    const legacy = `${partitionName(table, month(-14))}_${partitionName(table, month(0)).slice(`${table}_p`.length)}`
    t.same((await partitionsOf(pool, table)).map((p) => [p.name, p.from, p.to]), [
      [legacy, month(-14), month(1)],
      ...[1, 2, 3].map((n) => [partitionName(table, month(n)), month(n), month(n + 1)]),
      [`${table}_default`, null, null]
    ], `${table}: the old table attached as one partition through the current month, the next three months, the default`)
    t.same((await pool.query(`SELECT DISTINCT tableoid::regclass::text AS p FROM ${table}`)).rows, [{ p: legacy }], `${table}: the old rows stayed where they were`)
  }
  t.same(await ensurePartitions(pool), [], 'the app finds its months made')

  // the keys hold across the attached table: a candidate sent again with its request's time is refused, as is a second body of a request
  await t.rejects(pool.query(`INSERT INTO request_candidates (request_id, candidate_index, status, created_at)
    SELECT request_id, candidate_index, status, created_at FROM request_candidates WHERE request_id = 'req-0' AND candidate_index = 1`), { code: '23505' }, 'a candidate\'s unique key')
  await t.rejects(pool.query('INSERT INTO usage_bodies (usage_id, created_at) SELECT usage_id, created_at FROM usage_bodies LIMIT 1'), { code: '23505' }, 'a body\'s key')
  // the bodies' foreign key: no body without its request, and a deleted request takes its body along
  await t.rejects(pool.query('INSERT INTO usage_bodies (usage_id) VALUES (gen_random_uuid())'), { code: '23503' }, 'a body of no request is refused')
  await pool.query("DELETE FROM usage WHERE request_id = 'req-5'")
  t.equal((await everyRow(pool)).bodies.length, times.length - 1, 'the deleted request\'s body went with it')
  // the tables work as partitioned ones: a next month's rows go to its partition
  const { rows: [next] } = await pool.query<{ id: string }>("INSERT INTO usage (request_id, model, created_at) VALUES ('next', 'm', $1) RETURNING id", [new Date(month(2).getTime() + DAY)])
  await pool.query("INSERT INTO request_candidates (request_id, candidate_index, status, created_at) VALUES ('next', 0, 'success', $1)", [new Date(month(2).getTime() + DAY)])
  await pool.query('INSERT INTO usage_bodies (usage_id, created_at) VALUES ($1, $2)', [next!.id, new Date(month(2).getTime() + DAY)])
  t.same((await pool.query("SELECT tableoid::regclass::text AS p FROM request_candidates WHERE request_id = 'next'")).rows, [{ p: partitionName('request_candidates', month(2)) }])
  t.same((await pool.query('SELECT tableoid::regclass::text AS p FROM usage_bodies WHERE usage_id = $1', [next!.id])).rows, [{ p: partitionName('usage_bodies', month(2)) }])
})

t.test(`${PARTITION}: empty tables become the current month's partitions`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  await applyMigrations(url)
  for (const table of TABLES) {
    t.same((await partitionsOf(pool, table)).map((p) => p.name), [0, 1, 2, 3].map((n) => partitionName(table, month(n))).concat(`${table}_default`), table)
  }
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [])
})
