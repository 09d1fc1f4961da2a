// POST /api/gateway/keys/verify: may this key make this request? The checks (admit) are
// one rule for both kinds of verify. Without a request_id (advisory, this file) one round
// trip reads the key, its user and — only for the limits the key has — its live counters
// (src/modules/keys/counters.ts), and VerifyCache may reuse that read for at most
// VERIFY_CACHE_TTL_MS; with one, reserve.ts reads them under the key's lock and records a hold.
import type { Sql } from '../../db/prisma.js'
import { constantTimeEqual } from '../../lib/crypto.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import createError from '@fastify/error'
import { countHold, keyState, remainingBalance, windowResetsIn, type KeyState } from '../keys/counters.js'
import { API_KEY_PATTERN } from '../keys/service.js'
import { ipAllowed, userAgentAllowed } from '../keys/restrictions.js'
import { budgetApplies, budgetRetryAfter, describeBudget } from '../budgets/state.js'
import type { VerifyCache } from './cache.js'

const refusal = (code: string, status: number) => createError(`KM_${code.toUpperCase()}`, '%s', status)

/** Each refusal has its own type; checks run in this order. */
export const Refusals = {
  key_invalid: refusal('key_invalid', 401),
  key_disabled: refusal('key_disabled', 401),
  key_expired: refusal('key_expired', 401),
  user_disabled: refusal('user_disabled', 401),
  /** the key has an IP allow-list and client_ip is missing or outside it */
  ip_not_allowed: refusal('ip_not_allowed', 403),
  /** the key has a User-Agent allow-list and user_agent is missing or matches none */
  client_not_allowed: refusal('client_not_allowed', 403),
  model_not_allowed: refusal('model_not_allowed', 403),
  provider_not_allowed: refusal('provider_not_allowed', 403),
  api_format_not_allowed: refusal('api_format_not_allowed', 403),
  rate_limited: refusal('rate_limited', 429),
  token_limited: refusal('token_limited', 429),
  concurrency_limited: refusal('concurrency_limited', 429),
  balance_exhausted: refusal('balance_exhausted', 402),
  daily_cost_limit: refusal('daily_cost_limit', 402),
  total_cost_limit: refusal('total_cost_limit', 402),
  /** a budget's window (budgets/state.ts) has no room for the request */
  budget_exhausted: refusal('budget_exhausted', 402),
  /** a reservation for a request that is already settled, or held by another key */
  request_conflict: refusal('request_conflict', 409)
} as const

const allows = (list: string[] | null, value: string | undefined) => value === undefined || list === null || list.length === 0 || list.includes(value)
/** A provider list holds names or, as Aether's forms write it, ids: `names` are the listed ids' provider names. */
const allowsProvider = (list: string[] | null, names: string[], provider: string | undefined) => allows(list, provider) || names.includes(provider!)

export interface VerifyRequest { key: string, model?: string, provider?: string, api_format?: string, client_ip?: string, user_agent?: string }

/**
 * A cost limit admits a request while what is spent and held, plus the request's own hold,
 * stays within it; an advisory verify (no hold) needs one nano-USD of room, as before holds.
 */
const fits = (spentAndHeld: bigint, limit: bigint | null, hold: bigint) => limit === null || spentAndHeld + (hold > 0n ? hold : 1n) <= limit

export interface VerifySettings { timeZone: string, pendingTimeoutMinutes: number, cache?: VerifyCache<KeyState> }

export async function verifyKey (db: Sql, keyring: Keyring, request: VerifyRequest, settings: VerifySettings) {
  const hash = hashApiKey(keyring, request.key)
  // the lookup runs for malformed keys too, so a malformed key costs as long as an unknown one
  const read = () => keyState(db, { hash }, settings)
  const key = await (settings.cache === undefined ? read() : settings.cache.get(hash, read))
  const answer = admit(key, hash, request, 0n)
  // the cached state counts what it admitted (a request in the window and in flight, until its
  // usage clears the cache), so reusing it errs toward refusal and never admits past a limit a read would not
  if (settings.cache !== undefined) countHold(key!, { amount: 0n, tokens: 0n, started: false, at: new Date() }, true)
  return answer
}

/**
 * The checks, in Refusals' order, of a key's state (read by hash) against a request that
 * would hold `hold` nano-USD and `tokens` tokens (0 for an advisory verify): throws the first refusal, else the answer.
 */
export function admit (key: KeyState | undefined, hash: string, request: VerifyRequest, hold: bigint, tokens = 0n) {
  checkKey(key, hash, request)
  checkLimits(key, hold, tokens, request.model)
  return answerOf(key, hold)
}

/**
 * The secret is the key's current one, or the one its last rotation replaced while its grace
 * lasts (checked against the clock on every call, so a cached state cannot stretch it).
 */
const secretMatches = (key: KeyState, hash: string) => constantTimeEqual(key.key_hash, hash) ||
  (key.previous_key_hash !== null && key.previous_key_expires_at !== null && key.previous_key_expires_at > new Date() && constantTimeEqual(key.previous_key_hash, hash))

/** The key is this key, usable, called from an allowed client, and allowed this model, provider and format. */
export function checkKey (key: KeyState | undefined, hash: string, request: VerifyRequest): asserts key is KeyState {
  if (key === undefined || !API_KEY_PATTERN.test(request.key) || !secretMatches(key, hash)) throw new Refusals.key_invalid('invalid API key')
  if (!key.is_active) throw new Refusals.key_disabled('this API key is disabled')
  if (key.expires_at !== null && key.expires_at <= new Date()) throw new Refusals.key_expired('this API key has expired')
  if (!key.user_active) throw new Refusals.user_disabled('the owner of this API key is disabled')
  if (!ipAllowed(key.ip_matcher, request.client_ip)) throw new Refusals.ip_not_allowed(request.client_ip === undefined ? 'this API key is restricted to some IP addresses: client_ip is required' : `client IP ${request.client_ip} is not allowed for this key`)
  if (!userAgentAllowed(key.user_agent_matcher, request.user_agent)) throw new Refusals.client_not_allowed(request.user_agent === undefined ? 'this API key is restricted to some clients: user_agent is required' : 'this client (User-Agent) is not allowed for this key')
  if (!allows(key.allowed_models, request.model) || !allows(key.user_allowed_models, request.model)) throw new Refusals.model_not_allowed(`model ${request.model} is not allowed for this key`)
  if (!allowsProvider(key.allowed_providers, key.allowed_provider_names, request.provider) || !allowsProvider(key.user_allowed_providers, key.user_allowed_provider_names, request.provider)) throw new Refusals.provider_not_allowed(`provider ${request.provider} is not allowed for this key`)
  if (!allows(key.allowed_api_formats, request.api_format) || !allows(key.user_allowed_api_formats, request.api_format)) throw new Refusals.api_format_not_allowed(`API format ${request.api_format} is not allowed for this key`)
}

/** Every limit has room for one more request for `model` holding `hold` and `tokens`, beside every live hold. */
export function checkLimits (key: KeyState, hold: bigint, tokens: bigint, model: string | undefined): void {
  const { counters } = key
  // Retry-After: until the window's oldest request leaves it (the whole window when only holds of started requests fill it)
  const retryAfter = () => counters.window_oldest === null ? counters.window_seconds : Math.max(1, windowResetsIn(counters))
  if (key.rate_limit !== null && counters.window_requests >= key.rate_limit) {
    throw Object.assign(new Refusals.rate_limited(`rate limit of ${key.rate_limit} requests per ${key.rate_window_seconds} s reached`), { retryAfter: retryAfter() })
  }
  if (key.token_limit !== null && !fits(counters.window_tokens, key.token_limit, tokens)) {
    throw Object.assign(new Refusals.token_limited(`token limit of ${key.token_limit} tokens per ${key.rate_window_seconds} s reached`), { retryAfter: retryAfter() })
  }
  if (key.concurrent_limit !== null && (counters.in_flight ?? 0) >= key.concurrent_limit) {
    throw Object.assign(new Refusals.concurrency_limited(`${key.concurrent_limit} requests already in flight`), { retryAfter: 1 })
  }
  const held = counters.held_cost
  if (!fits(key.balance_used + held, key.current_balance, hold)) throw new Refusals.balance_exhausted('the key\'s balance is used up')
  if (!fits(key.used + key.user_held, key.quota, hold)) throw new Refusals.balance_exhausted('the owner\'s quota is used up')
  if (!fits((counters.today_cost ?? 0n) + held, key.daily_cost_limit, hold)) throw new Refusals.daily_cost_limit('the key\'s daily cost limit is reached')
  if (!fits(key.total_cost + held, key.total_cost_limit, hold)) throw new Refusals.total_cost_limit('the key\'s total cost limit is reached')
  for (const budget of key.budgets) {
    if (budgetApplies(budget, model) && !fits(budget.spent + budget.held, budget.limit, hold)) {
      throw Object.assign(new Refusals.budget_exhausted(`${describeBudget(budget)} of ${nanoToUsd(budget.limit)} USD is used up`), { retryAfter: budgetRetryAfter(budget) })
    }
  }
}

/** The answer to an admitted request; `hold` is its own hold when not yet among the state's live holds. */
export function answerOf (key: KeyState, hold: bigint) {
  return {
    allowed: true as const,
    key_id: key.id,
    user_id: key.user_id,
    limits: {
      rate_limit: key.rate_limit,
      token_limit: key.token_limit === null ? null : Number(key.token_limit),
      rate_window_seconds: key.rate_window_seconds,
      concurrent_limit: key.concurrent_limit,
      daily_cost_limit_usd: nanoToUsdOrNull(key.daily_cost_limit),
      total_cost_limit_usd: nanoToUsdOrNull(key.total_cost_limit),
      allowed_models: key.allowed_models,
      allowed_providers: key.allowed_providers,
      allowed_api_formats: key.allowed_api_formats
    },
    // what is left once every live hold, this request's included, is paid
    remaining_balance_usd: nanoToUsdOrNull(remainingBalance(key, hold))
  }
}
