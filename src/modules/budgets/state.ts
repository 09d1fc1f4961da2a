// Budgets with what their windows hold: the finished spend (accounting/read/counters.ts
// finishedSpendSql, the rule today's cost uses) plus the live holds, read beside gateway
// verify's key state (keys/counters.ts) and by the admin and key-holder reports. The
// rules of which budget a request meets and when a refusal may be retried live here too.
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import { liveHoldSql } from '../accounting/holds.js'
import { finishedSpendSql } from '../accounting/read/counters.js'
import { budgetWindowSql } from './window.js'

export type BudgetPeriod = 'day' | 'week' | 'month' | 'rolling'

export interface BudgetState {
  id: string
  /** exactly one of the two is set */
  api_key_id: string | null
  user_id: string | null
  model: string | null
  period: BudgetPeriod
  time_zone: string | null
  week_start: number | null
  duration_seconds: number | null
  /** nano-USD, like spent and held */
  limit: bigint
  created_at: Date
  window_start: Date
  /** exclusive; for a rolling window, now */
  window_end: Date
  spent: bigint
  held: bigint
}

/** The same SQL for a key's budget and a user's: `of` builds it for the owning column. */
const byOwner = (of: (column: 'api_key_id' | 'user_id', id: Fragment) => Fragment): Fragment =>
  sql`CASE WHEN b.api_key_id IS NOT NULL THEN ${of('api_key_id', raw('b.api_key_id'))} ELSE ${of('user_id', raw('b.user_id'))} END`

/**
 * The budgets matching `where` (over alias b) as a JSON array, oldest first, each with its
 * window at `now`, the finished spend in it and the live holds it counts: all of the
 * owner's, of its model only for a per-model budget — and holds naming no model, which may
 * become any. Served by budgets (api_key_id) / (user_id); no budget, nothing else is read.
 * The spend by usage_hourly and usage on (api_key_id | user_id, bucket | created_at), the
 * holds by admission_holds (api_key_id, expires_at) / (user_id, expires_at).
 */
export function budgetsSql (where: Fragment, now: Fragment): Fragment {
  const spent = byOwner((column, id) => finishedSpendSql({ column, id, model: raw('b.model') }, raw('w.window_start'), raw('w.window_end')))
  const held = byOwner((column, id) => sql`(SELECT COALESCE(sum(ah.amount), 0) FROM admission_holds ah
    WHERE ah.${raw(column)} = ${id} AND ${liveHoldSql('ah')} AND (b.model IS NULL OR ah.model IS NULL OR ah.model = b.model))`)
  return sql`COALESCE((SELECT json_agg(json_build_object(
      'id', b.id, 'api_key_id', b.api_key_id, 'user_id', b.user_id, 'model', b.model, 'period', b.period, 'time_zone', b.time_zone,
      'week_start', b.week_start, 'duration_seconds', b.duration_seconds, 'limit', b.cost_limit::text, 'created_at', b.created_at,
      'window_start', w.window_start, 'window_end', w.window_end, 'spent', (${spent})::text, 'held', (${held})::text) ORDER BY b.created_at, b.id)
    FROM budgets b CROSS JOIN LATERAL (${budgetWindowSql('b', now)}) w
   WHERE ${where}), '[]'::json)`
}

interface BudgetJson extends Omit<BudgetState, 'limit' | 'spent' | 'held' | 'created_at' | 'window_start' | 'window_end'> {
  limit: string
  spent: string
  held: string
  created_at: string
  window_start: string
  window_end: string
}

/** budgetsSql's JSON array (node-postgres parses json columns) as typed states. */
export function toBudgetStates (value: unknown): BudgetState[] {
  return (value as BudgetJson[]).map((b) => ({
    ...b,
    limit: BigInt(b.limit),
    spent: BigInt(b.spent),
    held: BigInt(b.held),
    created_at: new Date(b.created_at),
    window_start: new Date(b.window_start),
    window_end: new Date(b.window_end)
  }))
}

/**
 * Whether a request for `model` meets the budget: a budget of every model always; a
 * per-model budget when the request names its model, or names none (it may be any).
 */
export const budgetApplies = (budget: BudgetState, model: string | undefined): boolean =>
  budget.model === null || model === undefined || model === budget.model

/**
 * budgetsSql's rule for holds, in memory: a new live hold of one of the owner's keys (the
 * budgets' key's own when `own`) added to each budget it counts for — the key's or the
 * owner's, of every model, of its model, or of any model when it names none.
 */
export function countBudgetHold (budgets: readonly BudgetState[], hold: { amount: bigint, model?: string | null }, own: boolean): void {
  for (const budget of budgets) {
    if (budget.api_key_id !== null && !own) continue
    // a hold counts for the budgets its request met at admission
    if (budgetApplies(budget, hold.model ?? undefined)) budget.held += hold.amount
  }
}

/** A user budget spans the owner's keys: a reservation must take the owner's lock. */
export const hasUserBudget = (budgets: readonly BudgetState[]): boolean => budgets.some((b) => b.user_id !== null)

/**
 * Seconds until what fills the window now has left it: a calendar window's reset, or a
 * rolling window's whole length (its oldest spend may leave sooner; no sooner can all of it).
 */
export function budgetRetryAfter (budget: BudgetState, now = Date.now()): number {
  if (budget.period === 'rolling') return budget.duration_seconds!
  return Math.max(1, Math.ceil((budget.window_end.getTime() - now) / 1000))
}

const PERIOD_NAMES: Record<Exclude<BudgetPeriod, 'rolling'>, string> = { day: 'daily', week: 'weekly', month: 'monthly' }

/** "the key's daily budget (model m)", for a refusal's message */
export function describeBudget (budget: BudgetState): string {
  const period = budget.period === 'rolling' ? `rolling ${budget.duration_seconds!} s` : PERIOD_NAMES[budget.period]
  const model = budget.model === null ? '' : ` for model ${budget.model}`
  return `the ${budget.api_key_id === null ? 'owner' : 'key'}'s ${period} budget${model}`
}
