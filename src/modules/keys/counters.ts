// A key, its owner and its live counters in one round trip (and a second, for a key
// that has budgets, for them): what gateway verify checks a request against and what a
// key holder reads in /api/key-stats/user-stats. One query and one row mapping, so both
// answer by the same rules.
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import { prepared, type Sql } from '../../db/prisma.js'
import { liveHoldSql } from '../accounting/holds.js'
import { countHold as countCounterHold, keyCounters, toKeyCounters, type CounterSettings, type KeyCounters, type NewHold } from '../accounting/read/counters.js'
import type { BlockList } from 'node:net'
import { ipMatcher, userAgentMatcher } from './restrictions.js'
import { budgetsSql, countBudgetHold, hasUserBudget, toBudgetStates, type BudgetState } from '../budgets/state.js'

export { windowResetsIn, type CounterSettings, type KeyCounters, type NewHold } from '../accounting/read/counters.js'

export interface KeyState {
  id: string
  user_id: string
  name: string
  created_at: Date
  key_hash: string
  /** the secret's hash before the last rotation, and until when it still verifies */
  previous_key_hash: string | null
  previous_key_expires_at: Date | null
  is_active: boolean
  expires_at: Date | null
  /** the owner is active and not deleted */
  user_active: boolean
  allowed_models: string[] | null
  allowed_providers: string[] | null
  allowed_api_formats: string[] | null
  user_allowed_models: string[] | null
  user_allowed_providers: string[] | null
  user_allowed_api_formats: string[] | null
  /** allowed_ips compiled (keys/restrictions.ts); null = any address */
  ip_matcher: BlockList | null
  /** allowed_user_agents lowercased; null = any client */
  user_agent_matcher: string[] | null
  /** the names of the providers whose ids the key's / the owner's provider list holds (Aether's forms store ids) */
  allowed_provider_names: string[]
  user_allowed_provider_names: string[]
  rate_limit: number | null
  /** tokens per rate window */
  token_limit: bigint | null
  rate_window_seconds: number
  concurrent_limit: number | null
  /** nano-USD, like every amount below */
  daily_cost_limit: bigint | null
  total_cost_limit: bigint | null
  total_cost: bigint
  current_balance: bigint | null
  balance_used: bigint
  /** the owner's quota and what they have used */
  quota: bigint | null
  used: bigint
  /** the owner's live admission holds over all their keys (read only when they have a quota; else 0) */
  user_held: bigint
  /** the key's budgets and its owner's, with their windows' spend and holds */
  budgets: BudgetState[]
  counters: KeyCounters
}

export type KeyLookup = { hash: string } | { id: string } | { hashes: string[] }

const UUID_TEXT = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'

/**
 * The names of the providers a provider allow-list names by id (providers primary key);
 * nothing is read for a list that is null, and an entry that is not a uuid is a name.
 */
const providerNames = (list: Fragment): Fragment => sql`CASE WHEN jsonb_typeof(${list}) = 'array' THEN ARRAY(
    SELECT p.name FROM providers p
     WHERE p.id = ANY(ARRAY(SELECT e::uuid FROM jsonb_array_elements_text(${list}) e WHERE e ~ ${UUID_TEXT}))) ELSE '{}' END`

/**
 * The key and its owner by the key's hash, current or before its last rotation, or id
 * (api_keys unique key_hash and previous_key_hash, each by its own index, or the primary key; users primary key), with the counters (accounting/read/counters.ts)
 * in the same row, and whether the key or its owner has a budget (budgets (api_key_id) / (user_id));
 * the owner's holds are served by admission_holds (user_id, expires_at).
 */
const keyStateSql = (where: Fragment, settings: CounterSettings): Fragment => {
  const counters = keyCounters({ id: raw('k.id'), rateLimit: raw('k.rate_limit'), tokenLimit: raw('k.token_limit'), windowSeconds: raw('k.rate_window_seconds'), concurrentLimit: raw('k.concurrent_limit'), dailyCostLimit: raw('k.daily_cost_limit') }, settings)
  return sql`
  SELECT k.id, k.user_id, k.name, k.created_at, k.key_hash, k.previous_key_hash, k.previous_key_expires_at, k.is_active, k.expires_at, u.is_active AND NOT u.is_deleted AS user_active,
         k.allowed_models, k.allowed_providers, k.allowed_api_formats, k.allowed_ips, k.allowed_user_agents,
         u.allowed_models AS user_allowed_models, u.allowed_providers AS user_allowed_providers, u.allowed_api_formats AS user_allowed_api_formats,
         ${providerNames(raw('k.allowed_providers'))} AS allowed_provider_names, ${providerNames(raw('u.allowed_providers'))} AS user_allowed_provider_names,
         k.rate_limit, k.token_limit, k.rate_window_seconds, k.concurrent_limit, k.daily_cost_limit, k.total_cost_limit, k.total_cost, k.current_balance, k.balance_used, u.quota, u.used,
         CASE WHEN u.quota IS NOT NULL THEN (SELECT COALESCE(sum(uh.amount), 0) FROM admission_holds uh WHERE uh.user_id = u.id AND ${liveHoldSql('uh')}) ELSE 0 END::bigint AS user_held,
         EXISTS (SELECT FROM budgets b WHERE b.api_key_id = k.id UNION ALL SELECT FROM budgets b WHERE b.user_id = k.user_id) AS has_budgets,
         ${counters.columns}
    FROM api_keys k
    JOIN users u ON u.id = k.user_id
    ${counters.joins}
   WHERE ${where}`
}

/** keyState's query, for a statement that reads it beside other things (gateway/reserve.ts) */
export const keyStateQuery = (lookup: KeyLookup, settings: CounterSettings): Fragment =>
  keyStateSql('hash' in lookup ? byHashSql(sql`= ${lookup.hash}`) : 'id' in lookup ? sql`k.id = ${lookup.id}::uuid` : byHashSql(sql`= ANY(${lookup.hashes}::text[])`), settings)

/**
 * The keys whose current or previous hash matches: each by its own unique index (an OR of
 * the two needs a bitmap scan, which the verify pool does not plan: db/prisma.ts).
 */
const byHashSql = (match: Fragment): Fragment =>
  sql`k.id IN (SELECT a.id FROM api_keys a WHERE a.key_hash ${match} UNION ALL SELECT a.id FROM api_keys a WHERE a.previous_key_hash ${match})`

/**
 * The budgets (budgets/state.ts) of these keys and their owners, one row per key: read apart
 * from keyStateQuery and only for the keys whose row says they have any, because their
 * plan (a spend read per window edge over every month of usage) costs PostgreSQL more to
 * start than the rest of the key's state, budgets or none (bench/README, issue 17).
 */
export const keyBudgetsQuery = (keyIds: string[]): Fragment =>
  sql`SELECT k.id, ${budgetsSql(sql`b.id IN (SELECT o.id FROM budgets o WHERE o.api_key_id = k.id UNION ALL SELECT o.id FROM budgets o WHERE o.user_id = k.user_id)`, sql`now()`)} AS budgets
      FROM api_keys k WHERE k.id = ANY(${keyIds}::uuid[])`

/**
 * keyStateQuery's rows as states, with the budgets of the keys that have any read by `read`
 * (keyBudgetsQuery: nothing is read when none has); a key whose budgets were not read is an
 * error, never a key without budgets.
 */
export async function keyStatesOf (rows: ReadonlyArray<Record<string, unknown>>, read: (query: Fragment) => Promise<ReadonlyArray<Record<string, unknown>>>): Promise<KeyState[]> {
  const budgeted = rows.filter((row) => row.has_budgets === true).map((row) => row.id as string)
  const budgets = new Map((budgeted.length === 0 ? [] : await read(keyBudgetsQuery(budgeted))).map((row) => [row.id as string, row.budgets]))
  return rows.map((row) => {
    if (row.has_budgets !== true) return toKeyState(row, [])
    if (!budgets.has(row.id as string)) throw new Error(`the budgets of key ${row.id as string} were not read`)
    return toKeyState(row, budgets.get(row.id as string))
  })
}

export async function keyState (db: Sql, lookup: KeyLookup, settings: CounterSettings): Promise<KeyState | undefined> {
  // named: PostgreSQL plans each once per connection instead of on every call (the texts are fixed per lookup kind)
  const run = async (query: Fragment) => (await prepared(db).query(query.text, query.values)).rows as Array<Record<string, unknown>>
  const rows = await run(keyStateQuery(lookup, settings))
  return rows.length === 0 ? undefined : (await keyStatesOf(rows, run))[0]
}

/**
 * `key` as it reads once a new live hold is taken beside it — the key's own (`own`) or
 * another key's of the same owner: keyStateSql's rule for holds (user_held, the
 * counters' in accounting/read/counters.ts countHold, the budgets' in budgets/state.ts), so a batch of reservations can
 * decide each request after the ones before it without reading again.
 */
export function countHold (key: KeyState, hold: NewHold, own: boolean): void {
  if (key.quota !== null) key.user_held += hold.amount
  if (own) countCounterHold(key.counters, hold)
  countBudgetHold(key.budgets, hold, own)
}

/** A standalone key's balance left once what it spent and every live hold (and `hold`, a new one) are paid; null = unlimited. */
export const remainingBalance = (key: KeyState, hold = 0n): bigint | null =>
  key.current_balance === null ? null : key.current_balance - key.balance_used - key.counters.held_cost - hold

/** A reservation of this key must also hold its owner's lock: the owner has a quota or a budget over all their keys. */
export const ownerLockNeeded = (key: KeyState): boolean => key.quota !== null || hasUserBudget(key.budgets)

/** A row holding keyStateQuery's columns (and maybe others, left out) as a KeyState, with its budgets (budgetsSql's array). */
function toKeyState (row: Record<string, unknown>, budgets: unknown): KeyState {
  return {
    id: row.id as string,
    user_id: row.user_id as string,
    name: row.name as string,
    created_at: row.created_at as Date,
    key_hash: row.key_hash as string,
    previous_key_hash: row.previous_key_hash as string | null,
    previous_key_expires_at: row.previous_key_expires_at as Date | null,
    is_active: row.is_active as boolean,
    expires_at: row.expires_at as Date | null,
    user_active: row.user_active as boolean,
    allowed_models: row.allowed_models as string[] | null,
    allowed_providers: row.allowed_providers as string[] | null,
    allowed_api_formats: row.allowed_api_formats as string[] | null,
    user_allowed_models: row.user_allowed_models as string[] | null,
    user_allowed_providers: row.user_allowed_providers as string[] | null,
    user_allowed_api_formats: row.user_allowed_api_formats as string[] | null,
    ip_matcher: ipMatcher(row.allowed_ips as string[] | null),
    user_agent_matcher: userAgentMatcher(row.allowed_user_agents as string[] | null),
    allowed_provider_names: row.allowed_provider_names as string[],
    user_allowed_provider_names: row.user_allowed_provider_names as string[],
    rate_limit: row.rate_limit as number | null,
    token_limit: big(row.token_limit),
    rate_window_seconds: row.rate_window_seconds as number,
    concurrent_limit: row.concurrent_limit as number | null,
    daily_cost_limit: big(row.daily_cost_limit),
    total_cost_limit: big(row.total_cost_limit),
    total_cost: big(row.total_cost)!,
    current_balance: big(row.current_balance),
    balance_used: big(row.balance_used)!,
    quota: big(row.quota),
    used: big(row.used)!,
    user_held: big(row.user_held)!,
    budgets: toBudgetStates(budgets),
    counters: toKeyCounters(row)
  }
}

// node-postgres returns bigint columns as strings
const big = (value: unknown) => value === null ? null : BigInt(value as string)
