// POST /api/gateway/keys/verify: may this key make this request? One round trip
// reads the key, its user and — only for the limits the key has — its live counters
// (src/modules/keys/counters.ts); VerifyCache may reuse that read for at most
// VERIFY_CACHE_TTL_MS. The checks themselves run on every call.
import type { Sql } from '../../db/prisma.js'
import { constantTimeEqual } from '../../lib/crypto.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsdOrNull } from '../../lib/money.js'
import createError from '@fastify/error'
import { keyState, windowResetsIn, type KeyState } from '../keys/counters.js'
import { API_KEY_PATTERN } from '../keys/service.js'
import type { VerifyCache } from './cache.js'

const refusal = (code: string, status: number) => createError(`KM_${code.toUpperCase()}`, '%s', status)

/** Each refusal has its own type; checks run in this order. */
export const Refusals = {
  key_invalid: refusal('key_invalid', 401),
  key_disabled: refusal('key_disabled', 401),
  key_expired: refusal('key_expired', 401),
  user_disabled: refusal('user_disabled', 401),
  model_not_allowed: refusal('model_not_allowed', 403),
  provider_not_allowed: refusal('provider_not_allowed', 403),
  api_format_not_allowed: refusal('api_format_not_allowed', 403),
  rate_limited: refusal('rate_limited', 429),
  concurrency_limited: refusal('concurrency_limited', 429),
  balance_exhausted: refusal('balance_exhausted', 402),
  daily_cost_limit: refusal('daily_cost_limit', 402),
  total_cost_limit: refusal('total_cost_limit', 402)
} as const

const allows = (list: string[] | null, value: string | undefined) => value === undefined || list === null || list.length === 0 || list.includes(value)
/** A provider list holds names or, as Aether's forms write it, ids: `names` are the listed ids' provider names. */
const allowsProvider = (list: string[] | null, names: string[], provider: string | undefined) => allows(list, provider) || names.includes(provider!)

export interface VerifyRequest { key: string, model?: string, provider?: string, api_format?: string }

export interface VerifySettings { timeZone: string, pendingTimeoutMinutes: number, cache?: VerifyCache<KeyState> }

export async function verifyKey (db: Sql, keyring: Keyring, request: VerifyRequest, settings: VerifySettings) {
  const hash = hashApiKey(keyring, request.key)
  // the lookup runs for malformed keys too, so a malformed key costs as long as an unknown one
  const read = () => keyState(db, { hash }, settings)
  const key = await (settings.cache === undefined ? read() : settings.cache.get(hash, read))
  if (key === undefined || !API_KEY_PATTERN.test(request.key) || !constantTimeEqual(key.key_hash, hash)) throw new Refusals.key_invalid('invalid API key')
  if (!key.is_active) throw new Refusals.key_disabled('this API key is disabled')
  if (key.expires_at !== null && key.expires_at <= new Date()) throw new Refusals.key_expired('this API key has expired')
  if (!key.user_active) throw new Refusals.user_disabled('the owner of this API key is disabled')
  if (!allows(key.allowed_models, request.model) || !allows(key.user_allowed_models, request.model)) throw new Refusals.model_not_allowed(`model ${request.model} is not allowed for this key`)
  if (!allowsProvider(key.allowed_providers, key.allowed_provider_names, request.provider) || !allowsProvider(key.user_allowed_providers, key.user_allowed_provider_names, request.provider)) throw new Refusals.provider_not_allowed(`provider ${request.provider} is not allowed for this key`)
  if (!allows(key.allowed_api_formats, request.api_format) || !allows(key.user_allowed_api_formats, request.api_format)) throw new Refusals.api_format_not_allowed(`API format ${request.api_format} is not allowed for this key`)
  const { counters } = key
  if (key.rate_limit !== null && counters.window_requests >= key.rate_limit) {
    const retryAfter = counters.window_oldest === null ? 60 : Math.max(1, windowResetsIn(counters))
    throw Object.assign(new Refusals.rate_limited(`rate limit of ${key.rate_limit} requests per minute reached`), { retryAfter })
  }
  if (key.concurrent_limit !== null && (counters.in_flight ?? 0) >= key.concurrent_limit) {
    throw Object.assign(new Refusals.concurrency_limited(`${key.concurrent_limit} requests already in flight`), { retryAfter: 1 })
  }
  if (key.current_balance !== null && key.balance_used >= key.current_balance) throw new Refusals.balance_exhausted('the key\'s balance is used up')
  if (key.quota !== null && key.used >= key.quota) throw new Refusals.balance_exhausted('the owner\'s quota is used up')
  if (key.daily_cost_limit !== null && (counters.today_cost ?? 0n) >= key.daily_cost_limit) throw new Refusals.daily_cost_limit('the key\'s daily cost limit is reached')
  if (key.total_cost_limit !== null && key.total_cost >= key.total_cost_limit) throw new Refusals.total_cost_limit('the key\'s total cost limit is reached')
  return {
    allowed: true as const,
    key_id: key.id,
    user_id: key.user_id,
    limits: {
      rate_limit: key.rate_limit,
      concurrent_limit: key.concurrent_limit,
      daily_cost_limit_usd: nanoToUsdOrNull(key.daily_cost_limit),
      total_cost_limit_usd: nanoToUsdOrNull(key.total_cost_limit),
      allowed_models: key.allowed_models,
      allowed_providers: key.allowed_providers,
      allowed_api_formats: key.allowed_api_formats
    },
    remaining_balance_usd: key.current_balance === null ? null : nanoToUsdOrNull(key.current_balance - key.balance_used)
  }
}
