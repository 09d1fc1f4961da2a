// The home cards' pre-formatted strings (Aether's dashboard prints them as sent): token
// counts in K/M, money with a dollar sign, counts with separators. Rounding is half up
// on the exact integers, never on a float, so 1,005 tokens read 1.01K and $0.125 $0.13.
import { roundDiv } from '../../lib/money.js'

/** n / unit rounded half up to `decimals` places, as text. */
function fixed (n: bigint, unit: bigint, decimals: number): string {
  const scale = 10n ** BigInt(decimals)
  const scaled = roundDiv(n * scale, unit)
  if (decimals === 0) return scaled.toString()
  const negative = scaled < 0n
  const digits = (negative ? -scaled : scaled).toString().padStart(decimals + 1, '0')
  return `${negative ? '-' : ''}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`
}

/** 2, 1 or 0 decimals of n / unit: under 10, under 100, from 100 (compared before rounding, as the frontend does). */
function scaled (n: bigint, unit: bigint, suffix: string): string {
  const decimals = n < 10n * unit ? 2 : n < 100n * unit ? 1 : 0
  return `${fixed(n, unit, decimals)}${suffix}`
}

/** Tokens as the dashboard shows them: `999`, `1.23K`, `12.3K`, `123K`, `1.23M`, `12.3M`, `123M`. */
export function formatTokens (count: number | bigint): string {
  const n = BigInt(count)
  if (n < 1000n) return n.toString()
  if (n < 1_000_000n) return scaled(n, 1000n, 'K')
  return scaled(n, 1_000_000n, 'M')
}

/** nano-USD as `$12.34` (`decimals` places, half up). */
export function formatUsd (nano: bigint, decimals = 2): string {
  return `$${fixed(nano, 1_000_000_000n, decimals)}`
}

/** nano-USD as a USD number rounded half up to `decimals` places. */
export function roundedUsd (nano: bigint, decimals: number): number {
  return Number(fixed(nano, 1_000_000_000n, decimals))
}

/** An integer with thousands separators: `50,150`. */
export function formatCount (count: number): string {
  return count.toLocaleString('en-US')
}
