// Per-client limits through @fastify/rate-limit (its hooks, headers and 429s), with our
// store: fixed windows per key in a bounded LRU (toad-cache, the LRU of the plugin's own
// LocalStore), on a clock tests can move, and named groups whose store code can also
// read and correct (the login throttle takes back an attempt whose password was right).
// Counts are per process: each instance limits its own clients (see docs/scaling.md).
import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor, type errorResponseBuilderContext } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { LruMap } from 'toad-cache'

/** Milliseconds since the epoch; Date.now unless a test moves time itself. */
export type Clock = () => number

/** Clients (keys) each limiter remembers at most; past it the least recently seen is forgotten. */
export const CLIENTS_TRACKED = 20_000

interface Window { current: number, ttl: number, start: number }
type Callback = (error: Error | null, result?: { current: number, ttl: number }) => void

/** One limiter's counts: a fixed window per key, at most `capacity` keys. */
export class WindowStore implements FastifyRateLimitStore {
  private readonly windows: LruMap<Window>

  constructor (readonly capacity: number, private readonly clock: Clock) {
    this.windows = new LruMap<Window>(capacity)
  }

  /** The plugin's count of one request: returns the window's count and the milliseconds left in it. */
  incr (key: string, callback: Callback, timeWindow: number): void {
    const now = this.clock()
    const window = this.live(key, timeWindow, now) ?? { current: 0, ttl: timeWindow, start: now }
    window.current += 1
    window.ttl = window.start + timeWindow - now
    this.windows.set(key, window)
    callback(null, { current: window.current, ttl: window.ttl })
  }

  /** The plugin's read without counting (`{ increment: false }`). */
  read (key: string, callback: Callback, timeWindow: number): void {
    const now = this.clock()
    const window = this.live(key, timeWindow, now)
    callback(null, window === undefined ? { current: 0, ttl: 0 } : { current: window.current, ttl: window.start + timeWindow - now })
  }

  /** Each route (or `app.rateLimit()` call) asks its parent for a store: a new one of the same capacity and clock. */
  child (): WindowStore {
    return new WindowStore(this.capacity, this.clock)
  }

  /** The count in the key's current window (0 when none). */
  count (key: string, timeWindow: number): number {
    return this.live(key, timeWindow, this.clock())?.current ?? 0
  }

  /** Milliseconds left in the key's current window (0 when none). */
  remainingMs (key: string, timeWindow: number): number {
    const now = this.clock()
    const window = this.live(key, timeWindow, now)
    return window === undefined ? 0 : window.start + timeWindow - now
  }

  /** Takes one count back; the window keeps its start. */
  decrement (key: string, timeWindow: number): void {
    const window = this.live(key, timeWindow, this.clock())
    if (window === undefined) return
    window.current -= 1
    if (window.current <= 0) this.windows.delete(key)
  }

  /** Keys remembered now (never more than `capacity`). */
  get size (): number {
    return this.windows.size
  }

  // a window that has run out is gone: the next count starts a new one
  private live (key: string, timeWindow: number, now: number): Window | undefined {
    const window = this.windows.get(key)
    if (window === undefined) return undefined
    if (window.start + timeWindow <= now) {
      this.windows.delete(key)
      return undefined
    }
    return window
  }
}

/**
 * The plugin's root store: routes with a `groupId` share that group's store (the plugin
 * keeps one store per route otherwise), so code outside the hook can reach the counts.
 */
export class RateLimitStores extends WindowStore {
  private readonly groups = new Map<string, WindowStore>()
  private readonly children: WindowStore[] = []

  override child (params?: { groupId?: string }): WindowStore {
    if (params?.groupId !== undefined) return this.group(params.groupId)
    const store = super.child()
    this.children.push(store)
    return store
  }

  /** The store of routes declaring `groupId: name`; the plugin appends the group to each key (`key + name`). */
  group (name: string): WindowStore {
    let store = this.groups.get(name)
    if (store === undefined) {
      store = super.child()
      this.groups.set(name, store)
    }
    return store
  }

  /** Every store handed out, for the memory bound's test. */
  all (): WindowStore[] {
    return [...this.children, ...this.groups.values()]
  }
}

/** The client a limit counts: the address Fastify derived (TRUST_PROXY applied), as it is. */
export const byAddress = (request: FastifyRequest): string => request.ip

/** A limit's 429, built from what the plugin tells: the error handler answers it with Retry-After. */
export function refusal (build: (message: string) => Error, message: string) {
  return (_request: FastifyRequest, context: errorResponseBuilderContext) =>
    Object.assign(build(message), { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) })
}

/**
 * Registers @fastify/rate-limit on `app`: nothing is limited unless a route asks
 * (`config.rateLimit`) or a hook is made with `app.rateLimit()`; answers of limited
 * routes carry x-ratelimit-limit/remaining/reset, and their 429s retry-after.
 */
export async function registerRateLimit (app: FastifyInstance, stores: RateLimitStores): Promise<void> {
  // the plugin constructs its store with `new`: hand it ours
  const Root = function () { return stores } as unknown as FastifyRateLimitStoreCtor
  await app.register(rateLimit, { global: false, store: Root, keyGenerator: byAddress })
}
