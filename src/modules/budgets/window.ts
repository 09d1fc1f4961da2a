// A budget's window is a function of time, computed here and nowhere else (no reset job):
// a calendar day, week or month in the budget's IANA zone is [its local start, the next
// local start), cut by PostgreSQL's zone rules (DST included); a rolling window is the
// last duration_seconds up to now, [now − duration, now].
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'

/**
 * The window (window_start, window_end: half-open) of the budget row `alias` (its period,
 * time_zone, week_start, duration_seconds) at the instant `now`, as a subquery for a
 * CROSS JOIN LATERAL. Production passes now(); tests pass literal instants. The local
 * start is taken on the zone's wall clock, then mapped back to an instant, so a day
 * across a DST change lasts 23 or 25 hours and a half-hour zone's midnight is on :30.
 */
export function budgetWindowSql (alias: 'b', now: Fragment): Fragment {
  const b = raw(alias)
  return sql`SELECT CASE WHEN ${b}.period = 'rolling' THEN (${now})::timestamptz - make_interval(secs => ${b}.duration_seconds)
                         ELSE c.local_start AT TIME ZONE ${b}.time_zone END AS window_start,
                    CASE WHEN ${b}.period = 'rolling' THEN (${now})::timestamptz + interval '1 microsecond'
                         ELSE c.local_next AT TIME ZONE ${b}.time_zone END AS window_end
               FROM (SELECT t.local_start, t.local_start + CASE ${b}.period WHEN 'week' THEN interval '7 days' WHEN 'month' THEN interval '1 month' ELSE interval '1 day' END AS local_next
                       FROM (SELECT CASE ${b}.period
                                      WHEN 'month' THEN date_trunc('month', l.wall)
                                      -- back to the latest week_start (0 = Sunday, as extract(dow) counts)
                                      WHEN 'week' THEN date_trunc('day', l.wall) - make_interval(days => (extract(dow FROM l.wall)::int - ${b}.week_start + 7) % 7)
                                      ELSE date_trunc('day', l.wall) END AS local_start
                               FROM (SELECT (${now})::timestamptz AT TIME ZONE ${b}.time_zone AS wall) l) t) c`
}
