// Pricing one request, exactly: integer nano-USD, one rounding per component.
// Prices are nano-USD per 1M tokens, so a component costs tokens × price / 1e6.
// The rule is written here once, in TypeScript (ingestion) and as SQL (the seed's bulk
// load prices its rows inside PostgreSQL with the *Sql functions at the end).
import sql, { join, raw, type Sql as Fragment } from 'sql-template-tag'
import { roundDiv } from '../../lib/money.js'
import { inFlightSql } from './rules.js'
import { tierToUsd, type StoredTier } from './tiers.js'

/** What pricing needs of a price version (prices/service's PriceVersion has it). */
export interface PricedVersion { id: string, providerId: string | null, tiers: StoredTier[], pricePerRequest: bigint | null }

export interface Tokens {
  input: number
  output: number
  /** cache writes, split by the TTL they were written with */
  cacheWrite5m: number
  cacheWrite1h: number
  cacheRead: number
}

export interface Costs { input: bigint, output: bigint, cacheCreation: bigint, cacheRead: bigint, request: bigint, total: bigint }

/** Each cost and the usage column it is stored in (`actual_` + the column for the actual cost). */
export const COST_COLUMNS: ReadonlyArray<readonly [keyof Costs, string]> = [
  ['input', 'input_cost'], ['output', 'output_cost'], ['cacheCreation', 'cache_creation_cost'],
  ['cacheRead', 'cache_read_cost'], ['request', 'request_cost'], ['total', 'total_cost']
]

export interface PricedRequest {
  costs: Costs
  /** what the provider costs the operator: costs × the provider key's rate multiplier (zero on free tiers) */
  actual: Costs
  source: 'model_price' | 'unpriced'
  /** the unit prices used, nano-USD per 1M tokens (per request for the last); null when unpriced */
  snapshot: { input: bigint, output: bigint, cacheWrite5m: bigint, cacheWrite1h: bigint, cacheRead: bigint, perRequest: bigint | null } | null
  tieredPricing: TieredPricing | null
}

export interface TieredPricing {
  total_input_context: number
  tier_index: number
  tier_count: number
  current_tier: ReturnType<typeof tierToUsd>
  tiers: Array<ReturnType<typeof tierToUsd>>
  source: 'provider' | 'global'
  model_price_id: string
}

const PER_MILLION = 1_000_000n
/** rate multipliers are carried as integer millionths (the column is DECIMAL(12,6)) */
export const MULTIPLIER_SCALE = 1_000_000n

const ZERO: Costs = { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n }

/**
 * When the gateway reports cache writes without the 5m/1h split, they were written
 * with the provider key's TTL: 60 minutes → the 1-hour price, otherwise 5-minute.
 */
export function splitCacheWrites (total: number, split5m: number | undefined, split1h: number | undefined, cacheTtlMinutes: number | null): { write5m: number, write1h: number } {
  if (split5m !== undefined || split1h !== undefined) return { write5m: split5m ?? 0, write1h: split1h ?? 0 }
  return cacheTtlMinutes === 60 ? { write5m: 0, write1h: total } : { write5m: total, write1h: 0 }
}

/**
 * The tier for a request: the first whose up_to covers its total input context. Usage rows
 * store no tier index (the detail view derives it again with this rule from the row's own
 * tokens and its immutable price snapshot): a change to this rule must first store the
 * index on the rows priced before it, or their detail would show another tier.
 */
export function tierFor (tiers: StoredTier[], context: number): number {
  const index = tiers.findIndex((tier) => tier.up_to === null || context <= tier.up_to)
  return index === -1 ? tiers.length - 1 : index
}

function withTotal (parts: Omit<Costs, 'total'>): Costs {
  return { ...parts, total: parts.input + parts.output + parts.cacheCreation + parts.cacheRead + parts.request }
}

type Units = Omit<NonNullable<PricedRequest['snapshot']>, 'perRequest'>

/** A tier's unit prices as bigints (and as doubles, for the exact fast path), and every tier in USD (what tiered_pricing shows). */
interface TierForms { units: Units[], numbers: Array<Record<keyof Units, number> | null>, usd: Array<ReturnType<typeof tierToUsd>> }

/**
 * Each price version's tiers converted once, not once per request: a batch of 500
 * completions prices them all with the same few versions (the conversions and their
 * objects were a tenth of ingestion's JavaScript). Keyed by the version's tiers array,
 * so the forms live as long as the version loaded for the batch. Shared, so frozen.
 */
const tierForms = new WeakMap<StoredTier[], TierForms>()
function formsOf (tiers: StoredTier[]): TierForms {
  let forms = tierForms.get(tiers)
  if (forms === undefined) {
    forms = {
      units: tiers.map((tier) => Object.freeze({
        input: BigInt(tier.input),
        output: BigInt(tier.output),
        cacheWrite5m: BigInt(tier.cache_write_5m),
        cacheWrite1h: BigInt(tier.cache_write_1h),
        cacheRead: BigInt(tier.cache_read)
      })),
      // a tier whose prices are not all naturals below 2^53 is priced in bigints only
      numbers: tiers.map((tier) => [tier.input, tier.output, tier.cache_write_5m, tier.cache_write_1h, tier.cache_read].every(natural)
        ? Object.freeze({ input: tier.input, output: tier.output, cacheWrite5m: tier.cache_write_5m, cacheWrite1h: tier.cache_write_1h, cacheRead: tier.cache_read })
        : null),
      usd: Object.freeze(tiers.map((tier) => Object.freeze(tierToUsd(tier)))) as TierForms['usd']
    }
    tierForms.set(tiers, forms)
  }
  return forms
}

/** A token component's cost: tokens × a price per 1M tokens, rounded once (half away from zero). */
export const componentCost = (tokens: number, pricePerMillion: bigint): bigint => roundDiv(BigInt(tokens) * pricePerMillion, PER_MILLION)

/** The unit prices a request's cache economics need (nano-USD per 1M tokens); null: the request was not priced. */
export interface CachePriceSnapshot { input: bigint, cacheWrite5m: bigint, cacheWrite1h: bigint, cacheRead: bigint }

/**
 * What a request's prompt cache saved and cost above the input price, nano-USD, each term
 * rounded once: reads at (input − read price), each write kind at (its price − input).
 * The one rule for cache savings: cache_savings_hourly (cache/timeline.ts, rebuild.ts)
 * and the model/provider rollups (model.ts) both price with it; cacheEconomicsSql is it in SQL.
 */
export function cacheEconomics (tokens: { cacheRead: number, cacheWrite5m: number, cacheWrite1h: number }, p: CachePriceSnapshot | null) {
  return {
    readSaving: p === null ? 0n : componentCost(tokens.cacheRead, p.input - p.cacheRead),
    write5mPremium: p === null ? 0n : componentCost(tokens.cacheWrite5m, p.cacheWrite5m - p.input),
    write1hPremium: p === null ? 0n : componentCost(tokens.cacheWrite1h, p.cacheWrite1h - p.input)
  }
}

/** The costs and actual costs of a priced request, in bigints: exact at any size. */
export function costsInBigints (tokens: Tokens, unit: Units, request: bigint, multiplier: bigint | null): { costs: Costs, actual: Costs } {
  const cost = componentCost
  const costs = withTotal({
    input: cost(tokens.input, unit.input),
    output: cost(tokens.output, unit.output),
    // one rounding for both write kinds, so the component is as exact as the others
    cacheCreation: roundDiv(BigInt(tokens.cacheWrite5m) * unit.cacheWrite5m + BigInt(tokens.cacheWrite1h) * unit.cacheWrite1h, PER_MILLION),
    cacheRead: cost(tokens.cacheRead, unit.cacheRead),
    request
  })
  const scale = (value: bigint) => multiplier === null ? 0n : roundDiv(value * multiplier, MULTIPLIER_SCALE)
  const actual = withTotal({
    input: scale(costs.input),
    output: scale(costs.output),
    cacheCreation: scale(costs.cacheCreation),
    cacheRead: scale(costs.cacheRead),
    request: scale(costs.request)
  })
  return { costs, actual }
}

const EXACT = Number.MAX_SAFE_INTEGER
const EXACT_BIG = BigInt(EXACT)
const MILLION = 1_000_000
/** an integer a double holds exactly, not negative */
const natural = (n: number) => Number.isSafeInteger(n) && n >= 0
const fitsDouble = (n: bigint | null) => n === null || (n >= 0n && n <= EXACT_BIG)

/** a ÷ 1e6 rounded half away from zero, for an integer 0 ≤ a < 2^53 (the remainder and the quotient of the difference are exact). */
function perMillion (a: number): number {
  const remainder = a % MILLION
  return (a - remainder) / MILLION + (remainder >= MILLION / 2 ? 1 : 0)
}

/**
 * The same costs as costsInBigints, computed in doubles where that is exact: every
 * operand a non-negative integer and every product and sum below 2^53 (a double holds
 * such integers exactly, and a result past 2^53 cannot round back below it, so the
 * checks on results suffice). Null otherwise, and the bigints price the request.
 * Bigint arithmetic allocates at each step; this path was most of pricing's time.
 */
export function costsInNumbers (tokens: Tokens, unit: Record<keyof Units, number> | null, request: number, multiplier: number | null): { costs: Costs, actual: Costs } | null {
  if (unit === null) return null
  const { input, output, cacheWrite5m, cacheWrite1h, cacheRead } = tokens
  if (!(natural(input) && natural(output) && natural(cacheWrite5m) && natural(cacheWrite1h) && natural(cacheRead) && natural(request) && (multiplier === null || natural(multiplier)))) return null
  const inputProduct = input * unit.input
  const outputProduct = output * unit.output
  const writeProduct = cacheWrite5m * unit.cacheWrite5m + cacheWrite1h * unit.cacheWrite1h
  const readProduct = cacheRead * unit.cacheRead
  if (!(inputProduct <= EXACT && outputProduct <= EXACT && writeProduct <= EXACT && readProduct <= EXACT)) return null
  const parts = [perMillion(inputProduct), perMillion(outputProduct), perMillion(writeProduct), perMillion(readProduct), request]
  const total = parts[0]! + parts[1]! + parts[2]! + parts[3]! + parts[4]!
  const scaled = parts.map((part) => multiplier === null ? 0 : part * multiplier)
  if (!(total <= EXACT && scaled.every((product) => product <= EXACT))) return null
  const actualParts = scaled.map(perMillion)
  const actualTotal = actualParts[0]! + actualParts[1]! + actualParts[2]! + actualParts[3]! + actualParts[4]!
  if (!(actualTotal <= EXACT)) return null
  const costs = (values: number[], sum: number): Costs => ({
    input: BigInt(values[0]!), output: BigInt(values[1]!), cacheCreation: BigInt(values[2]!), cacheRead: BigInt(values[3]!), request: BigInt(values[4]!), total: BigInt(sum)
  })
  return { costs: costs(parts, total), actual: costs(actualParts, actualTotal) }
}

export function priceRequest (tokens: Tokens, price: PricedVersion | null, options: { success: boolean, multiplierMicros: bigint, freeTier: boolean }): PricedRequest {
  if (price === null || price.tiers.length === 0) return { costs: ZERO, actual: ZERO, source: 'unpriced', snapshot: null, tieredPricing: null }
  const context = inputContext(tokens)
  const index = tierFor(price.tiers, context)
  const forms = formsOf(price.tiers)
  const unit = forms.units[index]!
  const request = options.success ? price.pricePerRequest ?? 0n : 0n
  const multiplier = options.freeTier ? null : options.multiplierMicros
  const { costs, actual } = (fitsDouble(request) && fitsDouble(multiplier)
    ? costsInNumbers(tokens, forms.numbers[index]!, Number(request), multiplier === null ? null : Number(multiplier))
    : null) ?? costsInBigints(tokens, unit, request, multiplier)
  return {
    costs,
    actual,
    source: 'model_price',
    snapshot: { ...unit, perRequest: price.pricePerRequest },
    tieredPricing: tieredPricingOf(price, context, index)
  }
}

/**
 * The tier facts of a request priced by `price` at this input context. Usage rows do not
 * copy them: a row keeps its price version's id (model_price_id, an immutable
 * price_snapshots row) and its token counts, and the detail view rebuilds them here with
 * the tier tierFor chose when the request was priced (docs/accounting.md, Slim rows).
 */
export function tieredPricingOf (price: Pick<PricedVersion, 'id' | 'providerId' | 'tiers'>, context: number, index = tierFor(price.tiers, context)): TieredPricing {
  const forms = formsOf(price.tiers)
  return {
    total_input_context: context,
    tier_index: index,
    tier_count: price.tiers.length,
    current_tier: forms.usd[index]!,
    tiers: forms.usd,
    source: price.providerId === null ? 'global' : 'provider',
    model_price_id: price.id
  }
}

/** A request's total input context, the number that chooses its tier (inputContextSql is it in SQL). */
export const inputContext = (t: Omit<Tokens, 'output'>): number => t.input + t.cacheWrite5m + t.cacheWrite1h + t.cacheRead

/** What an admission hold needs to know of a request before it is served. */
export interface Estimate {
  /** its whole input context: input, cache writes and cache reads */
  inputTokens: number
  /** the most output tokens it may produce (the request's max_tokens) */
  outputTokens: number
}

const ceilDiv = (numerator: bigint, denominator: bigint) => (numerator + denominator - 1n) / denominator

/**
 * The most a request within its estimate can cost its key (`costs.total`; the rate
 * multiplier touches only `actual`), for its admission hold. Any tier up to the estimate's
 * may apply (a smaller context picks an earlier tier), and any input token may be a cache
 * write: so each input token at the dearest input-side price of those tiers, each output
 * token at their dearest output price, both rounded up, plus 2 nano-USD for the half-up
 * rounding of the four input components priceRequest rounds apart, plus the per-request price.
 */
export function worstCaseCost (price: PricedVersion, estimate: Estimate): bigint {
  const units = formsOf(price.tiers).units.slice(0, tierFor(price.tiers, estimate.inputTokens) + 1)
  let input = 0n
  let output = 0n
  for (const unit of units) {
    for (const value of [unit.input, unit.cacheWrite5m, unit.cacheWrite1h, unit.cacheRead]) if (value > input) input = value
    if (unit.output > output) output = unit.output
  }
  return ceilDiv(BigInt(estimate.inputTokens) * input, PER_MILLION) + 2n + ceilDiv(BigInt(estimate.outputTokens) * output, PER_MILLION) + (price.pricePerRequest ?? 0n)
}

/** A DECIMAL(12,6) multiplier (as Prisma's Decimal or its string) in integer millionths. */
export function multiplierMicros (value: { toString: () => string } | null | undefined): bigint {
  if (value === null || value === undefined) return MULTIPLIER_SCALE
  const [whole = '0', fraction = ''] = value.toString().split('.')
  return BigInt(whole) * MULTIPLIER_SCALE + BigInt((fraction + '000000').slice(0, 6))
}

// ---- the same rule in SQL, in numeric: exact at any size, as the bigints are ----

/** The exact decimal 1 / `power` for a power of ten (1e6 → 0.000001). */
function reciprocal (power: bigint): string {
  const digits = power.toString().length - 1
  if (power !== 10n ** BigInt(digits)) throw new Error(`${power} is not a power of ten`)
  return digits === 0 ? '1' : `0.${'0'.repeat(digits - 1)}1`
}

/**
 * `value` ÷ `divisor` rounded half away from zero: roundDiv in SQL. Multiplying by the
 * exact reciprocal keeps every digit, and numeric round() rounds half away from zero.
 */
function roundDivSql (value: Fragment, divisor: bigint): Fragment {
  return sql`round((${value})::numeric * ${raw(reciprocal(divisor))})::bigint`
}

/** The input context that chooses the tier (as priceRequest adds it). */
export const inputContextSql = (t: Record<keyof Omit<Tokens, 'output'>, Fragment>): Fragment =>
  sql`(${t.input} + ${t.cacheWrite5m} + ${t.cacheWrite1h} + ${t.cacheRead})`

/**
 * tierFor in SQL: the index of the first tier whose up_to covers `context`, given every
 * tier's up_to but the last's (NULL: unbounded); the last tier when none does.
 */
export function tierIndexSql (context: Fragment, upTos: Fragment[]): Fragment {
  if (upTos.length === 0) return sql`0`
  const cases = upTos.map((upTo, i) => sql`WHEN ${upTo} IS NULL OR ${context} <= ${upTo} THEN ${raw(String(i))}`)
  return sql`(CASE ${join(cases, ' ')} ELSE ${raw(String(upTos.length))} END)`
}

/** A token component's cost: tokens × price per 1M, rounded once. */
export const componentCostSql = (tokens: Fragment, pricePerMillion: Fragment): Fragment => roundDivSql(sql`${tokens}::numeric * ${pricePerMillion}`, PER_MILLION)

/**
 * The tier that priced a usage row, joined (LEFT: every column NULL on an unpriced or
 * unfinished row) from price_snapshot_tiers as `tier`: its unit prices under the names the
 * rows' copies had (input_price_per_1m, …, price_per_request). The same tier tierFor chose:
 * the snapshot's tier whose context range (above, up_to] holds the row's input context.
 * `usage` is the row's alias or table name. Served by price_snapshot_tiers' primary key
 * (snapshot_id, tier_index): a few rows per snapshot.
 */
export function tierPricesJoinSql (usage: string, tier = 'pt'): string {
  const c = (column: string) => raw(`${usage}.${column}::bigint`)
  const context = inputContextSql({ input: c('input_tokens'), cacheWrite5m: c('cache_creation_5m_input_tokens'), cacheWrite1h: c('cache_creation_1h_input_tokens'), cacheRead: c('cache_read_input_tokens') }).text
  return `LEFT JOIN price_snapshot_tiers ${tier} ON ${tier}.snapshot_id = ${usage}.model_price_id AND ${context} > ${tier}.above AND (${tier}.up_to IS NULL OR ${context} <= ${tier}.up_to)`
}

/** The joined tier's unit prices (tierPricesJoinSql's alias `tier`), under the names the rows' copies had. */
export const tierPricesSql = (tier = 'pt'): string =>
  ['input_price_per_1m', 'output_price_per_1m', 'cache_write_5m_price_per_1m', 'cache_write_1h_price_per_1m', 'cache_read_price_per_1m', 'price_per_request']
    .map((column) => `${tier}.${column}`).join(', ')

/** PricedRequest's source of a usage row (`usage` its alias): none while in flight, else whether a price version priced it. */
export const pricingSourceSql = (usage: string): string =>
  `(CASE WHEN ${inFlightSql(usage).text} THEN NULL WHEN ${usage}.model_price_id IS NULL THEN 'unpriced' ELSE 'model_price' END)`

/**
 * cacheEconomics over a usage row: `alias` prefixes its token columns, `prices` the unit
 * prices of its tier (tierPricesJoinSql's alias; '' when unambiguous); each term NULL on an unpriced row.
 */
export const cacheEconomicsSql = (alias = '', prices = '') => {
  const c = (column: string) => raw(`${alias}${column}`)
  const p = (column: string) => raw(`${prices}${column}`)
  return {
    readSaving: componentCostSql(c('cache_read_input_tokens'), sql`(${p('input_price_per_1m')} - ${p('cache_read_price_per_1m')})`),
    write5mPremium: componentCostSql(c('cache_creation_5m_input_tokens'), sql`(${p('cache_write_5m_price_per_1m')} - ${p('input_price_per_1m')})`),
    write1hPremium: componentCostSql(c('cache_creation_1h_input_tokens'), sql`(${p('cache_write_1h_price_per_1m')} - ${p('input_price_per_1m')})`)
  }
}

/** The cache writes' cost: both kinds in one rounding, as costsInBigints. */
export const cacheCreationCostSql = (write5m: Fragment, price5m: Fragment, write1h: Fragment, price1h: Fragment): Fragment =>
  roundDivSql(sql`${write5m}::numeric * ${price5m} + ${write1h}::numeric * ${price1h}`, PER_MILLION)

/** The per-request price, charged only on success. */
export const requestCostSql = (success: Fragment, pricePerRequest: Fragment): Fragment => sql`(CASE WHEN ${success} THEN coalesce(${pricePerRequest}, 0) ELSE 0 END)`

/** What a cost costs the operator: × the rate multiplier (integer millionths), rounded once; zero on a free tier. */
export const actualCostSql = (cost: Fragment, multiplierMicros: Fragment, freeTier: Fragment): Fragment =>
  sql`(CASE WHEN ${freeTier} THEN 0 ELSE ${roundDivSql(sql`${cost}::numeric * ${multiplierMicros}`, MULTIPLIER_SCALE)} END)`

/**
 * A usage row's actual cost components (`usage` its alias), which rows no longer store:
 * actualCostSql of each stored cost component with the row's rate_multiplier (a free tier's
 * rows carry 0), under the names the columns had; actual_total_cost, their sum, is stored.
 */
export function storedActualCostsSql (usage: string): string {
  const micros = raw(`(${usage}.rate_multiplier * ${MULTIPLIER_SCALE})`)
  return COST_COLUMNS.filter(([cost]) => cost !== 'total')
    .map(([, column]) => `${actualCostSql(raw(`${usage}.${column}`), micros, raw('false')).text} AS actual_${column}`).join(', ')
}
