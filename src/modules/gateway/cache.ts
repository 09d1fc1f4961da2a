// The short in-process cache of gateway verify (VERIFY_CACHE_TTL_MS): a key's state and
// counters as one query read them, by key hash, for at most the TTL counted from when
// the query was sent. Verify still runs every check on each call against the current
// time (expiry, a rotated key's old secret's grace, the window's reset), so only the
// database's answer is reused.
//
// Changes made through this process drop what they touched once they have committed:
// admin and user mutations everything (they are rare), ingested usage the states of the
// keys and owners its rows name (`forget`); the next verify reads them. Changes made
// elsewhere (another instance, SQL) are seen within the TTL. A read that was in flight
// when the cache was cleared, or whose state was forgotten meanwhile, is not stored: it
// may predate the change.

const MAX_ENTRIES = 10_000

export class VerifyCache<T> {
  readonly #ttlMs: number
  readonly #now: () => number
  readonly #entries = new Map<string, { value: T, expiresAt: number, renewAt: number }>()
  /** reads in flight, shared by concurrent verifies of the same key */
  readonly #reading = new Map<string, Promise<T | undefined>>()
  /** for each read in flight, what `forget` dropped since it was sent: its state is not stored if any matches it */
  readonly #forgotten = new Map<Promise<T | undefined>, Array<(value: T) => boolean>>()
  #generation = 0

  /** `now` is the clock in milliseconds (monotonic by default); tests pass their own to move time. */
  constructor (ttlMs: number, options: { now?: () => number } = {}) {
    this.#ttlMs = ttlMs
    this.#now = options.now ?? (() => performance.now())
  }

  /**
   * The cached state of `hash`, or `read()`'s answer (stored unless unknown or cleared
   * meanwhile). Past half its TTL an entry is still answered from while one read renews
   * it in the background, so a key in steady use never waits for the database.
   */
  async get (hash: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.#ttlMs === 0) return read()
    const now = this.#now()
    const entry = this.#entries.get(hash)
    if (entry !== undefined && entry.expiresAt > now) {
      if (now >= entry.renewAt && !this.#reading.has(hash)) this.#read(hash, read, now).catch(() => {}) // a failure surfaces on a later miss
      return entry.value
    }
    return this.#reading.get(hash) ?? this.#read(hash, read, now)
  }

  #read (hash: string, read: () => Promise<T | undefined>, now: number): Promise<T | undefined> {
    const generation = this.#generation
    const reading: Promise<T | undefined> = read().then((value) => {
      const forgotten = this.#forgotten.get(reading) ?? []
      // unknown keys are not stored: a key created elsewhere works at once, and guesses cannot fill memory
      if (value !== undefined && generation === this.#generation && !forgotten.some((matches) => matches(value))) {
        this.#entries.delete(hash) // re-inserted last, so the oldest entry is the first to go
        if (this.#entries.size >= MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!)
        // the TTL counts from when the read was sent, so no answer is older than the TTL
        this.#entries.set(hash, { value, expiresAt: now + this.#ttlMs, renewAt: now + this.#ttlMs / 2 })
      }
      return value
    }).finally(() => {
      this.#forgotten.delete(reading)
      if (this.#reading.get(hash) === reading) this.#reading.delete(hash)
    })
    this.#reading.set(hash, reading)
    this.#forgotten.set(reading, [])
    return reading
  }

  /**
   * Forget the states `matches` (those a committed change touched): stored ones are
   * dropped, and a read in flight is not stored if its state matches, since it may
   * predate the change. Everything else stays cached.
   */
  forget (matches: (value: T) => boolean): void {
    for (const [hash, entry] of this.#entries) if (matches(entry.value)) this.#entries.delete(hash)
    for (const forgotten of this.#forgotten.values()) forgotten.push(matches)
    // which state a read in flight holds is known when it comes back: a verify that comes now must not join one that may predate the change
    this.#reading.clear()
  }

  /** Forget everything, including reads in flight (they may have started before the change). */
  clear (): void {
    this.#generation++
    this.#entries.clear()
    this.#reading.clear()
  }
}
