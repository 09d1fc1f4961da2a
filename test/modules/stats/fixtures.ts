// A random but reproducible usage data set, ingested through the gateway so the
// rollups are the real ones: several users, keys, providers (one of them deleted
// afterwards), priced and unpriced models, every status, candidates with fallbacks.
import type { Test } from 'tap'
import { gateway, type Gateway, type Json } from '../gateway/fixtures.js'

/** mulberry32: a small seeded PRNG */
export function prng (seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const int = (max: number) => Math.floor(next() * max)
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!
  return { next, int, pick }
}

export const HOUR = 3_600_000
export const MODELS = ['claude-x', 'gpt-y', 'gem-z', 'mystery'] as const
export const FORMATS = ['claude:messages', 'openai:chat', 'gemini:generate'] as const

export interface DataSet {
  g: Gateway
  /** the first whole hour of the data; rows lie in [base, base + hours) */
  base: number
  hours: number
  users: Json[]
  keys: Json[]
  providers: Json[]
}

interface Route { providerId: string, providerKeyId: string }

/**
 * `count` requests spread over the `hours` hours before the current hour, plus rows
 * placed on the instants the tests cut at (range bounds, local midnights).
 */
export async function dataSet (t: Test, options: { seed?: number, count?: number, hours?: number, instants?: number[] } = {}): Promise<DataSet> {
  const rand = prng(options.seed ?? 42)
  const hours = options.hours ?? 72
  const base = Math.floor(Date.now() / HOUR) * HOUR - hours * HOUR
  const g = await gateway(t)

  const providers = [await g.provider('alpha'), await g.provider('beta'), await g.provider('gamma', 'free_tier'), await g.provider('doomed')]
  const routes: Route[] = []
  for (const [i, provider] of providers.entries()) {
    const key = await g.providerKey(provider.id, { rate_multiplier: [1.5, 0.8, 1, 2][i]!, cache_ttl_minutes: i === 1 ? 60 : 5 })
    routes.push({ providerId: provider.id, providerKeyId: key.id })
  }
  await g.price({ model: 'claude-x', tiers: [{ up_to: 4000, input: 3, output: 15 }, { up_to: null, input: 6, output: 22.5 }], price_per_request_usd: 0.001 })
  await g.price({ model: 'gpt-y', tiers: [{ up_to: null, input: 2.5, output: 10, cache_read: 1.25 }] })
  await g.price({ model: 'gem-z', provider_id: providers[1]!.id, tiers: [{ up_to: null, input: 1.25, output: 5 }] })

  const users = [await g.user(), await g.user(), await g.user()]
  const keys: Json[] = []
  for (const user of users) keys.push(await g.userKey(user.id), await g.userKey(user.id))
  keys.push(await g.standaloneKey())

  const events: object[] = []
  const request = (i: number, at: number) => {
    const id = `req-${i}`
    const key = rand.pick(keys)
    const route = rand.next() < 0.1 ? null : rand.pick(routes)
    const start = {
      request_id: id,
      api_key_id: key.id,
      model: rand.pick(MODELS),
      is_stream: rand.next() < 0.5,
      created_at: new Date(at).toISOString(),
      ...(rand.next() < 0.9 && { api_format: rand.pick(FORMATS) }),
      ...(route !== null && { provider_id: route.providerId, provider_api_key_id: route.providerKeyId })
    }
    const roll = rand.next()
    if (roll < 0.05) return events.push({ type: 'start', ...start })
    if (roll < 0.1) return events.push({ type: 'start', ...start }, { type: 'stream', request_id: id, first_byte_time_ms: 100 + rand.int(900) })
    const status = roll < 0.75 ? 'completed' : roll < 0.9 ? 'failed' : 'cancelled'
    const write5m = rand.next() < 0.5 ? 0 : rand.int(3000)
    const write1h = rand.next() < 0.7 ? 0 : rand.int(2000)
    const complete: Record<string, unknown> = {
      type: 'complete',
      ...start,
      status,
      status_code: status === 'completed' ? 200 : status === 'failed' ? rand.pick([429, 500, 502, 503]) : 499,
      input_tokens: rand.int(6000),
      output_tokens: rand.int(2000),
      cache_creation_input_tokens: write5m + write1h,
      cache_creation_5m_input_tokens: write5m,
      cache_creation_1h_input_tokens: write1h,
      cache_read_input_tokens: rand.next() < 0.5 ? 0 : rand.int(5000),
      response_time_ms: rand.next() < 0.1 ? null : 50 + rand.int(20_000),
      ...(status === 'failed' && { error_message: 'upstream error' })
    }
    if (route !== null && rand.next() < 0.4) {
      // fallbacks: earlier candidates skipped or failed on other providers, the last one on the request's own
      const earlier = rand.int(3)
      const candidates: object[] = []
      for (let c = 0; c < earlier; c++) {
        const other = rand.pick(routes)
        const skipped = rand.next() < 0.4
        candidates.push({
          candidate_index: c, provider_id: other.providerId, provider_api_key_id: other.providerKeyId,
          status: skipped ? 'skipped' : 'failed', ...(skipped ? { skip_reason: 'rate limited' } : { status_code: 500, error_type: 'server_error', latency_ms: rand.int(3000) })
        })
      }
      candidates.push({
        candidate_index: earlier, provider_id: route.providerId, provider_api_key_id: route.providerKeyId,
        status: status === 'completed' ? 'success' : 'failed', latency_ms: rand.next() < 0.2 ? null : rand.int(20_000)
      })
      complete.candidates = candidates
    }
    return events.push(complete)
  }
  let i = 0
  for (; i < (options.count ?? 600); i++) request(i, base + rand.int(hours * HOUR))
  for (const at of options.instants ?? []) {
    // on the instant, and a millisecond either side
    for (const delta of [-1, 0, 1]) if (at + delta >= base && at + delta < base + hours * HOUR) request(i++, at + delta)
  }
  for (let from = 0; from < events.length; from += 1000) {
    const results = await g.send(events.slice(from, from + 1000))
    const rejected = results.filter((r) => r.outcome !== 'recorded')
    if (rejected.length > 0) throw new Error(`ingest refused: ${JSON.stringify(rejected.slice(0, 3))}`)
  }
  // a provider deleted after its requests: usage forgets it (SET NULL), the rollups keep its id
  await g.adminCall('DELETE', `/api/admin/providers/${providers[3]!.id}`)
  return { g, base, hours, users, keys, providers: providers.slice(0, 3) }
}

/** An instant as ISO 8601 with the given offset, e.g. "+05:30" (the API must not care). */
export function isoWithOffset (ms: number, offset: string): string {
  const sign = offset.startsWith('-') ? -1 : 1
  const [h, m] = offset.slice(1).split(':').map(Number) as [number, number]
  const local = new Date(ms + sign * (h * 60 + m) * 60_000).toISOString()
  return `${local.slice(0, 23)}${offset}`
}
