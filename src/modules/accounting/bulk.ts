// The rollups of rows loaded in bulk (the seed), by GROUP BY, as ingestion's deltas
// would have left them: every statement is derived from model.ts. The tables with no
// finer rollup are summed from the raw usage rows (a range of ids at a time, so loads
// may run in parallel on disjoint hours); the others regroup their finer rollup (exact:
// integer sums regroup freely), which is far smaller than the raw rows.
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { ATTEMPTS, DIMENSIONS, histogramsOf, keyColumns, regroupedColumn, rollup, ROLLUPS, summedColumns, type Rollup, type SummedColumn } from './model.js'
import { tierPricesJoinSql } from './pricing.js'
import { executedSql, finishedSql, inFlightSql, NIL_UUID, SETTLED_HOURS_CHANGED } from './rules.js'
import { keyTenantSql } from './tenant.js'

const run = async (db: Sql, query: Fragment) => db.query(query.text, query.values)

const positions = (count: number) => raw(Array.from({ length: count }, (_v, i) => i + 1).join(', '))

/**
 * INSERT of a rollup's rows summed from the finished usage rows (those whose id is in
 * [ids.from, ids.to) when given), into the table or a copy of it (`into`).
 */
export function fromUsageSql (r: Rollup, ids?: { from: string, to: string }, into: string = r.table): Fragment {
  const columns = summedColumns(r)
  return sql`
    INSERT INTO ${raw(into)} (${raw([...keyColumns(r), ...columns.map((c) => c.name)].join(', '))})
    ${rawGroupSql(r, columns, ids)}`
}

/** A rollup's key columns and `columns` summed over the finished usage rows (those whose id is in [ids.from, ids.to) when given). */
function rawGroupSql (r: Rollup, columns: SummedColumn[], ids?: { from: string, to: string }): Fragment {
  const range = ids === undefined ? empty : sql`id >= ${ids.from}::uuid AND id < ${ids.to}::uuid AND `
  // the rows' tiers only for what reads their unit prices: the join costs the bulk load's largest scans
  const prices = columns.some((c) => c.priced) ? raw(tierPricesJoinSql('usage')) : empty
  return sql`SELECT ${raw([...r.grain.map((name) => DIMENSIONS[name].raw), ...columns.map((c) => c.aggregate)].join(', '))}
    FROM usage ${prices} WHERE ${range}${finishedSql()}${r.only === undefined ? empty : raw(` AND ${r.only.raw()}`)}
    GROUP BY ${positions(r.grain.length)} ORDER BY ${positions(r.grain.length)}`
}

/** A regrouping's columns: every measure, and the histograms its source keeps too (histogramsFromUsageSql counts the others). */
const regroupable = (r: Rollup, source: Rollup): SummedColumn[] =>
  summedColumns(r).filter((c) => !(histogramsOf(r) as readonly string[]).includes(c.name) || (histogramsOf(source) as readonly string[]).includes(c.name))

/** INSERT of a rollup's rows summed from the finer rollup it regroups. */
export function regroupSql (r: Rollup, source: Rollup): Fragment {
  const filters = r.only !== undefined && source.only !== r.only ? [raw(r.only.rollup())] : []
  const columns = regroupable(r, source)
  return sql`
    INSERT INTO ${raw(r.table)} (${raw([...keyColumns(r), ...columns.map((c) => c.name)].join(', '))})
    ${regroupedSelect(r, source, filters, source.table, columns)}`
}

/**
 * The histograms of a regrouped rollup its source does not keep, counted from the raw
 * rows into the rows regroupSql wrote (every such row has its group there); null: none.
 */
export function histogramsFromUsageSql (r: Rollup, source: Rollup): Fragment | null {
  const kept = new Set(regroupable(r, source).map((c) => c.name))
  const missing = summedColumns(r).filter((c) => !kept.has(c.name))
  if (missing.length === 0) return null
  const keys = keyColumns(r)
  return sql`
    UPDATE ${raw(r.table)} t SET ${raw(missing.map((c) => `${c.name} = s.${c.name}`).join(', '))}
      FROM (${rawGroupSql(r, missing)}) s(${raw([...keys, ...missing.map((c) => c.name)].join(', '))})
     WHERE ${raw(keys.map((k) => `t.${k} = s.${k}`).join(' AND '))}`
}

/** A rollup's key columns and summed columns (default: all) over a finer rollup's rows (or a CTE of them, `from`). */
export function regroupedSelect (r: Rollup, source: Rollup, filters: Fragment[] = [], from: string = source.table, summed: SummedColumn[] = summedColumns(r)): Fragment {
  const columns = [...r.grain.map((name) => `${regroupedColumn(name, source)} AS ${DIMENSIONS[name].column}`), ...summed.map((c) => `${c.sum(c.name)} AS ${c.name}`)]
  return sql`SELECT ${raw(columns.join(', '))}
    FROM ${raw(from)}${filters.length === 0 ? empty : sql` WHERE ${join(filters, ' AND ')}`}
    GROUP BY ${positions(r.grain.length)} ORDER BY ${positions(r.grain.length)}`
}

/** The rollups summed from raw rows: a chunk's whole hours, so no other chunk touches their rows. */
export async function rollupUsageRange (db: Sql, ids: { from: string, to: string }): Promise<void> {
  for (const r of ROLLUPS) if (r.regroups === undefined) await run(db, fromUsageSql(r, ids))
  await run(db, windowSecondsSql(sql`id >= ${ids.from}::uuid AND id < ${ids.to}::uuid`))
}

/** The rate window's per-second counts of rows loaded in flight (the seed adds them after the finished ones). */
export async function rollupInFlightSeconds (db: Sql): Promise<void> {
  await run(db, windowSecondsSql(inFlightSql()))
}

/**
 * The rate window's per-second counts (usage_key_seconds) of the rows `which` picks that
 * are recent enough for a window to read (the last two days; cleanup deletes older):
 * every status, as ingestion's RollupDeltas would have added them.
 */
const windowSecondsSql = (which: Fragment): Fragment => sql`
  INSERT INTO usage_key_seconds AS t (api_key_id, second, tenant_id, requests, tokens)
  SELECT s.api_key_id, s.second, ${keyTenantSql('k')}, s.requests, s.tokens
    FROM (SELECT api_key_id, date_trunc('second', created_at) AS second, count(*) AS requests, sum(total_tokens) AS tokens
            FROM usage
           WHERE ${which} AND api_key_id IS NOT NULL AND created_at > now() - interval '2 days'
           GROUP BY 1, 2) s JOIN api_keys k ON k.id = s.api_key_id
   ORDER BY 1, 2
  ON CONFLICT (api_key_id, second, tenant_id) DO UPDATE SET requests = t.requests + EXCLUDED.requests, tokens = t.tokens + EXCLUDED.tokens`

/** The regrouped rollups, each after the one it regroups. */
function regroupOrder (): Rollup[] {
  const done = new Set<string>(ROLLUPS.filter((r) => r.regroups === undefined).map((r) => r.table))
  const order: Rollup[] = []
  for (;;) {
    const pending = ROLLUPS.filter((r) => !done.has(r.table))
    if (pending.length === 0) return order
    const next = pending.find((r) => done.has(r.regroups!))
    if (next === undefined) throw new Error('the rollup model regroups in a cycle')
    order.push(next)
    done.add(next.table)
  }
}

// a provider attempts row kept: one whose sums are not all zero
const ATTEMPTS_NOT_ZERO = raw('sum(attempts) <> 0 OR sum(latency_sum_ms) <> 0 OR sum(latency_count) <> 0 OR sum(fallbacks) <> 0')

/**
 * The regrouped rollups, once every chunk's raw rollups are in; then the provider
 * attempts: the executed candidates on their providers, plus each finished request's
 * implicit attempt on its provider (the rollup's requests) less those of the requests
 * with an executed candidate (one usage (request_id) probe each), and the fallbacks —
 * what ingestion's RollupDeltas.sent/change would have written, per quarter-hour, and the hours from those.
 */
export async function rollupRegrouped (db: Sql): Promise<void> {
  for (const r of regroupOrder()) {
    await run(db, regroupSql(r, rollup(r.regroups!)))
    const histograms = histogramsFromUsageSql(r, rollup(r.regroups!))
    if (histograms !== null) await run(db, histograms)
  }
  const measures = raw(ATTEMPTS.measures.join(', '))
  const quarterOf = (column: string) => raw(`date_bin('15 minutes', ${column}, timestamptz '2000-01-01 00:00:00+00')`)
  await run(db, sql`
    INSERT INTO ${raw(ATTEMPTS.tables.quarter)} (bucket, provider_id, ${measures})
    SELECT bucket, provider_id, sum(attempts), sum(successes), sum(failures), sum(latency_sum_ms), sum(latency_count), sum(fallbacks)
    FROM (
      SELECT ${quarterOf('c.created_at')} AS bucket, c.provider_id, count(*) AS attempts, count(*) FILTER (WHERE c.status = 'success') AS successes,
        count(*) FILTER (WHERE c.status = 'failed') AS failures, coalesce(sum(c.latency_ms), 0) AS latency_sum_ms, count(c.latency_ms) AS latency_count, 0 AS fallbacks
      FROM request_candidates c WHERE ${executedSql('c')} AND c.provider_id IS NOT NULL GROUP BY 1, 2
      UNION ALL
      SELECT bucket, provider_id, sum(requests), sum(requests - errors), sum(errors), sum(response_time_sum_ms), sum(response_time_count), 0
      FROM usage_quarter_hourly_model WHERE provider_id <> ${NIL_UUID}::uuid GROUP BY 1, 2
      UNION ALL
      SELECT ${quarterOf('u.created_at')}, u.provider_id, -count(*), -count(*) FILTER (WHERE u.status <> 'failed'), -count(*) FILTER (WHERE u.status = 'failed'),
        -coalesce(sum(u.response_time_ms), 0), -count(u.response_time_ms), 0
      FROM (SELECT DISTINCT c.request_id FROM request_candidates c WHERE ${executedSql('c')}) c JOIN usage u ON u.request_id = c.request_id
      WHERE ${finishedSql('u')} AND u.provider_id IS NOT NULL GROUP BY 1, 2
      UNION ALL
      -- each request with more than one executed candidate, once, on the nil provider
      SELECT ${quarterOf('min(c.created_at)')}, ${NIL_UUID}::uuid, 0, 0, 0, 0, 0, 1
      FROM request_candidates c WHERE ${executedSql('c')} GROUP BY c.request_id HAVING count(*) > 1
    ) p
    GROUP BY 1, 2 HAVING ${ATTEMPTS_NOT_ZERO} ORDER BY 1, 2`)
  // the hours: a regrouping of the quarter-hours
  await run(db, sql`
    INSERT INTO ${raw(ATTEMPTS.tables.hour)} (bucket, provider_id, ${measures})
    SELECT date_trunc('hour', bucket, 'UTC'), provider_id, sum(attempts), sum(successes), sum(failures), sum(latency_sum_ms), sum(latency_count), sum(fallbacks)
      FROM ${raw(ATTEMPTS.tables.quarter)}
     GROUP BY 1, 2 HAVING ${ATTEMPTS_NOT_ZERO} ORDER BY 1, 2`)
  // a bulk load wrote settled hours: caches of them rebuild (rules.ts settledBefore)
  await run(db, SETTLED_HOURS_CHANGED)
}

/**
 * What ingestion charges as it goes: each key's totals and balance_used and each user's
 * used and total_used are the sums over their finished rows (read from the daily key rollup, which
 * holds exactly those sums).
 */
export async function chargeFromRollups (db: Sql): Promise<void> {
  await run(db, sql`
    UPDATE api_keys k SET total_requests = s.requests, total_tokens = s.tokens, total_cost = s.cost, balance_used = s.cost,
      -- the last finish among the rows of the key's last day (through the (api_key_id, created_at) index)
      last_used_at = (SELECT max(u.finished_at) FROM usage u WHERE u.api_key_id = k.id AND u.created_at >= s.last_day::timestamp AT TIME ZONE 'UTC' AND ${finishedSql('u')})
    FROM (SELECT api_key_id, sum(requests) AS requests, sum(total_tokens) AS tokens, sum(total_cost) AS cost, max(day) AS last_day
          FROM usage_daily_key GROUP BY api_key_id) s
    WHERE k.id = s.api_key_id`)
  await run(db, sql`UPDATE users u SET used = s.cost, total_used = s.cost FROM (SELECT user_id, sum(total_cost) AS cost FROM usage_daily_key GROUP BY user_id) s WHERE u.id = s.user_id`)
}
