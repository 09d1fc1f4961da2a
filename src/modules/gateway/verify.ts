// POST /api/gateway/keys/verify: may this key make this request? One round trip
// reads the key, its user and — only for the limits the key has — its live counters,
// so no cache can let a disabled or exhausted key through.
import type { Sql } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { constantTimeEqual } from '../../lib/crypto.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsdOrNull } from '../../lib/money.js'
import createError from '@fastify/error'
import { API_KEY_PATTERN } from '../keys/service.js'

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

interface KeyState {
  id: string
  user_id: string
  key_hash: string
  is_active: boolean
  expires_at: Date | null
  user_active: boolean
  allowed_models: string[] | null
  allowed_providers: string[] | null
  allowed_api_formats: string[] | null
  user_allowed_models: string[] | null
  user_allowed_providers: string[] | null
  user_allowed_api_formats: string[] | null
  rate_limit: number | null
  concurrent_limit: number | null
  daily_cost_limit: bigint | null
  total_cost_limit: bigint | null
  total_cost: bigint
  current_balance: bigint | null
  balance_used: bigint
  quota: bigint | null
  used: bigint
  window_requests: number | null
  window_oldest: Date | null
  in_flight: number | null
  today_cost: bigint | null
}

/**
 * The counters are computed only for the limits a key has (CASE evaluates lazily):
 * the rate window and in-flight count from usage (api_key_id, created_at); today's
 * cost from usage_hourly (api_key_id, bucket) for whole hours since local midnight
 * plus raw rows for a midnight that falls inside an hour (half-hour time zones).
 */
async function loadKeyState (db: Sql, hash: string, timeZone: string, pendingTimeoutMinutes: number): Promise<KeyState | undefined> {
  // a named statement: PostgreSQL plans it once per connection instead of on every call
  const { rows } = await db.query({
    name: 'keymeter_verify_key',
    text: `
    WITH k AS (
      SELECT k.*, u.is_active AND NOT u.is_deleted AS user_active, u.allowed_models AS user_allowed_models,
             u.allowed_providers AS user_allowed_providers, u.allowed_api_formats AS user_allowed_api_formats, u.quota, u.used,
             (date_trunc('day', now() AT TIME ZONE $2) AT TIME ZONE $2) AS midnight
        FROM api_keys k JOIN users u ON u.id = k.user_id
       WHERE k.key_hash = $1
    )
    SELECT k.id, k.user_id, k.key_hash, k.is_active, k.expires_at, k.user_active,
           k.allowed_models, k.allowed_providers, k.allowed_api_formats, k.user_allowed_models, k.user_allowed_providers, k.user_allowed_api_formats,
           k.rate_limit, k.concurrent_limit, k.daily_cost_limit, k.total_cost_limit, k.total_cost, k.current_balance, k.balance_used, k.quota, k.used,
           CASE WHEN k.rate_limit IS NOT NULL THEN
             (SELECT count(*)::int FROM usage WHERE api_key_id = k.id AND created_at > now() - interval '60 seconds') END AS window_requests,
           CASE WHEN k.rate_limit IS NOT NULL THEN
             (SELECT min(created_at) FROM usage WHERE api_key_id = k.id AND created_at > now() - interval '60 seconds') END AS window_oldest,
           CASE WHEN k.concurrent_limit IS NOT NULL THEN
             (SELECT count(*)::int FROM usage WHERE api_key_id = k.id AND status IN ('pending', 'streaming')
                 AND created_at > now() - make_interval(mins => $3::int)) END AS in_flight,
           CASE WHEN k.daily_cost_limit IS NOT NULL THEN
             COALESCE((SELECT sum(total_cost) FROM usage_hourly WHERE api_key_id = k.id AND bucket >= date_trunc('hour', k.midnight)
                          + CASE WHEN k.midnight = date_trunc('hour', k.midnight) THEN interval '0' ELSE interval '1 hour' END), 0)
             + COALESCE((SELECT sum(total_cost) FROM usage WHERE api_key_id = k.id AND created_at >= k.midnight
                          AND created_at < date_trunc('hour', k.midnight) + interval '1 hour' AND k.midnight <> date_trunc('hour', k.midnight)), 0)
           END::bigint AS today_cost
      FROM k`,
    values: [hash, timeZone, pendingTimeoutMinutes]
  })
  const row = rows[0] as Record<string, unknown> | undefined
  if (row === undefined) return undefined
  // node-postgres returns bigint columns as strings
  const big = (name: string) => row[name] === null ? null : BigInt(row[name] as string)
  return {
    ...(row as unknown as KeyState),
    daily_cost_limit: big('daily_cost_limit'),
    total_cost_limit: big('total_cost_limit'),
    total_cost: big('total_cost')!,
    current_balance: big('current_balance'),
    balance_used: big('balance_used')!,
    quota: big('quota'),
    used: big('used')!,
    today_cost: big('today_cost')
  }
}

const allows = (list: string[] | null, value: string | undefined) => value === undefined || list === null || list.length === 0 || list.includes(value)

export interface VerifyRequest { key: string, model?: string, provider?: string, api_format?: string }

export async function verifyKey (db: Sql, keyring: Keyring, request: VerifyRequest, settings: { timeZone: string, pendingTimeoutMinutes: number }) {
  const hash = hashApiKey(keyring, request.key)
  // the lookup runs for malformed keys too, so a malformed key costs as long as an unknown one
  const key = await loadKeyState(db, hash, settings.timeZone, settings.pendingTimeoutMinutes)
  if (key === undefined || !API_KEY_PATTERN.test(request.key) || !constantTimeEqual(key.key_hash, hash)) throw new Refusals.key_invalid('invalid API key')
  if (!key.is_active) throw new Refusals.key_disabled('this API key is disabled')
  if (key.expires_at !== null && key.expires_at <= new Date()) throw new Refusals.key_expired('this API key has expired')
  if (!key.user_active) throw new Refusals.user_disabled('the owner of this API key is disabled')
  if (!allows(key.allowed_models, request.model) || !allows(key.user_allowed_models, request.model)) throw new Refusals.model_not_allowed(`model ${request.model} is not allowed for this key`)
  if (!allows(key.allowed_providers, request.provider) || !allows(key.user_allowed_providers, request.provider)) throw new Refusals.provider_not_allowed(`provider ${request.provider} is not allowed for this key`)
  if (!allows(key.allowed_api_formats, request.api_format) || !allows(key.user_allowed_api_formats, request.api_format)) throw new Refusals.api_format_not_allowed(`API format ${request.api_format} is not allowed for this key`)
  if (key.rate_limit !== null && (key.window_requests ?? 0) >= key.rate_limit) {
    const resetsIn = key.window_oldest === null ? 60 : Math.ceil((key.window_oldest.getTime() + 60_000 - Date.now()) / 1000)
    throw Object.assign(new Refusals.rate_limited(`rate limit of ${key.rate_limit} requests per minute reached`), { retryAfter: Math.max(1, resetsIn) })
  }
  if (key.concurrent_limit !== null && (key.in_flight ?? 0) >= key.concurrent_limit) {
    throw Object.assign(new Refusals.concurrency_limited(`${key.concurrent_limit} requests already in flight`), { retryAfter: 1 })
  }
  if (key.current_balance !== null && key.balance_used >= key.current_balance) throw new Refusals.balance_exhausted('the key\'s balance is used up')
  if (key.quota !== null && key.used >= key.quota) throw new Refusals.balance_exhausted('the owner\'s quota is used up')
  if (key.daily_cost_limit !== null && (key.today_cost ?? 0n) >= key.daily_cost_limit) throw new Refusals.daily_cost_limit('the key\'s daily cost limit is reached')
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
