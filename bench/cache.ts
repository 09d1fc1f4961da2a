// npm run bench -- cache [--rows N] [--reset]: the prompt-cache analytics on the seeded
// data set (the same database as `stats`), 168-hour window, through HTTP, against the
// query Aether runs — LAG over the window's raw usage rows, then the statistics — in
// the same run. Gaps differ slightly by design: keymeter measures a window's first
// request of each group from its previous request even before the window; Aether's LAG
// starts each group inside it. The last column compares what both count.
import type pg from 'pg'
import { windowStart } from '../src/modules/cache/service.js'
import { runCases, type Case, type Row } from './stats.js'

const HOURS = 168
const COMPLETED = `status = 'completed'`

/** Aether's TTL analysis: each group's gaps inside the window by LAG, then their distribution and percentiles. */
const lagAnalysis = (column: 'user_id' | 'api_key_id', from: Date): Case['raw'] => [[`
  SELECT g, count(*) AS gaps, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS p50, percentile_cont(0.75) WITHIN GROUP (ORDER BY gap) AS p75,
         percentile_cont(0.9) WITHIN GROUP (ORDER BY gap) AS p90, avg(gap), min(gap), max(gap),
         count(*) FILTER (WHERE gap <= 5) AS w5, count(*) FILTER (WHERE gap > 5 AND gap <= 15) AS w15,
         count(*) FILTER (WHERE gap > 15 AND gap <= 30) AS w30, count(*) FILTER (WHERE gap > 30 AND gap <= 60) AS w60, count(*) FILTER (WHERE gap > 60) AS over
    FROM (SELECT ${column} AS g, extract(epoch FROM created_at - lag(created_at) OVER (PARTITION BY ${column} ORDER BY created_at)) / 60 AS gap
            FROM usage WHERE created_at >= $1 AND ${COMPLETED}) t
   WHERE gap IS NOT NULL GROUP BY g`, [from]]]

const groupsCompared = (api: Row, raw: Row[][]) => {
  const rows = raw[0]!
  const gapsApi = (api.users as Row[]).reduce((n, u) => n + Object.values(u.interval_distribution as Record<string, number>).reduce((a, b) => a + b, 0), 0)
  const gapsRaw = rows.reduce((n, r) => n + Number(r.gaps), 0)
  return `groups ${api.total_users_analyzed} / ${rows.length}; gaps ${gapsApi} / ${gapsRaw}`
}

function cases (end: Date): Case[] {
  const from = windowStart(HOURS, end)
  const day = windowStart(24, end)
  return [
    { name: 'ttl-analysis (by user)', path: `/api/admin/usage/cache-affinity/ttl-analysis?hours=${HOURS}`, raw: lagAnalysis('user_id', from), compare: groupsCompared },
    { name: 'ttl-analysis (by api_key)', path: `/api/admin/usage/cache-affinity/ttl-analysis?hours=${HOURS}&group_by=api_key`, raw: lagAnalysis('api_key_id', from), compare: groupsCompared },
    {
      name: 'hit-analysis',
      path: `/api/admin/usage/cache-affinity/hit-analysis?hours=${HOURS}`,
      // totals, savings at each row's prices, and each key's next request (LEAD) for the wasted writes
      raw: [[`
        SELECT count(*) AS requests, count(*) FILTER (WHERE cache_read_input_tokens > 0) AS hits, sum(input_tokens) AS input,
               sum(cache_read_input_tokens) AS reads, sum(cache_creation_input_tokens) AS writes, sum(cache_read_cost), sum(cache_creation_cost),
               sum(cache_read_input_tokens::numeric * (input_price_per_1m - cache_read_price_per_1m) / 1e6) AS read_saving,
               sum(CASE WHEN next_at - created_at > interval '5 minutes' OR next_at IS NULL THEN cache_creation_5m_input_tokens ELSE 0 END) AS wasted_5m,
               sum(CASE WHEN next_at - created_at > interval '1 hour' OR next_at IS NULL THEN cache_creation_1h_input_tokens ELSE 0 END) AS wasted_1h
          FROM (SELECT u.*, lead(created_at) OVER (PARTITION BY api_key_id ORDER BY created_at) AS next_at
                  FROM usage u WHERE created_at >= $1 AND status IN ('completed', 'failed', 'cancelled')) t`, [from]]],
      compare: (api, raw) => `requests ${api.total_requests} / ${raw[0]![0]!.requests}; reads ${api.total_cache_read_tokens} / ${raw[0]![0]!.reads}`
    },
    ...[24, HOURS].map((hours) => ({
      name: `interval-timeline (${hours} h, limit 10000)`,
      path: `/api/admin/usage/cache-affinity/interval-timeline?hours=${hours}&limit=10000`,
      raw: [[`
        SELECT created_at, user_id, model, gap FROM (
          SELECT created_at, user_id, model, extract(epoch FROM created_at - lag(created_at) OVER (PARTITION BY user_id ORDER BY created_at)) / 60 AS gap
            FROM usage WHERE created_at >= $1 AND ${COMPLETED}) t
         WHERE gap <= 120 ORDER BY created_at`, [hours === 24 ? day : from]]] as Case['raw'],
      compare: (api: Row, raw: Row[][]) => `points ${api.total_points} / ${raw[0]!.length}; returned ${(api.points as Row[]).length}`
    }))
  ]
}

export async function cache (args: string[]): Promise<void> {
  await runCases(args, async (_raw: pg.Client, end: Date) => cases(end))
}
