// The key state (gateway verify's read) plans only the latest months' partitions of usage,
// however many months are kept: a generic plan names every partition its reads may touch,
// and planning it on each new connection grew ~3 ms a month kept (bench/README, thirty-first session).
import pg from 'pg'
import t from 'tap'
import { addMonths, ensureMonth, monthStart, MONTHLY_TABLES, partitionName, recentRowsSql } from '../../../src/db/partitions.js'
import { keyStateQuery } from '../../../src/modules/keys/counters.js'
import { createDatabase } from '../../helper.js'

t.test('the key state\'s generic plan names no usage partition older than the month before this one', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  t.teardown(async () => { await pool.end() })
  const thisMonth = monthStart(new Date())
  for (let n = 1; n <= 6; n++) await ensureMonth(pool, MONTHLY_TABLES.find((m) => m.table === 'usage')!, addMonths(thisMonth, -n))
  const query = keyStateQuery({ hashes: ['h'] }, { timeZone: 'Asia/Kolkata', pendingTimeoutMinutes: 10, allCounters: true })
  const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN (GENERIC_PLAN) ${query.text}`)
  const plan = rows.map((row) => row['QUERY PLAN']).join('\n')
  const named = new Set(plan.match(/usage_p\d{4}_\d{2}/g))
  t.ok(named.has(partitionName('usage', thisMonth)), 'this month\'s partition is read')
  t.ok(named.has(partitionName('usage', addMonths(thisMonth, -1))), 'and the month before\'s (a window may reach into it)')
  for (let n = 2; n <= 6; n++) t.notOk(named.has(partitionName('usage', addMonths(thisMonth, -n))), `not ${partitionName('usage', addMonths(thisMonth, -n))}`)
})

t.test('the floor is the start of the UTC month before, whatever the day and hour', async (t) => {
  t.equal(recentRowsSql('u.created_at', new Date('2026-03-01T00:00:00Z')).sql, 'u.created_at >= \'2026-02-01T00:00:00.000Z\'::timestamptz')
  t.equal(recentRowsSql('created_at', new Date('2026-12-31T23:59:59.999Z')).sql, 'created_at >= \'2026-11-01T00:00:00.000Z\'::timestamptz')
  t.equal(recentRowsSql('created_at', new Date('2027-01-15T08:00:00+14:00')).sql, 'created_at >= \'2026-12-01T00:00:00.000Z\'::timestamptz', 'a UTC month: 2027-01-14T18:00Z is in January')
})
