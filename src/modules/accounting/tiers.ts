// A model price's tiers as stored (ModelPrice.tiers JSON): nano-USD per 1M tokens,
// cache prices always filled in (the defaults are applied when a price is written),
// ordered by up_to with the last tier open-ended (up_to null).
import { usdToNano, nanoToUsd, roundDiv } from '../../lib/money.js'

export interface StoredTier {
  /** the tier applies while the request's total input context is <= up_to tokens; null = no upper bound */
  up_to: number | null
  input: number
  output: number
  cache_write_5m: number
  cache_write_1h: number
  cache_read: number
}

/** A tier as the API speaks it: USD per 1M tokens; cache prices optional. */
export interface TierUsd {
  up_to: number | null
  input: number
  output: number
  cache_write_5m?: number | null
  cache_write_1h?: number | null
  cache_read?: number | null
}

/** Anthropic's cache price ratios, used when a price does not give its own. */
export const CACHE_DEFAULTS = { write5m: [5n, 4n], write1h: [2n, 1n], read: [1n, 10n] } as const

const scaled = (input: bigint, [num, den]: readonly [bigint, bigint]) => roundDiv(input * num, den)

export function tierFromUsd (tier: TierUsd): StoredTier {
  const input = usdToNano(tier.input)
  const given = (usd: number | null | undefined, fallback: bigint) => Number(usd === undefined || usd === null ? fallback : usdToNano(usd))
  return {
    up_to: tier.up_to,
    input: Number(input),
    output: Number(usdToNano(tier.output)),
    cache_write_5m: given(tier.cache_write_5m, scaled(input, CACHE_DEFAULTS.write5m)),
    cache_write_1h: given(tier.cache_write_1h, scaled(input, CACHE_DEFAULTS.write1h)),
    cache_read: given(tier.cache_read, scaled(input, CACHE_DEFAULTS.read))
  }
}

export function tierToUsd (tier: StoredTier) {
  return {
    up_to: tier.up_to,
    input: nanoToUsd(BigInt(tier.input)),
    output: nanoToUsd(BigInt(tier.output)),
    cache_write_5m: nanoToUsd(BigInt(tier.cache_write_5m)),
    cache_write_1h: nanoToUsd(BigInt(tier.cache_write_1h)),
    cache_read: nanoToUsd(BigInt(tier.cache_read))
  }
}

/** Tiers must rise strictly and end open-ended; returns the problem, or null when valid. */
export function tierProblem (tiers: Array<{ up_to: number | null }>): string | null {
  if (tiers.length === 0) return 'at least one tier is required'
  for (let i = 0; i < tiers.length; i++) {
    const upTo = tiers[i]!.up_to
    const last = i === tiers.length - 1
    if (last && upTo !== null) return 'the last tier must have up_to null (no upper bound)'
    if (!last && upTo === null) return 'only the last tier may have up_to null'
    if (i > 0 && upTo !== null && upTo <= (tiers[i - 1]!.up_to ?? 0)) return 'up_to must rise strictly from tier to tier'
  }
  return null
}

/**
 * A tier in Aether's names (its dashboard reads these): USD per 1M tokens, the 5-minute
 * write price as `cache_creation_price_per_1m` and the 1-hour one as a TTL price, with
 * keymeter's own names kept beside them for keymeter's clients.
 */
export function aetherTier (tier: StoredTier) {
  const usd = tierToUsd(tier)
  return {
    ...usd,
    input_price_per_1m: usd.input,
    output_price_per_1m: usd.output,
    cache_creation_price_per_1m: usd.cache_write_5m,
    cache_read_price_per_1m: usd.cache_read,
    cache_ttl_pricing: [{ ttl_minutes: 60, cache_creation_price_per_1m: usd.cache_write_1h }]
  }
}
