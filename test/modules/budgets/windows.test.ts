// A budget's window is a function of time: budgetWindowSql evaluated by PostgreSQL at
// literal instants. Every expected bound is worked out by hand from the zone's rules
// (offsets and DST dates in the comments), not by the code under test.
import pg from 'pg'
import sql from 'sql-template-tag'
import t from 'tap'
import { budgetWindowSql } from '../../../src/modules/budgets/window.js'
import { createDatabase } from '../../helper.js'

interface Budget { period: 'day' | 'week' | 'month' | 'rolling', time_zone?: string, week_start?: number, duration_seconds?: number }

const ISO = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'

t.test('calendar and rolling windows at fixed instants', async (t) => {
  const client = new pg.Client({ connectionString: await createDatabase(t, { migrated: false }) })
  await client.connect()
  t.teardown(() => client.end())

  /** [window_start, window_end) of `budget` at `now`, as UTC ISO strings to the microsecond */
  const windowAt = async (budget: Budget, now: string): Promise<[string, string]> => {
    const query = sql`SELECT to_char(w.window_start AT TIME ZONE 'UTC', ${ISO}) AS start, to_char(w.window_end AT TIME ZONE 'UTC', ${ISO}) AS end
      FROM (SELECT ${budget.period}::text AS period, ${budget.time_zone ?? null}::text AS time_zone, ${budget.week_start ?? null}::int AS week_start,
                   ${budget.duration_seconds ?? null}::int AS duration_seconds) b
      CROSS JOIN LATERAL (${budgetWindowSql('b', sql`${now}::timestamptz`)}) w`
    const { rows } = await client.query<{ start: string, end: string }>(query)
    return [rows[0]!.start, rows[0]!.end]
  }
  const us = (iso: string) => iso.replace('Z', '.000000Z')

  const cases: Array<[string, Budget, string, [string, string]]> = [
    // New York: EST (−5) until 2026-03-08 02:00, then EDT (−4): that day lasts 23 hours
    ['NY day on the spring-forward day', { period: 'day', time_zone: 'America/New_York' }, '2026-03-08T12:00:00Z', ['2026-03-08T05:00:00Z', '2026-03-09T04:00:00Z']],
    ['NY day a millisecond before its midnight', { period: 'day', time_zone: 'America/New_York' }, '2026-03-08T04:59:59.999Z', ['2026-03-07T05:00:00Z', '2026-03-08T05:00:00Z']],
    ['NY day at its midnight', { period: 'day', time_zone: 'America/New_York' }, '2026-03-08T05:00:00Z', ['2026-03-08T05:00:00Z', '2026-03-09T04:00:00Z']],
    // EDT until 2026-11-01 02:00, then EST: that day lasts 25 hours
    ['NY day on the fall-back day', { period: 'day', time_zone: 'America/New_York' }, '2026-11-01T12:00:00Z', ['2026-11-01T04:00:00Z', '2026-11-02T05:00:00Z']],
    // Berlin: CET (+1) until 2026-03-29 02:00, CEST (+2) until 2026-10-25 03:00
    ['Berlin day, spring', { period: 'day', time_zone: 'Europe/Berlin' }, '2026-03-29T10:00:00Z', ['2026-03-28T23:00:00Z', '2026-03-29T22:00:00Z']],
    ['Berlin day, autumn', { period: 'day', time_zone: 'Europe/Berlin' }, '2026-10-25T10:00:00Z', ['2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z']],
    // Kolkata: +05:30, no DST: midnight is 18:30 UTC the day before
    ['Kolkata day', { period: 'day', time_zone: 'Asia/Kolkata' }, '2026-10-15T12:00:00Z', ['2026-10-14T18:30:00Z', '2026-10-15T18:30:00Z']],
    ['Kolkata day a millisecond before its midnight', { period: 'day', time_zone: 'Asia/Kolkata' }, '2026-10-15T18:29:59.999Z', ['2026-10-14T18:30:00Z', '2026-10-15T18:30:00Z']],
    ['Kolkata day at its midnight', { period: 'day', time_zone: 'Asia/Kolkata' }, '2026-10-15T18:30:00Z', ['2026-10-15T18:30:00Z', '2026-10-16T18:30:00Z']],
    // 2026-03-08 is a Sunday (2026-03-01 is one); weeks around the NY change
    ['NY week from Monday (default 1)', { period: 'week', time_zone: 'America/New_York', week_start: 1 }, '2026-03-08T12:00:00Z', ['2026-03-02T05:00:00Z', '2026-03-09T04:00:00Z']],
    ['NY week from Sunday', { period: 'week', time_zone: 'America/New_York', week_start: 0 }, '2026-03-08T12:00:00Z', ['2026-03-08T05:00:00Z', '2026-03-15T04:00:00Z']],
    ['NY week from Sunday, a millisecond before it starts', { period: 'week', time_zone: 'America/New_York', week_start: 0 }, '2026-03-08T04:59:59.999Z', ['2026-03-01T05:00:00Z', '2026-03-08T05:00:00Z']],
    ['NY week from Wednesday', { period: 'week', time_zone: 'America/New_York', week_start: 3 }, '2026-03-08T12:00:00Z', ['2026-03-04T05:00:00Z', '2026-03-11T04:00:00Z']],
    ['NY week from Saturday', { period: 'week', time_zone: 'America/New_York', week_start: 6 }, '2026-03-08T12:00:00Z', ['2026-03-07T05:00:00Z', '2026-03-14T04:00:00Z']],
    // 2026-10-25 is a Sunday too: the Berlin week from Monday 2026-10-19 (CEST) to Monday 2026-10-26 (CET)
    ['Berlin week across the autumn change', { period: 'week', time_zone: 'Europe/Berlin', week_start: 1 }, '2026-10-25T10:00:00Z', ['2026-10-18T22:00:00Z', '2026-10-25T23:00:00Z']],
    ['NY month across spring-forward', { period: 'month', time_zone: 'America/New_York' }, '2026-03-08T12:00:00Z', ['2026-03-01T05:00:00Z', '2026-04-01T04:00:00Z']],
    ['Berlin October, its last second', { period: 'month', time_zone: 'Europe/Berlin' }, '2026-10-31T22:59:59Z', ['2026-09-30T22:00:00Z', '2026-10-31T23:00:00Z']],
    ['Berlin November, from its first instant', { period: 'month', time_zone: 'Europe/Berlin' }, '2026-10-31T23:00:00Z', ['2026-10-31T23:00:00Z', '2026-11-30T23:00:00Z']],
    ['Kolkata February, its last second', { period: 'month', time_zone: 'Asia/Kolkata' }, '2026-02-28T18:29:59Z', ['2026-01-31T18:30:00Z', '2026-02-28T18:30:00Z']],
    ['Kolkata March, from its first instant', { period: 'month', time_zone: 'Asia/Kolkata' }, '2026-02-28T18:30:00Z', ['2026-02-28T18:30:00Z', '2026-03-31T18:30:00Z']],
    ['UTC day', { period: 'day', time_zone: 'UTC' }, '2026-12-31T23:59:59Z', ['2026-12-31T00:00:00Z', '2027-01-01T00:00:00Z']]
  ]
  for (const [label, budget, now, [start, end]] of cases) {
    t.same(await windowAt(budget, now), [us(start), us(end)], `${label} at ${now}`)
  }

  // rolling: the last duration_seconds up to now, now included (the exclusive end is a microsecond after it)
  t.same(await windowAt({ period: 'rolling', duration_seconds: 3600 }, '2026-03-08T06:30:00Z'), ['2026-03-08T05:30:00.000000Z', '2026-03-08T06:30:00.000001Z'])
  t.same(await windowAt({ period: 'rolling', duration_seconds: 90 }, '2026-11-01T06:00:30Z'), ['2026-11-01T05:59:00.000000Z', '2026-11-01T06:00:30.000001Z'],
    'a rolling window ignores zones and DST')
})
