// pipeline(): several statements in one round trip, their results in order; a failing
// statement rejects the whole pipeline and leaves the connection usable, its statements
// parsed again on their next use.
import pg from 'pg'
import sql from 'sql-template-tag'
import t, { type Test } from 'tap'
import { pipeline } from '../../src/db/pipeline.js'
import { createDatabase } from '../helper.js'

async function client (t: Test): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: await createDatabase(t, { migrated: false }) })
  await db.connect()
  t.teardown(() => db.end())
  return db
}

t.test('the statements run in order, in one session, each result in its place', async (t) => {
  const db = await client(t)
  await db.query('CREATE TABLE p (n int PRIMARY KEY, label text)')
  const results = await pipeline(db, [
    sql`BEGIN`,
    sql`INSERT INTO p (n, label) SELECT * FROM unnest(${[1, 2, 3]}::int[], ${['a', 'b', null]}::text[])`,
    sql`SELECT n, label FROM p WHERE n >= ${2} ORDER BY n`,
    sql`SELECT count(*)::int AS n FROM p`,
    sql`COMMIT`
  ])
  t.equal(results.length, 5)
  t.equal(results[1]!.rowCount, 3, 'the insert\'s count')
  t.same(results[2]!.rows, [{ n: 2, label: 'b' }, { n: 3, label: null }], 'the parameters bound per statement')
  t.same(results[3]!.rows, [{ n: 3 }], 'a later statement sees the earlier ones\' writes')
  t.same((await db.query('SELECT count(*)::int AS n FROM p')).rows, [{ n: 3 }], 'committed')
  t.same(await pipeline(db, []), [], 'nothing to send, nothing sent')
  const one = await pipeline(db, [sql`SELECT ${7}::int AS seven`])
  t.same(one[0]!.rows, [{ seven: 7 }], 'one statement: a list of one result')
})

t.test('a failing statement rejects the pipeline; the rest is skipped and the connection stays usable', async (t) => {
  const db = await client(t)
  await db.query('CREATE TABLE q (n int PRIMARY KEY)')
  const statements = (n: number) => [
    sql`BEGIN`,
    sql`INSERT INTO q (n) VALUES (${n})`,
    sql`INSERT INTO q (n) VALUES (${n})`, // the same key twice: unique_violation
    sql`INSERT INTO q (n) VALUES (${n + 1})`,
    sql`COMMIT`
  ]
  await t.rejects(pipeline(db, statements(1)), { code: '23505' }, 'the first error is the pipeline\'s')
  await db.query('ROLLBACK')
  t.same((await db.query('SELECT count(*)::int AS n FROM q')).rows, [{ n: 0 }], 'nothing after the error ran, nothing before it committed')
  // the same texts again: had their names stayed half-parsed, this would fail with "prepared statement already exists" or "does not exist"
  await t.rejects(pipeline(db, statements(5)), { code: '23505' })
  await db.query('ROLLBACK')
  const ok = await pipeline(db, [sql`BEGIN`, sql`INSERT INTO q (n) VALUES (${10})`, sql`COMMIT`])
  t.equal(ok[1]!.rowCount, 1, 'the same insert text runs again after the failures')
  t.same((await db.query('SELECT n FROM q')).rows, [{ n: 10 }])
})

t.test('a statement that fails to parse rejects with its error and is parsed afresh next time', async (t) => {
  const db = await client(t)
  await t.rejects(pipeline(db, [sql`SELECT nope FROM nowhere WHERE x = ${1}`]), { code: '42P01' }, 'undefined table')
  await db.query('CREATE TABLE nowhere (nope int, x int)')
  await db.query('INSERT INTO nowhere VALUES (4, 1)')
  const [result] = await pipeline(db, [sql`SELECT nope FROM nowhere WHERE x = ${1}`])
  t.same(result!.rows, [{ nope: 4 }], 'the same text, now valid, runs')
  const again = await pipeline(db, [sql`SELECT nope FROM nowhere WHERE x = ${1}`])
  t.same(again[0]!.rows, [{ nope: 4 }], 'and again, from its parsed statement')
})
