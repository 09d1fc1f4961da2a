// Migration 20261213090000_partition_usage on a database holding usage rows and bodies:
// every usage row is there after it, unchanged, in one partition spanning their months
// (the old table attached, not copied), the months ahead and the default beside it;
// usage_requests names every row by its request id; the schema is what Prisma models; a
// body stored before bodies were dated by their request is dated by it; one row per
// request still holds in every month, and a deleted row frees its request id.
import { readdir } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { ensurePartitions, partitionName, partitionsOf } from '../../src/db/partitions.js'
import { month, poolBefore } from './migrated-before.js'

const PARTITION = '20261213090000_partition_usage'
const DAY = 86_400_000

const usageRows = async (pool: pg.Pool) => (await pool.query('SELECT * FROM usage ORDER BY id')).rows

t.test(`${PARTITION}: every usage row kept, unchanged, in one partition spanning their months; every request id named; bodies dated by their request; no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  // fourteen months back to now, with rows on a month's edges
  const times = [month(-14), new Date(month(-14).getTime() + 5 * DAY), new Date(month(-4).getTime() - 1), month(-4), new Date(month(-1).getTime() + 13 * DAY), new Date(Date.now() - 60_000)]
  const ids: string[] = []
  for (const [i, at] of times.entries()) {
    const { rows: [row] } = await pool.query<{ id: string }>(`INSERT INTO usage (request_id, model, status, input_tokens, total_cost, metadata, created_at, finished_at)
      VALUES ($1, 'm', 'completed', $2, $3, $4, $5, $6) RETURNING id`, [`req-${i}`, 100 * i, 1000 * i, JSON.stringify({ i }), at, new Date(at.getTime() + 2000)])
    ids.push(row!.id)
  }
  // bodies: req-0's dated by its request (as ingestion writes them since 20261211090000), req-1's a second later (as
  // it wrote them before), req-2's twice (stored before, then again by a later completion)
  const body = (i: number, at: Date, tag: string) => pool.query('INSERT INTO usage_bodies (usage_id, request_body, created_at) VALUES ($1, $2, $3)', [ids[i], JSON.stringify({ tag }), at])
  await body(0, times[0]!, 'dated')
  await body(1, new Date(times[1]!.getTime() + 1000), 'stored late')
  await body(2, new Date(times[2]!.getTime() + 1000), 'first, stored late')
  await body(2, times[2]!, 'again, dated')
  const old = await usageRows(pool)
  t.equal(old.length, times.length)

  t.same(await applyMigrations(url), [PARTITION, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > PARTITION).sort()], 'the partitioning migration applied')
  t.same(await usageRows(pool), old, 'every row, every column, as it was')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  t.same((await pool.query('SELECT request_id, usage_id, created_at FROM usage_requests ORDER BY request_id')).rows,
    times.map((at, i) => ({ request_id: `req-${i}`, usage_id: ids[i], created_at: at })), 'usage_requests: each request id names its row')

  const legacy = `${partitionName('usage', month(-14))}_${partitionName('usage', month(0)).slice('usage_p'.length)}`
  t.same((await partitionsOf(pool, 'usage')).map((p) => [p.name, p.from, p.to]), [
    [legacy, month(-14), month(1)],
    ...[1, 2, 3].map((n) => [partitionName('usage', month(n)), month(n), month(n + 1)]),
    ['usage_default', null, null]
  ], 'the old table attached as one partition through the current month, the next three months, the default')
  t.same((await pool.query('SELECT DISTINCT tableoid::regclass::text AS p FROM usage')).rows, [{ p: legacy }], 'the old rows stayed where they were')
  t.same(await ensurePartitions(pool), [], 'the app finds its months made')

  t.same((await pool.query(`SELECT u.request_id, b.request_body->>'tag' AS tag, b.created_at = u.created_at AS dated
    FROM usage_bodies b JOIN usage u ON u.id = b.usage_id ORDER BY 1`)).rows, [
    { request_id: 'req-0', tag: 'dated', dated: true },
    { request_id: 'req-1', tag: 'stored late', dated: true },
    { request_id: 'req-2', tag: 'again, dated', dated: true }
  ], 'every body dated by its request: a late one re-dated, a late one with a dated twin gone')

  // one row per request across the months: a second row for an old request is refused, dated in its month or any other
  for (const at of [times[1]!, month(2)]) {
    await t.rejects(pool.query("INSERT INTO usage (request_id, model, created_at) VALUES ('req-1', 'm', $1)", [at]), { code: '23505', constraint: 'usage_requests_pkey' }, `req-1 again, dated ${at.toISOString()}`)
  }
  // the bodies' foreign key on (id, created_at): a body of no request, or of a request at another time, is refused
  await t.rejects(pool.query('INSERT INTO usage_bodies (usage_id, created_at) VALUES ($1, $2)', [ids[3], times[4]]), { code: '23503' }, 'a body dated off its request')
  // a deleted request takes its body and its request id along; the id can be used again
  await pool.query("DELETE FROM usage WHERE request_id = 'req-2'")
  t.equal((await pool.query('SELECT count(*)::int AS n FROM usage_bodies WHERE usage_id = $1', [ids[2]])).rows[0].n, 0, 'its body went with it')
  t.same((await pool.query("SELECT request_id FROM usage_requests WHERE request_id = 'req-2'")).rows, [], 'its request id too')
  const next = new Date(month(2).getTime() + DAY)
  const { rows: [again] } = await pool.query<{ id: string }>("INSERT INTO usage (request_id, model, created_at) VALUES ('req-2', 'm', $1) RETURNING id", [next])
  t.same((await pool.query("SELECT tableoid::regclass::text AS p FROM usage WHERE request_id = 'req-2'")).rows, [{ p: partitionName('usage', month(2)) }], 'a next month\'s row goes to its partition')
  t.same((await pool.query("SELECT usage_id, created_at FROM usage_requests WHERE request_id = 'req-2'")).rows, [{ usage_id: again!.id, created_at: next }])
})

t.test(`${PARTITION}: an empty usage becomes the current month's partition`, async (t) => {
  const { url, pool } = await poolBefore(t, PARTITION)
  await applyMigrations(url)
  t.same((await partitionsOf(pool, 'usage')).map((p) => p.name), [0, 1, 2, 3].map((n) => partitionName('usage', month(n))).concat('usage_default'))
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [])
})
