// The seed's catalogue, built in JS from the seed alone (no Math.random): users, API
// keys, providers with endpoints and provider keys, model prices, and the "routes"
// (model × provider × api_format × provider key) that usage rows are drawn from, each
// carrying the exact unit prices and multiplier the gateway would price it with.
import { createHash, createHmac } from 'node:crypto'
import { deriveKey, encrypt, maskSecret } from '../../lib/crypto.js'
import { createKeyring, hashApiKey } from '../../lib/keyring.js'
import { pickPrice, type PriceVersion } from '../prices/service.js'
import { tierFromUsd, type TierUsd } from '../accounting/tiers.js'
import { multiplierMicros } from '../accounting/pricing.js'

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const DAY = 86_400_000

/** A deterministic stream of uniforms in [0, 1) per (seed, purpose): mulberry32 on an FNV-1a start. */
export function rng (seed: number, purpose: string): () => number {
  let a = 2166136261 ^ seed
  for (const ch of purpose) a = Math.imul(a ^ ch.charCodeAt(0), 16777619)
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A uuid (v4 layout) from a name, so the same seed gives the same ids. */
export function seedUuid (seed: number, name: string): string {
  const h = createHash('sha256').update(`keymeter-seed:${seed}:${name}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[parseInt(h[16]!, 16) & 3]}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** The seeded key `index`: derived from ENCRYPTION_KEY, so it is stable per deployment yet not guessable from the seed. */
export function seedApiKey (encryptionKey: string, seed: number, index: number): string {
  const secret = deriveKey(encryptionKey, 'seed-api-keys')
  const bytes = Buffer.concat([0, 1].map((part) => createHmac('sha256', secret).update(`${seed}:${index}:${part}`).digest()))
  return 'sk-' + [...bytes.subarray(0, 48)].map((b) => BASE62[b % 62]).join('')
}

// ---- providers and models --------------------------------------------------------

type Billing = 'pay_as_you_go' | 'monthly_quota' | 'free_tier'
interface ProviderSpec { name: string, billing: Billing, formats: Record<string, string>, keys: Array<[multiplier: string, ttl: number]> }

/** ~6 providers: rate multipliers 1 and 1.5, cache TTLs 5 and 60, one free tier. */
const PROVIDERS: ProviderSpec[] = [
  { name: 'anthropic', billing: 'pay_as_you_go', formats: { 'claude:messages': 'https://api.anthropic.com' }, keys: [['1', 5], ['1', 60]] },
  { name: 'aws-bedrock', billing: 'monthly_quota', formats: { 'claude:messages': 'https://bedrock-runtime.us-east-1.amazonaws.com' }, keys: [['1.5', 5]] },
  { name: 'openai', billing: 'pay_as_you_go', formats: { 'openai:chat': 'https://api.openai.com', 'openai:responses': 'https://api.openai.com' }, keys: [['1', 5], ['1', 5]] },
  { name: 'google-vertex', billing: 'pay_as_you_go', formats: { 'gemini:generate': 'https://aiplatform.googleapis.com' }, keys: [['1', 60]] },
  { name: 'openrouter', billing: 'pay_as_you_go', formats: { 'openai:chat': 'https://openrouter.ai/api' }, keys: [['1.5', 5]] },
  { name: 'gemini-free', billing: 'free_tier', formats: { 'gemini:generate': 'https://generativelanguage.googleapis.com' }, keys: [['1', 5]] }
]

/** cache: 2 = explicit writes and reads (Claude), 1 = automatic reads only, 0 = none. */
interface ModelSpec {
  model: string
  weight: number
  /** USD per 1M tokens; null = unpriced */
  tiers: TierUsd[] | null
  perRequest?: number
  cache: 0 | 1 | 2
  /** median fresh input, cacheable prefix and output tokens; output tokens per second; first byte ms */
  input: number, prefix: number, output: number, speed: number, ttfb: number
  /** [provider, api_format, share, target_model?] */
  routes: Array<[string, string, number, string?]>
}

const claude = { cache: 2 as const, input: 900, prefix: 14_000, output: 450 }
const MODELS: ModelSpec[] = [
  {
    model: 'claude-sonnet-4', weight: 30, ...claude, speed: 60, ttfb: 900,
    // the two-tier model: above 200k tokens of input context every price doubles (output × 1.5)
    tiers: [{ up_to: 200_000, input: 3, output: 15 }, { up_to: null, input: 6, output: 22.5 }],
    routes: [['anthropic', 'claude:messages', 70], ['aws-bedrock', 'claude:messages', 25, 'us.anthropic.claude-sonnet-4-20250514-v1:0'], ['openrouter', 'openai:chat', 5, 'anthropic/claude-sonnet-4']]
  },
  { model: 'claude-opus-4-1', weight: 5, ...claude, speed: 30, ttfb: 1600, tiers: [{ up_to: null, input: 15, output: 75 }], routes: [['anthropic', 'claude:messages', 80], ['aws-bedrock', 'claude:messages', 20, 'us.anthropic.claude-opus-4-1-20250805-v1:0']] },
  { model: 'claude-3-5-haiku', weight: 8, ...claude, prefix: 6000, speed: 120, ttfb: 500, tiers: [{ up_to: null, input: 0.8, output: 4 }], routes: [['anthropic', 'claude:messages', 100]] },
  { model: 'gpt-4o', weight: 8, cache: 1, input: 1200, prefix: 4000, output: 400, speed: 80, ttfb: 600, tiers: [{ up_to: null, input: 2.5, output: 10, cache_read: 1.25 }], routes: [['openai', 'openai:chat', 80], ['openrouter', 'openai:chat', 20, 'openai/gpt-4o']] },
  { model: 'gpt-4o-mini', weight: 12, cache: 1, input: 1500, prefix: 3000, output: 300, speed: 120, ttfb: 400, tiers: [{ up_to: null, input: 0.15, output: 0.6, cache_read: 0.075 }], routes: [['openai', 'openai:chat', 70], ['openrouter', 'openai:chat', 30, 'openai/gpt-4o-mini']] },
  { model: 'gpt-4.1', weight: 5, cache: 1, input: 2000, prefix: 6000, output: 500, speed: 70, ttfb: 700, tiers: [{ up_to: null, input: 2, output: 8, cache_read: 0.5 }], routes: [['openai', 'openai:chat', 50], ['openai', 'openai:responses', 50]] },
  { model: 'o4-mini', weight: 3, cache: 1, input: 1500, prefix: 3000, output: 1600, speed: 110, ttfb: 2500, tiers: [{ up_to: null, input: 1.1, output: 4.4, cache_read: 0.275 }], routes: [['openai', 'openai:responses', 100]] },
  { model: 'gpt-5', weight: 5, cache: 1, input: 1800, prefix: 5000, output: 1400, speed: 70, ttfb: 3000, tiers: [{ up_to: null, input: 1.25, output: 10, cache_read: 0.125 }], routes: [['openai', 'openai:responses', 100]] },
  { model: 'gemini-2.5-pro', weight: 5, cache: 1, input: 2500, prefix: 8000, output: 900, speed: 70, ttfb: 1800, tiers: [{ up_to: null, input: 1.25, output: 10, cache_read: 0.31 }], routes: [['google-vertex', 'gemini:generate', 100]] },
  { model: 'gemini-2.5-flash', weight: 8, cache: 1, input: 2000, prefix: 5000, output: 500, speed: 160, ttfb: 600, tiers: [{ up_to: null, input: 0.3, output: 2.5, cache_read: 0.075 }], routes: [['google-vertex', 'gemini:generate', 60], ['gemini-free', 'gemini:generate', 40]] },
  { model: 'gemini-2.0-flash', weight: 3, cache: 0, input: 1500, prefix: 2000, output: 400, speed: 180, ttfb: 450, tiers: [{ up_to: null, input: 0.1, output: 0.4 }], routes: [['gemini-free', 'gemini:generate', 100]] },
  { model: 'deepseek-chat', weight: 4, cache: 1, input: 1500, prefix: 4000, output: 500, speed: 50, ttfb: 900, tiers: [{ up_to: null, input: 0.27, output: 1.1, cache_read: 0.07 }], routes: [['openrouter', 'openai:chat', 100, 'deepseek/deepseek-chat']] },
  { model: 'deepseek-reasoner', weight: 1.5, cache: 1, input: 1500, prefix: 4000, output: 2000, speed: 45, ttfb: 4000, tiers: [{ up_to: null, input: 0.55, output: 2.19, cache_read: 0.14 }], routes: [['openrouter', 'openai:chat', 100, 'deepseek/deepseek-r1']] },
  // no price: the gateway records it with pricing_source "unpriced" and zero cost
  { model: 'llama-3.3-70b', weight: 1.5, cache: 0, input: 1200, prefix: 2000, output: 400, speed: 90, ttfb: 500, tiers: null, routes: [['openrouter', 'openai:chat', 100, 'meta-llama/llama-3.3-70b-instruct']] },
  { model: 'sonar-pro', weight: 1, cache: 0, input: 800, prefix: 1000, output: 600, speed: 60, ttfb: 1500, tiers: [{ up_to: null, input: 3, output: 15 }], perRequest: 0.005, routes: [['openrouter', 'openai:chat', 100, 'perplexity/sonar-pro']] }
]

const FIRST = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'niaj', 'olivia', 'peggy', 'rupert', 'sybil', 'trent', 'uma', 'victor', 'wendy']
const LAST = ['chen', 'garcia', 'ivanova', 'kumar', 'lopez', 'martin', 'nakamura', 'okafor', 'patel', 'rossi', 'schmidt', 'silva']
const KEY_NAMES = ['default', 'prod', 'staging', 'ci', 'notebook', 'claude-code', 'cursor', 'batch-jobs', 'eval', 'backend', 'mobile', 'research']

// ---- the catalogue -------------------------------------------------------------------

export interface SeedContext { seed: number, days: number, now: Date, encryptionKey: string }

export interface Catalogue {
  users: Array<Record<string, unknown>>
  keys: Array<Record<string, unknown>>
  providers: Array<Record<string, unknown>>
  endpoints: Array<Record<string, unknown>>
  providerKeys: Array<Record<string, unknown>>
  modelPrices: Array<Record<string, unknown>>
  /** what the usage generator reads (temporary tables) */
  seedKeys: Array<Record<string, unknown>>
  keySlots: number[]
  routes: Array<Record<string, unknown>>
  /** key: model × 64 + slot within the model's routes, or 100 000 + slot among all routes */
  routeSlots: Array<{ key: number, route_idx: number }>
  /** key: route × 2 + tier */
  prices: Array<Record<string, unknown>>
}

/** Inverse-CDF slots: slot s holds the item whose cumulative weight covers (s + ½) / size. */
function slots (weights: number[], size: number): number[] {
  const total = weights.reduce((a, b) => a + b, 0)
  const out: number[] = []
  let item = 0
  let cumulative = weights[0]! / total
  for (let s = 0; s < size; s++) {
    while ((s + 0.5) / size > cumulative && item < weights.length - 1) cumulative += weights[++item]! / total
    out.push(item)
  }
  return out
}

export function buildCatalogue (ctx: SeedContext): Catalogue {
  const { seed, now } = ctx
  const random = rng(seed, 'catalogue')
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]!
  const windowStart = now.getTime() - ctx.days * DAY
  const iso = (ms: number) => new Date(ms).toISOString()
  const keyring = createKeyring(ctx.encryptionKey)

  // users: index 0 owns the standalone keys (as the admin who issues them would in Aether)
  const users = Array.from({ length: 200 }, (_, i) => {
    const username = i === 0 ? 'standalone-keys' : `${FIRST[i % FIRST.length]}.${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= FIRST.length * LAST.length ? i : ''}`
    return {
      id: seedUuid(seed, `user:${i}`),
      email: `${username}@example.com`,
      username,
      // no password: seeded users cannot log in until an admin sets one
      password_hash: '!seeded',
      role: 'user',
      has_quota: i > 0 && random() < 0.2,
      is_active: i === 0 || random() > 0.03,
      created_at: iso(windowStart - (30 + random() * 300) * DAY)
    }
  })

  // keys: ~1 000; per user 1 + a heavy-tailed count, plus 50 standalone keys with balances
  const keys: Catalogue['keys'] = []
  const seedKeys: Catalogue['seedKeys'] = []
  const modelSlots = slots(MODELS.map((m) => m.weight), 4096)
  const addKey = (userIndex: number, standalone: boolean) => {
    const index = keys.length
    const key = seedApiKey(ctx.encryptionKey, seed, index)
    const r = random()
    const expired = r < 0.01
    keys.push({
      id: seedUuid(seed, `key:${index}`),
      user_id: users[userIndex]!.id,
      key_hash: hashApiKey(keyring, key),
      key_prefix: maskSecret(key, 7, 4),
      key_encrypted: encrypt(keyring.apiKeyCipher, key),
      name: `${pick(KEY_NAMES)}-${index}`,
      rate_limit: random() < 0.3 ? pick([60, 600, 3000]) : null,
      concurrent_limit: random() < 0.2 ? pick([5, 20, 50]) : null,
      daily_cost_limit: random() < 0.1 ? String(pick([50, 200, 1000]) * 1e9) : null,
      is_standalone: standalone,
      is_active: !(r >= 0.01 && r < 0.03), // ~2% disabled
      // a few keys expired days ago (they carry no traffic); some expire in the coming months
      expires_at: expired ? iso(now.getTime() - (1 + random() * 20) * DAY) : random() < 0.1 ? iso(now.getTime() + (5 + random() * 180) * DAY) : null,
      created_at: iso(Math.max(Date.parse(users[userIndex]!.created_at as string), windowStart - 20 * DAY) + random() * 10 * DAY)
    })
    seedKeys.push({
      idx: index,
      id: keys[index]!.id,
      user_id: users[userIndex]!.id,
      expired,
      home_model: modelSlots[Math.floor(random() * 4096)]!,
      stream_share: 0.3 + random() * 0.65,
      cache_affinity: random(),
      // standalone balances: most keys well funded, a few used up, a few unlimited
      balance: !standalone ? null : r < 0.06 ? 'exhausted' : r < 0.15 ? 'unlimited' : String(1.2 + random() * 3)
    })
  }
  for (let i = 0; i < 50; i++) addKey(0, true)
  for (let u = 1; u < users.length; u++) {
    // 1 to 24 keys a user, heavy-tailed (mean ~5)
    const count = 1 + Math.min(20, Math.floor(1.2 / Math.pow(random(), 0.8) - 1.2)) + Math.floor(random() * 4)
    for (let k = 0; k < count; k++) addKey(u, false)
  }
  // traffic: Zipf (weight 1/rank) over a shuffled ranking of the keys; expired keys carry none
  const ranks = seedKeys.map((_, i) => i + 1)
  for (let i = ranks.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[ranks[i], ranks[j]] = [ranks[j]!, ranks[i]!]
  }
  const keySlots = slots(seedKeys.map((k, i) => k.expired === true ? 0 : 1 / ranks[i]!), 65_536)

  const providers = PROVIDERS.map((p, i) => ({
    id: seedUuid(seed, `provider:${p.name}`),
    name: p.name,
    billing_type: p.billing,
    monthly_quota: p.billing === 'monthly_quota' ? String(20_000n * 1_000_000_000n) : null,
    priority: i
  }))
  const providerOf = (name: string) => providers.find((p) => p.name === name)!
  const endpoints = PROVIDERS.flatMap((p) => Object.entries(p.formats).map(([format, baseUrl]) => ({
    id: seedUuid(seed, `endpoint:${p.name}:${format}`), provider_id: providerOf(p.name).id, api_format: format, base_url: baseUrl
  })))
  const providerKeys = PROVIDERS.flatMap((p) => p.keys.map(([multiplier, ttl], i) => {
    const material = `${p.name}-key-` + createHmac('sha256', deriveKey(ctx.encryptionKey, 'seed-provider-keys')).update(`${seed}:${p.name}:${i}`).digest('hex')
    return {
      id: seedUuid(seed, `provider-key:${p.name}:${i}`), provider_id: providerOf(p.name).id, name: `${p.name} #${i + 1}`,
      secret_encrypted: encrypt(keyring.providerSecretCipher, material), secret_display: maskSecret(material, 6, 4),
      rate_multiplier: multiplier, cache_ttl_minutes: ttl
    }
  }))

  // prices: global versions in effect well before the window; gpt-4o-mini also has openrouter's own price
  const effectiveFrom = new Date(windowStart - 30 * DAY)
  const versions: PriceVersion[] = []
  const addPrice = (model: string, providerId: string | null, tiers: TierUsd[], perRequest?: number) => {
    versions.push({
      id: seedUuid(seed, `price:${model}:${providerId ?? 'global'}`), model, providerId, tiers: tiers.map(tierFromUsd),
      pricePerRequest: perRequest === undefined ? null : BigInt(Math.round(perRequest * 1e9)), effectiveFrom
    })
  }
  for (const m of MODELS) if (m.tiers !== null) addPrice(m.model, null, m.tiers, m.perRequest)
  addPrice('gpt-4o-mini', providerOf('openrouter').id, [{ up_to: null, input: 0.18, output: 0.72, cache_read: 0.09 }])
  const modelPrices = versions.map((v) => ({
    id: v.id, model: v.model, provider_id: v.providerId, tiers: v.tiers, price_per_request: v.pricePerRequest?.toString() ?? null, effective_from: v.effectiveFrom.toISOString()
  }))

  // routes: model × provider × api_format × provider key, with the price the gateway would pick
  const routes: Catalogue['routes'] = []
  const prices: Catalogue['prices'] = []
  const routeSlots: Catalogue['routeSlots'] = []
  const globalWeights: number[] = []
  MODELS.forEach((m, modelIdx) => {
    const own: number[] = []
    for (const [providerName, format, share, target] of m.routes) {
      const provider = providerOf(providerName)
      const spec = PROVIDERS.find((p) => p.name === providerName)!
      const pkeys = providerKeys.filter((k) => k.provider_id === provider.id)
      for (const pk of pkeys) {
        const price = pickPrice(versions, m.model, provider.id, now)
        if (price !== null && price.tiers.length > 2) throw new Error('the seed prices at most two tiers per model')
        own.push(routes.length)
        globalWeights.push(m.weight * share / pkeys.length)
        const idx = routes.length
        routes.push({
          idx, model_idx: modelIdx, model: m.model, target_model: target ?? null, api_format: format,
          provider_id: provider.id, provider_name: provider.name, endpoint_id: endpoints.find((e) => e.provider_id === provider.id && e.api_format === format)!.id,
          provider_key_id: pk.id, ttl: pk.cache_ttl_minutes, up_to: price?.tiers[0]!.up_to ?? null,
          cache: m.cache, in_median: m.input, prefix_median: m.prefix, out_median: m.output, speed: m.speed, ttfb: m.ttfb
        })
        // the price of each tier the route can hit, keyed route × 2 + tier
        for (const tierIndex of [0, 1]) {
          const tier = price?.tiers[Math.min(tierIndex, price.tiers.length - 1)]
          prices.push({
            key: idx * 2 + tierIndex, priced: price !== null, price_id: price?.id ?? null, per_request: price?.pricePerRequest?.toString() ?? null,
            p_in: tier?.input ?? 0, p_out: tier?.output ?? 0, p_w5: tier?.cache_write_5m ?? 0, p_w1h: tier?.cache_write_1h ?? 0, p_rd: tier?.cache_read ?? 0,
            free: spec.billing === 'free_tier', micros: multiplierMicros(pk.rate_multiplier).toString(),
            rate_multiplier: spec.billing === 'free_tier' ? '0' : pk.rate_multiplier
          })
        }
      }
    }
    // within a model, routes by their share (64 slots)
    slots(own.map((r) => globalWeights[r]!), 64).forEach((item, slot) => routeSlots.push({ key: modelIdx * 64 + slot, route_idx: own[item]! }))
  })
  // keys from 100 000: any route, by overall popularity (4 096 slots)
  slots(globalWeights, 4096).forEach((route, slot) => routeSlots.push({ key: 100_000 + slot, route_idx: route }))

  return { users, keys, providers, endpoints, providerKeys, modelPrices, seedKeys, keySlots, routes, routeSlots, prices }
}

// ---- time: the hours of the window and how many rows each gets ------------------------

export interface HourPlan { idx: number, from_ms: number, to_ms: number, first_n: number, end_n: number, burst_key: number, burst_share: number, incident: boolean }

/**
 * Splits `rows` over the window's hours by a daily and weekly rhythm, a slow growth,
 * noise, bursts (one key's batch job, 1–3 hours at 3–6× the traffic) and provider
 * incidents (hours with a high failure rate). Rows are numbered in time order, so
 * row n's time only depends on n: chunks are contiguous ranges of n.
 */
export function planHours (ctx: SeedContext, rows: number, windowEnd: number, burstKeys: number[]): HourPlan[] {
  const random = rng(ctx.seed, 'hours')
  const start = windowEnd - ctx.days * DAY
  const hours: Array<Omit<HourPlan, 'first_n' | 'end_n'> & { weight: number }> = []
  let burstLeft = 0
  let burst = { key: -1, factor: 1 }
  for (let from = Math.floor(start / 3_600_000) * 3_600_000; from < windowEnd; from += 3_600_000) {
    const date = new Date(from)
    const hour = date.getUTCHours()
    // Europe and the Americas' working day peaks at 15:00 UTC; Asia's at 03:00
    const daily = 0.25 + Math.exp(-((hour - 15) ** 2) / 18) + 0.45 * Math.exp(-(((hour + 12) % 24 - 15) ** 2) / 12)
    const weekly = [0.4, 1, 1.05, 1.05, 1, 0.9, 0.45][date.getUTCDay()]!
    const growth = 0.75 + 0.25 * (from - start) / (windowEnd - start)
    if (burstLeft === 0 && random() < 0.012) {
      burstLeft = 1 + Math.floor(random() * 3)
      burst = { key: burstKeys[Math.floor(random() * burstKeys.length)]!, factor: 3 + random() * 3 }
    }
    const bursting = burstLeft > 0
    if (bursting) burstLeft--
    const clipped = { from: Math.max(from, start), to: Math.min(from + 3_600_000, windowEnd) }
    hours.push({
      idx: hours.length, from_ms: clipped.from, to_ms: clipped.to,
      weight: daily * weekly * growth * (0.85 + 0.3 * random()) * (bursting ? burst.factor : 1) * (clipped.to - clipped.from) / 3_600_000,
      burst_key: bursting ? burst.key : -1,
      // the burst key's share of the hour: its extra traffic over the usual
      burst_share: bursting ? 1 - 1 / burst.factor : 0,
      incident: random() < 0.01
    })
  }
  // largest remainder: the counts add up to `rows` exactly
  const total = hours.reduce((sum, h) => sum + h.weight, 0)
  const exact = hours.map((h) => rows * h.weight / total)
  const counts = exact.map(Math.floor)
  let missing = rows - counts.reduce((a, b) => a + b, 0)
  for (const i of exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]).map(([, i]) => i)) {
    if (missing-- <= 0) break
    counts[i]!++
  }
  let n = 0
  return hours.map(({ weight: _, ...h }, i) => ({ ...h, first_n: n, end_n: (n += counts[i]!) }))
}
