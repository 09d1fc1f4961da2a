// A user's usage page in one object (GET /api/users/me/usage, AETHER.md §6.1): their
// totals and summaries from the rollups, their heatmap, their newest records, their
// quota. The operator's cost (actual_*) is in it: the route shows it to admins only (accounting/visibility.ts).
import type { Db, Sql } from '../../db/prisma.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import { percent } from '../../lib/rates.js'
import { hourPlan } from '../../lib/spans.js'
import type { Range } from '../../lib/time.js'
import { userTotalsByModelAndProvider, type ModelProviderTotals } from '../accounting/read/own.js'
import { newestRecords, recordFilter, usageStats, userHeatmap } from './service.js'

/** The records the page lists: the newest in the range (it pages and filters them itself). */
export const OWN_RECORDS = 100

interface Sums { requests: number, errors: number, inputTokens: number, outputTokens: number, totalTokens: number, totalCost: bigint, actualTotalCost: bigint, responseTimeSumMs: number, responseTimeCount: number }

/** The groups' sums by `keyOf`, most requests first, then by key. */
function sumBy (groups: ModelProviderTotals[], keyOf: (g: ModelProviderTotals) => string | null): Array<[string, Sums]> {
  const sums = new Map<string, Sums>()
  for (const g of groups) {
    const key = keyOf(g)
    if (key === null) continue
    const s = sums.get(key) ?? { requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, totalTokens: 0, totalCost: 0n, actualTotalCost: 0n, responseTimeSumMs: 0, responseTimeCount: 0 }
    s.requests += g.requests
    s.errors += g.errors
    s.inputTokens += g.inputTokens
    s.outputTokens += g.outputTokens
    s.totalTokens += g.totalTokens
    s.totalCost += g.totalCost
    s.actualTotalCost += g.actualTotalCost
    s.responseTimeSumMs += g.responseTimeSumMs
    s.responseTimeCount += g.responseTimeCount
    sums.set(key, s)
  }
  return [...sums].sort(([a, x], [b, y]) => y.requests - x.requests || (a < b ? -1 : a > b ? 1 : 0))
}

/** One user's usage in the range; `timeZone` cuts the heatmap's days. */
export async function ownUsage (sql: Sql, db: Db, userId: string, range: Range, timeZone: string) {
  const filter = { ...recordFilter({ start_date: range.start.toISOString(), end_date: range.end.toISOString(), limit: OWN_RECORDS, offset: 0 }), userId }
  const [stats, groups, heatmap, records, account] = await Promise.all([
    usageStats(sql, range, userId),
    userTotalsByModelAndProvider(sql, userId, hourPlan(range)),
    userHeatmap(sql, userId, timeZone),
    newestRecords(sql, filter, OWN_RECORDS),
    db.user.findUniqueOrThrow({ where: { id: userId }, select: { quota: true, used: true } })
  ])
  const byModel = sumBy(groups, (g) => g.model)
  const providerNames = new Map(groups.map((g) => [g.providerId, g.provider]))
  return {
    total_requests: stats.total_requests,
    total_tokens: stats.total_tokens,
    total_input_tokens: byModel.reduce((n, [, s]) => n + s.inputTokens, 0),
    total_output_tokens: byModel.reduce((n, [, s]) => n + s.outputTokens, 0),
    total_cost: stats.total_cost,
    total_actual_cost: stats.total_actual_cost,
    avg_response_time: stats.avg_response_time,
    error_count: stats.error_count,
    quota_usd: nanoToUsdOrNull(account.quota),
    used_usd: nanoToUsd(account.used),
    activity_heatmap: heatmap,
    summary_by_model: byModel.map(([model, s]) => ({
      model,
      requests: s.requests,
      input_tokens: s.inputTokens,
      output_tokens: s.outputTokens,
      total_tokens: s.totalTokens,
      total_cost_usd: nanoToUsd(s.totalCost),
      actual_total_cost_usd: nanoToUsd(s.actualTotalCost)
    })),
    // the requests that reached a provider that still exists, as the admin's provider table
    summary_by_provider: sumBy(groups, (g) => g.providerId).map(([id, s]) => ({
      provider_id: id,
      provider: providerNames.get(id) ?? '',
      requests: s.requests,
      total_tokens: s.totalTokens,
      total_cost_usd: nanoToUsd(s.totalCost),
      success_rate: percent(s.requests - s.errors, s.requests),
      avg_response_time_ms: s.responseTimeCount === 0 ? 0 : Math.round(s.responseTimeSumMs / s.responseTimeCount * 10) / 10
    })),
    records
  }
}
