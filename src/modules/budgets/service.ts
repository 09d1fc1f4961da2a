// Budgets of a key or of a user: their definitions (validated here, CHECKed again by the
// table), and their reports — each with what its current window holds, read by the same
// SQL gateway verify checks (state.ts), in USD at the edge.
import sql, { type Sql as Fragment } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { nanoToUsd, usdToNano } from '../../lib/money.js'
import type { TimeZones } from '../../lib/time.js'
import { findUser } from '../users/service.js'
import { MAX_BUDGETS, type BudgetCreateBody, type BudgetUpdateBody } from './schemas.js'
import { budgetsSql, toBudgetStates, type BudgetPeriod, type BudgetState } from './state.js'

/** Whose budgets a route handles: one key's own, or one user's (over all their keys). */
export type BudgetOwner = { kind: 'key', id: string } | { kind: 'user', id: string }

export interface BudgetZones { zones: TimeZones, defaultZone: string }

/** What a budget is, as stored (nano-USD). */
interface Definition {
  period: BudgetPeriod
  model: string | null
  time_zone: string | null
  week_start: number | null
  duration_seconds: number | null
  limit: bigint
}

/** A budget as the API shows it: its definition and its current window, in USD. */
export function budgetReport (budget: BudgetState) {
  return {
    id: budget.id,
    scope: budget.api_key_id === null ? 'user' as const : 'key' as const,
    api_key_id: budget.api_key_id,
    user_id: budget.user_id,
    model: budget.model,
    period: budget.period,
    time_zone: budget.time_zone,
    week_start: budget.week_start,
    duration_seconds: budget.duration_seconds,
    limit_usd: nanoToUsd(budget.limit),
    spent_usd: nanoToUsd(budget.spent),
    held_usd: nanoToUsd(budget.held),
    remaining_usd: nanoToUsd(budget.limit - budget.spent - budget.held),
    window_start: budget.window_start.toISOString(),
    resets_at: budget.period === 'rolling' ? null : budget.window_end.toISOString(),
    created_at: budget.created_at.toISOString()
  }
}

const invalid = (field: string, message: string) => Object.assign(new Errors.InvalidInput(`body.${field} ${message}`), { field: `body.${field}` })

/**
 * The definition a create (no `base`) or an update (`base`, the stored one) asks for. A
 * field the period has no use for is refused when given, dropped when carried over from
 * another period; one it needs is given, carried over, or defaulted (APP_TIMEZONE, Monday).
 */
function definition (given: BudgetUpdateBody, base: Definition | undefined, zones: BudgetZones): Definition {
  const period = given.period ?? base!.period
  const same = base?.period === period ? base : undefined
  const limit = given.limit_usd === undefined ? base!.limit : usdToNano(given.limit_usd)
  if (limit <= 0n) throw invalid('limit_usd', 'must be at least one nano-USD')
  const model = given.model === undefined ? base?.model ?? null : given.model
  if (given.week_start !== undefined && period !== 'week') throw invalid('week_start', 'applies only to a week budget')
  if (period === 'rolling') {
    if (given.time_zone !== undefined) throw invalid('time_zone', 'does not apply to a rolling budget (its window is the last duration_seconds)')
    const duration = given.duration_seconds ?? same?.duration_seconds ?? undefined
    if (duration === undefined || duration === null) throw invalid('duration_seconds', 'is required for a rolling budget')
    return { period, model, limit, time_zone: null, week_start: null, duration_seconds: duration }
  }
  if (given.duration_seconds !== undefined) throw invalid('duration_seconds', 'applies only to a rolling budget')
  const zone = given.time_zone === undefined ? base?.time_zone ?? zones.defaultZone : zones.zones.require(given.time_zone, 'body.time_zone')
  const weekStart = period === 'week' ? given.week_start ?? same?.week_start ?? 1 : null
  return { period, model, limit, time_zone: zone, week_start: weekStart, duration_seconds: null }
}

const ownerColumn = (owner: BudgetOwner): Fragment => owner.kind === 'key' ? sql`b.api_key_id = ${owner.id}::uuid` : sql`b.user_id = ${owner.id}::uuid`

/** The budgets matching `where`, with their windows now. */
async function read (db: Db, where: Fragment): Promise<BudgetState[]> {
  const query = sql`SELECT ${budgetsSql(where, sql`now()`)}::text AS budgets`
  const [row] = await db.$queryRawUnsafe<Array<{ budgets: string }>>(query.text, ...query.values)
  return toBudgetStates(JSON.parse(row!.budgets))
}

/**
 * The owner exists (404 otherwise), locked against another budget being added meanwhile
 * (FOR NO KEY UPDATE: ingestion's key-share locks pass). Served by the primary keys.
 */
async function lockOwner (db: Db, owner: BudgetOwner): Promise<void> {
  if (owner.kind === 'user') {
    await findUser(db, owner.id)
    await db.$executeRaw`SELECT 1 FROM users WHERE id = ${owner.id}::uuid FOR NO KEY UPDATE`
    return
  }
  const rows = await db.$queryRaw<unknown[]>`SELECT 1 FROM api_keys WHERE id = ${owner.id}::uuid FOR NO KEY UPDATE`
  if (rows.length === 0) throw new Errors.NotFound('API key not found')
}

export async function listBudgets (db: Db, owner: BudgetOwner) {
  if (owner.kind === 'user') await findUser(db, owner.id)
  else if ((await db.apiKey.count({ where: { id: owner.id } })) === 0) throw new Errors.NotFound('API key not found')
  return { budgets: (await read(db, ownerColumn(owner))).map(budgetReport) }
}

/** The budgets that apply to a key — its own and its owner's — as reported. */
export async function keyBudgets (db: Db, keyId: string) {
  return (await read(db, sql`(b.api_key_id = ${keyId}::uuid OR b.user_id = (SELECT user_id FROM api_keys WHERE id = ${keyId}::uuid))`)).map(budgetReport)
}

export async function createBudget (db: Db, owner: BudgetOwner, body: BudgetCreateBody, zones: BudgetZones) {
  await lockOwner(db, owner)
  const def = definition(body, undefined, zones)
  const count = await db.budget.count({ where: owner.kind === 'key' ? { apiKeyId: owner.id } : { userId: owner.id } })
  if (count >= MAX_BUDGETS) throw new Errors.LimitReached(`a ${owner.kind} may have at most ${MAX_BUDGETS} budgets`)
  const created = await db.budget.create({
    data: {
      ...(owner.kind === 'key' ? { apiKeyId: owner.id } : { userId: owner.id }),
      period: def.period, model: def.model, timeZone: def.time_zone, weekStart: def.week_start, durationSeconds: def.duration_seconds, costLimit: def.limit
    },
    select: { id: true }
  })
  return budgetReport((await read(db, sql`b.id = ${created.id}::uuid`))[0]!)
}

/** The owner's budget by id, locked for the change (404 when it is not theirs). */
async function ownBudget (db: Db, owner: BudgetOwner, budgetId: string): Promise<Definition> {
  const rows = await db.$queryRawUnsafe<Array<Omit<Definition, 'limit'> & { limit: bigint }>>(
    ...toArgs(sql`SELECT period::text AS period, model, time_zone, week_start, duration_seconds, cost_limit AS limit
                    FROM budgets b WHERE b.id = ${budgetId}::uuid AND ${ownerColumn(owner)} FOR UPDATE`))
  if (rows.length === 0) throw new Errors.NotFound('budget not found')
  return rows[0]!
}

const toArgs = (query: Fragment): [string, ...unknown[]] => [query.text, ...query.values]

export async function updateBudget (db: Db, owner: BudgetOwner, budgetId: string, body: BudgetUpdateBody, zones: BudgetZones) {
  const def = definition(body, await ownBudget(db, owner, budgetId), zones)
  await db.budget.update({
    where: { id: budgetId },
    data: { period: def.period, model: def.model, timeZone: def.time_zone, weekStart: def.week_start, durationSeconds: def.duration_seconds, costLimit: def.limit }
  })
  return budgetReport((await read(db, sql`b.id = ${budgetId}::uuid`))[0]!)
}

export async function deleteBudget (db: Db, owner: BudgetOwner, budgetId: string) {
  await ownBudget(db, owner, budgetId)
  await db.budget.delete({ where: { id: budgetId } })
  return { message: 'budget deleted' }
}
