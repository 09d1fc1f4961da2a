// The three key-holder answers, for the key the pipeline authenticated (never another).
import type { Db, Sql } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import { keyState, remainingBalance, windowResetsIn } from '../keys/counters.js'
import { datesBetween, localDate } from '../../lib/time.js'
import { keyDailyUsage, keyModelUsage, keyTotals, type ModelUsage } from '../accounting/read/keys.js'
import { budgetReport } from '../budgets/service.js'
import { currentPeriod, recentDays } from './queries.js'
import type { Period } from './schemas.js'

const toUsd = ({ cost, ...usage }: Omit<ModelUsage, 'model'>) => ({ ...usage, cost_usd: nanoToUsd(cost) })
/** null or [] both mean "every value allowed"; answer null for both */
const allowList = (list: string[] | null) => list === null || list.length === 0 ? null : list

export async function userStats (db: Sql, keyId: string, settings: { timeZone: string, pendingTimeoutMinutes: number }) {
  // the counters gateway verify checks (today's cost since local midnight in APP_TIMEZONE), all of them
  const [key, usage] = await Promise.all([keyState(db, { id: keyId }, { ...settings, allCounters: true }), keyTotals(db, keyId)])
  if (key === undefined) throw new Errors.Unauthorized('invalid or expired credentials') // deleted since it authenticated
  return {
    id: key.id,
    name: key.name,
    is_active: key.is_active,
    created_at: key.created_at.toISOString(),
    expires_at: key.expires_at?.toISOString() ?? null,
    usage: toUsd(usage),
    limits: {
      rate_limit: key.rate_limit,
      token_limit: key.token_limit === null ? null : Number(key.token_limit),
      rate_window_seconds: key.rate_window_seconds,
      current_window_requests: key.counters.window_requests,
      current_window_tokens: Number(key.counters.window_tokens),
      window_resets_in_seconds: windowResetsIn(key.counters),
      concurrent_limit: key.concurrent_limit,
      daily_cost_limit_usd: nanoToUsdOrNull(key.daily_cost_limit),
      today_cost_usd: nanoToUsd(key.counters.today_cost ?? 0n),
      total_cost_limit_usd: nanoToUsdOrNull(key.total_cost_limit),
      remaining_balance_usd: nanoToUsdOrNull(remainingBalance(key)),
      held_usd: nanoToUsd(key.counters.held_cost)
    },
    restrictions: {
      allowed_models: allowList(key.allowed_models),
      allowed_providers: allowList(key.allowed_providers),
      allowed_api_formats: allowList(key.allowed_api_formats)
    },
    budgets: key.budgets.map(budgetReport)
  }
}

export async function userModelStats (db: Sql, keyId: string, timeZone: string, period: Period) {
  const { start, end } = await currentPeriod(db, timeZone, period === 'daily' ? 'day' : 'month')
  const rows = await keyModelUsage(db, keyId, start, end)
  rows.sort((a, b) => b.total_tokens - a.total_tokens || (a.model < b.model ? -1 : a.model > b.model ? 1 : 0))
  return { period, models: rows.map(({ model, ...usage }) => ({ model, ...toUsd(usage) })) }
}

export async function usageDetails (db: Sql, keyId: string, now = new Date()) {
  const rows = await keyModelUsage(db, keyId, new Date(now.getTime() - 24 * 3_600_000), now)
  return { period_hours: 24 as const, models: Object.fromEntries(rows.map((row) => [row.model, row.requests])) }
}

/** The last `days` local days of APP_TIMEZONE (today so far included): one point a day, and the same range per model. */
export async function dailyUsage (db: Db, pg: Sql, keyId: string, timeZone: string, days: number) {
  const range = await recentDays(pg, timeZone, days)
  const [perDay, perModel] = await Promise.all([keyDailyUsage(db, keyId, range, timeZone), keyModelUsage(pg, keyId, range.start, range.end)])
  const byDate = new Map(perDay.map((day) => [day.date, day]))
  // most spend first (the sign of a bigint difference survives Number), then by name
  perModel.sort((a, b) => Number(b.cost - a.cost) || a.model.localeCompare(b.model))
  return {
    time_zone: timeZone,
    start: range.start.toISOString(),
    end: range.end.toISOString(),
    // the range's first and last instants name its first and last local days
    days: datesBetween(localDate(range.start, timeZone), localDate(range.end, timeZone)).map((date) => {
      const day = byDate.get(date)
      return { date, requests: day?.requests ?? 0, total_tokens: Number(day?.totalTokens ?? 0n), cost_usd: nanoToUsd(day?.totalCost ?? 0n) }
    }),
    models: perModel.map(({ model, ...usage }) => ({ model, ...toUsd(usage) }))
  }
}
