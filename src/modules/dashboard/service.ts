// The home dashboards: the accounting core's per-local-day rollup reads summed into
// today, yesterday and the last 30 days, all-time totals, and the cards Aether prints
// as sent. Admins see all usage, a regular user their own.
import sql from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import type { AuthUser } from '../../http/pipeline.js'
import { nanoToUsd } from '../../lib/money.js'
import { percent } from '../../lib/rates.js'
import { datesBetween, localDate } from '../../lib/time.js'
import { NIL_UUID } from '../accounting/rules.js'
import { allTimeUsage, fallbackRequests, localDayUsage, type Breakdown, type DayPart } from '../accounting/read/dashboard.js'
import { formatCount, formatTokens, formatUsd, roundedUsd } from './format.js'

/** "30 d" is local midnight 30 days ago until now: today and the 30 days before it */
export const MONTH_DAYS = 30

const DAY_MS = 86_400_000
/** the YYYY-MM-DD date `days` before `date` */
export const daysBefore = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) - days * DAY_MS).toISOString().slice(0, 10)

const empty = (): Breakdown => ({
  requests: 0, errors: 0, inputTokens: 0, outputTokens: 0, cacheCreationTokens: 0, cacheReadTokens: 0, totalTokens: 0,
  totalCost: 0n, actualTotalCost: 0n, responseTimeSumMs: 0, responseTimeCount: 0
})

function add (into: Breakdown, part: Breakdown): void {
  into.requests += part.requests
  into.errors += part.errors
  into.inputTokens += part.inputTokens
  into.outputTokens += part.outputTokens
  into.cacheCreationTokens += part.cacheCreationTokens
  into.cacheReadTokens += part.cacheReadTokens
  into.totalTokens += part.totalTokens
  into.totalCost += part.totalCost
  into.actualTotalCost += part.actualTotalCost
  into.responseTimeSumMs += part.responseTimeSumMs
  into.responseTimeCount += part.responseTimeCount
}

const sumOf = (parts: Breakdown[]) => {
  const total = empty()
  for (const part of parts) add(total, part)
  return total
}

const cacheTokens = (b: Breakdown) => b.cacheCreationTokens + b.cacheReadTokens

/** cache reads / (input + cache reads), percent, 1 decimal (Aether's hit rate: cache writes left out) */
const hitRate = (b: Breakdown) => {
  const of = b.inputTokens + b.cacheReadTokens
  return of === 0 ? 0 : Math.round(b.cacheReadTokens / of * 1000) / 10
}

/** average seconds, to the millisecond */
const avgSeconds = (b: Breakdown) => b.responseTimeCount === 0 ? 0 : Math.round(b.responseTimeSumMs / b.responseTimeCount) / 1000

type ChangeType = 'increase' | 'decrease' | 'neutral'
const changeType = (today: number | bigint, yesterday: number | bigint): ChangeType => today > yesterday ? 'increase' : today < yesterday ? 'decrease' : 'neutral'
/** today's figure, prefixed + when it beats yesterday's */
const change = (today: number | bigint, yesterday: number | bigint, text: string) => today > yesterday ? `+${text}` : text

interface Period { today: Breakdown, yesterday: Breakdown, month: Breakdown }

/** Today, yesterday and the last 30 days (today included), from one read of the local days. */
function periods (parts: DayPart[], today: string): Period {
  const yesterday = daysBefore(today, 1)
  return {
    today: sumOf(parts.filter((p) => p.date === today)),
    yesterday: sumOf(parts.filter((p) => p.date === yesterday)),
    month: sumOf(parts)
  }
}

function todayFields (b: Breakdown) {
  return {
    requests: b.requests,
    cost: nanoToUsd(b.totalCost),
    actual_cost: nanoToUsd(b.actualTotalCost),
    tokens: b.totalTokens,
    cache_creation_tokens: b.cacheCreationTokens,
    cache_read_tokens: b.cacheReadTokens
  }
}

function common (p: Period, all: Breakdown) {
  return {
    today: todayFields(p.today),
    token_breakdown: { input: all.inputTokens, output: all.outputTokens, cache_creation: all.cacheCreationTokens, cache_read: all.cacheReadTokens },
    cache_stats: {
      cache_creation_tokens: p.month.cacheCreationTokens,
      cache_read_tokens: p.month.cacheReadTokens,
      total_cache_tokens: cacheTokens(p.month),
      cache_hit_rate: hitRate(all)
    }
  }
}

function adminCards (p: Period, all: Breakdown) {
  const { today, yesterday } = p
  return [
    {
      name: '总请求',
      value: formatCount(all.requests),
      subValue: `有效 ${formatCount(all.requests - all.errors)} / 异常 ${formatCount(all.errors)}`,
      change: change(today.requests, yesterday.requests, String(today.requests)),
      changeType: changeType(today.requests, yesterday.requests),
      icon: 'Activity'
    },
    {
      name: '总费用',
      value: formatUsd(all.totalCost),
      subValue: `倍率后 ${formatUsd(all.actualTotalCost)}`,
      change: change(today.totalCost, yesterday.totalCost, formatUsd(today.totalCost)),
      changeType: changeType(today.totalCost, yesterday.totalCost),
      icon: 'DollarSign'
    },
    {
      name: '总Token',
      value: formatTokens(all.totalTokens),
      subValue: `输入 ${formatTokens(all.inputTokens)} / 输出 ${formatTokens(all.outputTokens)}`,
      change: change(today.totalTokens, yesterday.totalTokens, formatTokens(today.totalTokens)),
      changeType: changeType(today.totalTokens, yesterday.totalTokens),
      icon: 'Hash'
    },
    {
      name: '总缓存',
      value: formatTokens(cacheTokens(all)),
      subValue: `创建 ${formatTokens(all.cacheCreationTokens)} / 读取 ${formatTokens(all.cacheReadTokens)}`,
      change: change(cacheTokens(today), cacheTokens(yesterday), formatTokens(cacheTokens(today))),
      changeType: changeType(cacheTokens(today), cacheTokens(yesterday)),
      extraBadge: `命中率 ${hitRate(all).toFixed(1)}%`,
      icon: 'Database'
    }
  ]
}

interface Account { quota: bigint | null, used: bigint, keys: number, activeKeys: number }

/** The user's quota, charge and own (non-standalone) keys. users primary key; api_keys (user_id). */
async function account (db: Sql, userId: string): Promise<Account> {
  const { rows } = await db.query(sql`
    SELECT u.quota, u.used,
           (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id AND NOT k.is_standalone)::int AS keys,
           (SELECT count(*) FROM api_keys k WHERE k.user_id = u.id AND NOT k.is_standalone AND k.is_active)::int AS active_keys
      FROM users u WHERE u.id = ${userId}::uuid`)
  const row = rows[0] as { quota: string | null, used: string, keys: number, active_keys: number }
  return { quota: row.quota === null ? null : BigInt(row.quota), used: BigInt(row.used), keys: row.keys, activeKeys: row.active_keys }
}

/** used / quota, percent, 1 decimal; a zero quota is used up */
const quotaUsed = (used: bigint, quota: bigint) => quota <= 0n ? 100 : Number(used * 1000n / quota) / 10

function userCards (p: Period, a: Account) {
  return [
    { name: 'API 密钥', value: `${a.activeKeys}/${a.keys}`, icon: 'Key' },
    {
      name: '本月请求',
      value: formatCount(p.month.requests),
      change: `今日 ${formatCount(p.today.requests)}`,
      changeType: changeType(p.today.requests, p.yesterday.requests),
      icon: 'Activity'
    },
    {
      name: '配额使用',
      value: a.quota === null ? '无限制' : `${quotaUsed(a.used, a.quota).toFixed(1)}%`,
      change: `已用 ${formatUsd(a.used)}`,
      changeType: 'neutral' as const,
      icon: 'TrendingUp'
    },
    { name: '本月费用', value: formatUsd(p.month.totalCost), icon: 'DollarSign' }
  ]
}

/** GET /api/dashboard/stats: the role shapes the answer. */
export async function dashboardStats (db: Sql, timeZone: string, user: Pick<AuthUser, 'id' | 'role'>, now = new Date()) {
  const today = localDate(now, timeZone)
  const first = daysBefore(today, MONTH_DAYS)
  if (user.role === 'admin') {
    const [parts, all, fallbacks] = await Promise.all([
      localDayUsage(db, timeZone, first, today, undefined, 'day'), allTimeUsage(db), fallbackRequests(db, timeZone, first)
    ])
    const p = periods(parts, today)
    return {
      stats: adminCards(p, all),
      ...common(p, all),
      system_health: {
        avg_response_time: Math.round(avgSeconds(p.month) * 100) / 100,
        error_rate: percent(p.month.errors, p.month.requests),
        error_requests: p.month.errors,
        fallback_count: fallbacks,
        total_requests: p.month.requests
      },
      cost_stats: {
        total_cost: roundedUsd(p.month.totalCost, 4),
        total_actual_cost: roundedUsd(p.month.actualTotalCost, 4),
        cost_savings: roundedUsd(p.month.totalCost - p.month.actualTotalCost, 4)
      }
    }
  }
  const [parts, all, owner] = await Promise.all([
    localDayUsage(db, timeZone, first, today, user.id, 'day'), allTimeUsage(db, user.id), account(db, user.id)
  ])
  const p = periods(parts, today)
  return { stats: userCards(p, owner), ...common(p, all), monthly_cost: nanoToUsd(p.month.totalCost) }
}

interface ModelSums { model: string, requests: number, tokens: number, cost: bigint }

/** per model, costliest first (then by name) */
function byModel (parts: DayPart[]) {
  const models = new Map<string, ModelSums>()
  for (const part of parts) {
    const sums = models.get(part.model) ?? { model: part.model, requests: 0, tokens: 0, cost: 0n }
    sums.requests += part.requests
    sums.tokens += part.totalTokens
    sums.cost += part.totalCost
    models.set(part.model, sums)
  }
  return [...models.values()]
    .filter((m) => m.requests !== 0)
    .sort((a, b) => a.cost === b.cost ? (a.model < b.model ? -1 : 1) : a.cost > b.cost ? -1 : 1)
    .map((m) => ({ model: m.model, requests: m.requests, tokens: m.tokens, cost: nanoToUsd(m.cost) }))
}

/** GET /api/dashboard/daily-stats: `days` local days ending today, zero-filled, ascending. */
export async function dailyStats (db: Sql, timeZone: string, user: Pick<AuthUser, 'id' | 'role'>, days: number, now = new Date()) {
  const today = localDate(now, timeZone)
  const first = daysBefore(today, days - 1)
  const parts = await localDayUsage(db, timeZone, first, today, user.role === 'admin' ? undefined : user.id)
  const daily = datesBetween(first, today).map((date) => {
    const own = parts.filter((p) => p.date === date)
    const total = sumOf(own)
    return {
      date,
      requests: total.requests,
      tokens: total.totalTokens,
      cost: nanoToUsd(total.totalCost),
      avg_response_time: avgSeconds(total),
      unique_models: new Set(own.map((p) => p.model)).size,
      // a request that reached no provider names none
      unique_providers: new Set(own.filter((p) => p.providerId !== NIL_UUID).map((p) => p.providerId)).size,
      model_breakdown: byModel(own)
    }
  })
  return { daily_stats: daily, model_summary: byModel(parts), period: { start_date: first, end_date: today, days } }
}
