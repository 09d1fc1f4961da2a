// A provider's monthly quota at an instant, the one rule every answer reads it by:
// providers.monthly_used counts the quota period starting on monthly_used_month (kept by
// ingestion; a period starts on the provider's quota_reset_day, accounting/model.ts
// PROVIDER_MONTH), so a row last charged in an older period has spent 0 of this one — the
// quota resets on its day without a job running.
import { nanoToUsd, nanoToUsdOrNull, percentOf } from '../../lib/money.js'
import { PROVIDER_MONTH } from '../accounting/model.js'

/** What a provider row holds of its quota (nano-USD; the period's first day as a Date at UTC midnight or YYYY-MM-DD; config.quota_reset_day). */
export interface MonthlyColumns {
  monthlyQuota: bigint | null
  monthlyUsed: bigint
  monthlyUsedMonth: Date | string | null
  config?: unknown
}

export interface QuotaUsage {
  /** the quota period counted: [monthStart, monthEnd), from one reset day to the next */
  monthStart: Date
  monthEnd: Date
  /** this month's actual cost, nano-USD */
  used: bigint
  /** quota − used, never below 0; null without a quota */
  remaining: bigint | null
  /** used / quota in percent, two decimals; null without a (positive) quota */
  percent: number | null
  /**
   * When the period's average spend rate so far (used / time elapsed) reaches the quota:
   * null without a quota, without spend, or past the period's end (the quota resets
   * first); the instant asked about when the quota is already spent.
   */
  exhaustAt: Date | null
}

const dayOf = (month: Date | string) => typeof month === 'string' ? month.slice(0, 10) : month.toISOString().slice(0, 10)

export function quotaUsage (row: MonthlyColumns, now: Date): QuotaUsage {
  const { start: monthStart, end: monthEnd } = PROVIDER_MONTH.period(now, PROVIDER_MONTH.resetDay(row.config))
  const used = row.monthlyUsedMonth !== null && dayOf(row.monthlyUsedMonth) === PROVIDER_MONTH.day(monthStart) ? row.monthlyUsed : 0n
  const quota = row.monthlyQuota
  if (quota === null) return { monthStart, monthEnd, used, remaining: null, percent: null, exhaustAt: null }
  const remaining = quota > used ? quota - used : 0n
  const percent = quota > 0n ? percentOf(used, quota) : null
  return { monthStart, monthEnd, used, remaining, percent, exhaustAt: exhaustion(quota, used, monthStart, monthEnd, now) }
}

/** Linear in the period's spend so far: at rate used/elapsed, the quota is reached at monthStart + elapsed × quota / used. */
function exhaustion (quota: bigint, used: bigint, monthStart: Date, monthEnd: Date, now: Date): Date | null {
  if (used <= 0n) return null
  if (used >= quota) return now
  const elapsed = BigInt(now.getTime() - monthStart.getTime())
  const at = monthStart.getTime() + Number((elapsed * quota) / used)
  return at < monthEnd.getTime() ? new Date(at) : null
}

/** A provider record's monthly fields (schemas.ts monthlyQuotaFields), in USD. */
export function monthlyFields (usage: QuotaUsage) {
  return {
    monthly_used_usd: nanoToUsd(usage.used),
    monthly_remaining_usd: nanoToUsdOrNull(usage.remaining),
    monthly_usage_percent: usage.percent,
    monthly_estimated_exhaust_at: usage.exhaustAt?.toISOString() ?? null,
    monthly_period_start: usage.monthStart.toISOString(),
    monthly_period_end: usage.monthEnd.toISOString()
  }
}
