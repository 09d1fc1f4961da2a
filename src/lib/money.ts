// Money is integer nano-USD (1 USD = 1e9) in the database and in arithmetic; USD
// numbers exist only at the HTTP edge.
export const NANO_PER_USD = 1_000_000_000n

/** USD number → nano-USD, exact for any decimal the number prints as (no float multiplication). */
export function usdToNano (usd: number): bigint {
  if (!Number.isFinite(usd)) throw new RangeError('amount must be a finite number')
  const [mantissa = '0', exponent = '0'] = usd.toExponential().split('e')
  const negative = mantissa.startsWith('-')
  const [whole = '0', fraction = ''] = mantissa.replace('-', '').split('.')
  const digits = BigInt(whole + fraction)
  const scale = Number(exponent) - fraction.length + 9 // power of ten to reach nano units
  const nano = scale >= 0 ? digits * 10n ** BigInt(scale) : roundDiv(digits, 10n ** BigInt(-scale))
  return negative ? -nano : nano
}

/** nano-USD → USD number for JSON (a double holds every nano amount below 9e6 USD exactly enough). */
export function nanoToUsd (nano: bigint): number {
  return Number(nano) / 1e9
}

export function nanoToUsdOrNull (nano: bigint | null | undefined): number | null {
  return nano === null || nano === undefined ? null : nanoToUsd(nano)
}

/** Integer division rounding half away from zero. */
export function roundDiv (numerator: bigint, denominator: bigint): bigint {
  const negative = (numerator < 0n) !== (denominator < 0n)
  const n = numerator < 0n ? -numerator : numerator
  const d = denominator < 0n ? -denominator : denominator
  const q = (n + d / 2n) / d
  return negative ? -q : q
}

/** `part` as a percent of `whole` (> 0), to the hundredth, rounded down: in integers, exact at any amount. */
export const percentOf = (part: bigint, whole: bigint): number => Number((part * 10_000n) / whole) / 100

/** nano-USD → USD as an exact decimal string (nine places at most, trailing zeros dropped): for text exports, where a double's rounding would show. */
export function nanoToUsdString (nano: bigint): string {
  const sign = nano < 0n ? '-' : ''
  const abs = nano < 0n ? -nano : nano
  const fraction = (abs % NANO_PER_USD).toString().padStart(9, '0').replace(/0+$/, '')
  return `${sign}${abs / NANO_PER_USD}${fraction === '' ? '' : `.${fraction}`}`
}
