// The finished and executed rules: the TypeScript predicate and its SQL rendering give the same answer for every status PostgreSQL knows.
import t from 'tap'
import { buildTestApp } from '../../helper.js'
import { executedSql, finishedSql, IN_FLIGHT_STATUSES, inFlightSql, isFinished } from '../../../src/modules/accounting/rules.js'
import sql from 'sql-template-tag'

t.test('finished: every usage_status value, in TypeScript and in SQL', async (t) => {
  const { app } = await buildTestApp(t)
  const { rows } = await app.pg.query<{ status: string, finished: boolean }>(sql`
    SELECT u.status::text AS status, ${finishedSql('u')} AS finished
    FROM (SELECT unnest(enum_range(NULL::usage_status)) AS status) u`)
  t.ok(rows.length >= 5, 'the enum has its states')
  for (const row of rows) t.equal(isFinished(row.status), row.finished, row.status)
  t.same(rows.filter((row) => row.finished).map((row) => row.status).sort(), ['cancelled', 'completed', 'failed'])
})

t.test('executed: sent candidates only', async (t) => {
  const { app } = await buildTestApp(t)
  const { rows } = await app.pg.query<{ status: string, executed: boolean }>(sql`
    SELECT c.status::text AS status, ${executedSql('c')} AS executed
    FROM (SELECT unnest(enum_range(NULL::candidate_status)) AS status) c`)
  t.same(rows.filter((row) => !row.executed).map((row) => row.status).sort(), ['available', 'skipped'])
})

t.test('in flight: pending and streaming, in TypeScript and in SQL', async (t) => {
  const { app } = await buildTestApp(t)
  const { rows } = await app.pg.query<{ status: string, in_flight: boolean }>(sql`
    SELECT u.status::text AS status, ${inFlightSql('u')} AS in_flight
    FROM (SELECT unnest(enum_range(NULL::usage_status)) AS status) u`)
  t.same(rows.filter((row) => row.in_flight).map((row) => row.status).sort(), ['pending', 'streaming'])
  t.same([...IN_FLIGHT_STATUSES].sort(), ['pending', 'streaming'])
  for (const row of rows) t.notOk(row.in_flight && isFinished(row.status), `${row.status} is not both in flight and finished`)
})
