// npm run bench -- cache [--rows N] [--reset]: the prompt-cache analytics on the seeded
// data set (the same database as `stats`), 168-hour window, through HTTP, against the
// statements Aether runs for each (its UsageService in src/services/usage/service.py,
// rewritten for our schema), in the same run. Gaps differ slightly by design: keymeter
// measures a window's first request of each group from its previous request even before
// the window, Aether's LAG starts each group inside it; and keymeter's windows start on
// the hour, Aether's at now minus the hours. The last column compares what both count.
import type pg from 'pg'
import sql, { raw } from 'sql-template-tag'
import { runCases, type Case, type Row } from './stats.js'

const HOURS = 168
const HOUR_MS = 3_600_000

/** Aether's window: created_at > now - hours. */
const since = (hours: number, end: Date) => new Date(end.getTime() - hours * HOUR_MS)

/**
 * Aether's services/usage/service.py UsageService.get_ttl_analysis: each group's gaps inside the window by LAG over its completed rows,
 * then their distribution and percentiles for groups with at least two, busiest first; then, by
 * user, the users' rows by id (usage_user_id_created_at_idx / usage_api_key_id_created_at_idx
 * or usage_created_at_idx, as the planner picks).
 */
const ttlAnalysis = (column: 'user_id' | 'api_key_id', from: Date): Case['raw'] => {
  const group = raw(column)
  return [
    sql`WITH requests AS (
          SELECT ${group} AS group_id, created_at, lag(created_at) OVER (PARTITION BY ${group} ORDER BY created_at) AS previous_at
            FROM usage WHERE status = 'completed' AND created_at > ${from} AND ${group} IS NOT NULL
        ), intervals AS (
          SELECT group_id, extract(epoch FROM created_at - previous_at) / 60.0 AS minutes FROM requests WHERE previous_at IS NOT NULL
        )
        SELECT group_id, count(*) AS request_count,
               count(*) FILTER (WHERE minutes <= 5) AS within_5min, count(*) FILTER (WHERE minutes > 5 AND minutes <= 15) AS within_15min,
               count(*) FILTER (WHERE minutes > 15 AND minutes <= 30) AS within_30min, count(*) FILTER (WHERE minutes > 30 AND minutes <= 60) AS within_60min,
               count(*) FILTER (WHERE minutes > 60) AS over_60min,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes) AS p50, percentile_cont(0.75) WITHIN GROUP (ORDER BY minutes) AS p75,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes) AS p90, avg(minutes), min(minutes), max(minutes)
          FROM intervals GROUP BY group_id HAVING count(*) >= 2 ORDER BY request_count DESC`,
    ...column === 'user_id' ? [(earlier: Row[][]) => sql`SELECT * FROM users WHERE id = ANY(${earlier[0]!.map((r) => r.group_id as string)}::uuid[])`] : []
  ]
}

export const groupsCompared = (api: Row, raw: Row[][]) => {
  const rows = raw[0]!
  const gapsApi = (api.users as Row[]).reduce((n, u) => n + Object.values(u.interval_distribution as Record<string, number>).reduce((a, b) => a + b, 0), 0)
  const gapsRaw = rows.reduce((n, r) => n + Number(r.request_count), 0)
  return `groups ${api.total_users_analyzed} / ${rows.length}; gaps ${gapsApi} / ${gapsRaw}`
}

function cases (end: Date): Case[] {
  const from = since(HOURS, end)
  return [
    { name: 'ttl-analysis (by user)', path: `/api/admin/usage/cache-affinity/ttl-analysis?hours=${HOURS}`, raw: ttlAnalysis('user_id', from), compare: groupsCompared },
    { name: 'ttl-analysis (by api_key)', path: `/api/admin/usage/cache-affinity/ttl-analysis?hours=${HOURS}&group_by=api_key`, raw: ttlAnalysis('api_key_id', from), compare: groupsCompared },
    {
      name: 'hit-analysis',
      path: `/api/admin/usage/cache-affinity/hit-analysis?hours=${HOURS}`,
      // Aether's services/usage/service.py UsageService.get_cache_hit_analysis: two statements over the window's completed rows, no window function; its savings are
      // the read cost × 9 (keymeter prices each row's read, and its wasted writes, which Aether does not count) (usage_created_at_idx)
      raw: [
        sql`SELECT count(id) AS requests, sum(input_tokens) AS input, sum(cache_read_input_tokens) AS reads, sum(cache_creation_input_tokens) AS writes,
                   sum(cache_read_cost), sum(cache_creation_cost)
              FROM usage WHERE status = 'completed' AND created_at >= ${from}`,
        sql`SELECT count(id) AS hits FROM usage WHERE status = 'completed' AND created_at >= ${from} AND cache_read_input_tokens > 0`
      ],
      compare: (api, raw) => `requests ${api.total_requests} / ${raw[0]![0]!.requests}; reads ${api.total_cache_read_tokens} / ${raw[0]![0]!.reads} (Aether: completed rows only)`
    },
    ...[24, HOURS].map((hours): Case => ({
      name: `interval-timeline (${hours} h, limit 10000)`,
      path: `/api/admin/usage/cache-affinity/interval-timeline?hours=${hours}&limit=10000`,
      // Aether's services/usage/service.py UsageService.get_interval_timeline without include_user_info: every gap of at most 120 minutes by LAG per user, the first
      // `limit` in time order, cut in SQL (with include_user_info it samples each user's share instead) (usage_created_at_idx)
      raw: [sql`WITH request_intervals AS (
          SELECT u.created_at, u.user_id, u.model, lag(u.created_at) OVER (PARTITION BY u.user_id ORDER BY u.created_at) AS previous_at
            FROM usage u WHERE u.status = 'completed' AND u.created_at > ${since(hours, end)} AND u.user_id IS NOT NULL
        )
        SELECT created_at, model, extract(epoch FROM created_at - previous_at) / 60.0 AS interval_minutes FROM request_intervals
         WHERE previous_at IS NOT NULL AND extract(epoch FROM created_at - previous_at) / 60.0 <= 120
         ORDER BY created_at LIMIT ${10_000}`],
      compare: (api: Row, raw: Row[][]) => `points ${api.total_points} / ${raw[0]!.length}; returned ${(api.points as Row[]).length}`
    }))
  ]
}

export async function cache (args: string[]): Promise<void> {
  await runCases(args, async (_raw: pg.Client, end: Date) => cases(end))
}
