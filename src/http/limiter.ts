// A fixed-window counter per client address, in process memory: enough to slow
// scanners and brute force on one instance (see docs/scaling.md for many).
export class WindowCounter {
  private readonly hits = new Map<string, { count: number, resetAt: number }>()

  constructor (readonly limit: number, readonly windowMs: number) {}

  /** Counts a hit; returns the seconds to wait when over the limit, else 0. */
  hit (client: string, now = Date.now()): number {
    let entry = this.hits.get(client)
    if (entry === undefined || entry.resetAt <= now) {
      if (this.hits.size > 50_000) this.prune(now)
      entry = { count: 0, resetAt: now + this.windowMs }
      this.hits.set(client, entry)
    }
    entry.count += 1
    return entry.count > this.limit ? Math.ceil((entry.resetAt - now) / 1000) : 0
  }

  private prune (now: number): void {
    for (const [client, entry] of this.hits) if (entry.resetAt <= now) this.hits.delete(client)
  }
}
