// Where the statistics' reads go: to a read replica (DATABASE_READ_URL) whose replay lag is
// within DATABASE_READ_MAX_LAG_MS, else to the primary's statistics pool. The lag is measured
// by a small probe pool of each replica at most every checkMs, in the background (a read never
// waits for it); a replica that cannot be reached is skipped until a later check finds it back.
// Only reads come here: admission, ingestion, mutations and audit rows use the primary's pools.
import pg from 'pg'
import sql from 'sql-template-tag'

export interface ReplicaTarget {
  /** its name in metrics and logs: read1, read2, … in DATABASE_READ_URL's order (never the URL: it holds a password) */
  label: string
  /** the reads' pool */
  pool: pg.Pool
  /** a one-connection pool for the lag probe, so a probe never waits behind the reads' queries */
  probe: pg.Pool
}

export interface ReplicaState {
  label: string
  /** reads may go to it now */
  usable: boolean
  /** the last lag measured (ms); null before any or when it could not be measured */
  lagMs: number | null
  /** why it is skipped (lag, unreachable, nothing replayed yet); null when usable */
  reason: string | null
}

export interface ReadRoutingOptions {
  /** a replica further behind than this is skipped */
  maxLagMs: number
  /** the lag is read at most this often (and a skipped replica retried as often) */
  checkMs: number
  /** called when a replica becomes usable or is skipped, with its new state */
  onChange?: (state: ReplicaState) => void
  /** the clock (tests) */
  now?: () => number
}

/**
 * The lag as the replica sees it: how long ago the last transaction it replayed committed on
 * the primary (0 on a server not in recovery). An idle primary ages it too; reads then go to
 * the primary until its next write (each read call's audit row is one), which is the safe side.
 * Unqualified names on purpose: the tests shadow them in a second database (docs/scaling.md).
 */
const LAG_SQL = sql`
  SELECT pg_is_in_recovery() AS standby,
         (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::float8 AS lag_ms`

/** SQLSTATE classes and codes by which a server says it cannot serve this session (connection, authentication, missing database, shutdown, full). */
const UNAVAILABLE = /^(08|28|3D|57P0[123]|53300)/
/** A standby cancelled the query over a recovery conflict (40001) or a deadlock with replay (40P01): the primary answers it instead. */
const RECOVERY_CONFLICT = new Set(['40001', '40P01'])

type Failure = 'unavailable' | 'conflict' | 'query'

/** How a replica's failure is handled: unreachable (skip it, ask the primary), a recovery conflict (ask the primary), or the query's own error (the caller's). */
export function failureOf (error: unknown): Failure {
  // no SQLSTATE: the server never answered (refused, reset, timed out, connection terminated)
  if (!(error instanceof pg.DatabaseError) || error.code === undefined) return 'unavailable'
  if (UNAVAILABLE.test(error.code)) return 'unavailable'
  return RECOVERY_CONFLICT.has(error.code) ? 'conflict' : 'query'
}

interface Replica extends ReplicaTarget, ReplicaState { reported: boolean }

/**
 * The statistics' read pool: `query` and `connect` as a pg.Pool's, answered by a usable
 * replica (in turn) or by the primary's statistics pool. A query a replica fails for being
 * unreachable or in a recovery conflict is asked once more of the primary; its own errors
 * (a timeout, bad SQL) are the caller's, as on the primary.
 */
export class ReadRouting {
  readonly query: pg.Pool['query']
  private readonly replicas: Replica[]
  private readonly served = new Map<string, number>()
  private readonly now: () => number
  private turn = 0
  private checkedAt = Number.NEGATIVE_INFINITY
  private checking: Promise<void> | null = null

  constructor (readonly primary: pg.Pool, replicas: ReplicaTarget[], private readonly options: ReadRoutingOptions) {
    this.replicas = replicas.map((target) => ({ ...target, usable: false, lagMs: null, reason: 'not checked yet', reported: false }))
    this.now = options.now ?? Date.now
    this.served.set('primary', 0)
    for (const replica of this.replicas) this.served.set(replica.label, 0)
    this.query = ((...args: Parameters<pg.Pool['query']>) => this.run((pool) => (pool.query as (...a: unknown[]) => Promise<unknown>)(...args))) as pg.Pool['query']
  }

  /** A connection of the pool a query would go to now (a replica's, or the primary's if it cannot be reached). */
  async connect (): Promise<pg.PoolClient> {
    return this.run((pool) => pool.connect())
  }

  /**
   * `work` on a usable replica's pool, or on the primary's when none is usable, or again on
   * the primary's when the replica cannot finish it (unreachable, a recovery conflict): a
   * transaction's statements after `connect` are covered too (db/prisma.ts inTransaction).
   */
  async retrying<T> (work: (pool: pg.Pool) => Promise<T>): Promise<T> {
    return this.run(work)
  }

  /** Reads every replica's lag now (at most one check at a time); never throws. */
  async check (): Promise<void> {
    if (this.checking === null) {
      this.checkedAt = this.now()
      this.checking = Promise.all(this.replicas.map((replica) => this.probe(replica))).then(() => { this.checking = null })
    }
    return this.checking
  }

  /** Each replica's state, in DATABASE_READ_URL's order. */
  states (): ReplicaState[] {
    return this.replicas.map(({ label, usable, lagMs, reason }) => ({ label, usable, lagMs, reason }))
  }

  /** Queries (and connections) served so far, by `primary` and replica label. */
  servedCounts (): Array<[string, number]> {
    return [...this.served]
  }

  /** Starts a check when the last is older than checkMs (the metrics' scrape and every read call this). */
  checkIfDue (): void {
    if (this.replicas.length > 0 && this.now() - this.checkedAt >= this.options.checkMs) void this.check()
  }

  private pick (): Replica | null {
    this.checkIfDue()
    const usable = this.replicas.filter((replica) => replica.usable)
    if (usable.length === 0) return null
    this.turn = (this.turn + 1) % usable.length
    return usable[this.turn]!
  }

  private async run<T> (work: (pool: pg.Pool) => Promise<T>): Promise<T> {
    const replica = this.pick()
    if (replica !== null) {
      try {
        const result = await work(replica.pool)
        this.count(replica.label)
        return result
      } catch (error) {
        const failure = failureOf(error)
        if (failure === 'query') throw error
        if (failure === 'unavailable') this.update(replica, { usable: false, lagMs: null, reason: `unreachable: ${(error as Error).message}` })
      }
    }
    const result = await work(this.primary)
    this.count('primary')
    return result
  }

  private count (label: string): void {
    this.served.set(label, this.served.get(label)! + 1)
  }

  private async probe (replica: Replica): Promise<void> {
    try {
      const { rows: [row] } = await replica.probe.query<{ standby: boolean, lag_ms: number | null }>(LAG_SQL)
      const lagMs = row!.standby ? row!.lag_ms : 0
      if (lagMs === null) this.update(replica, { usable: false, lagMs: null, reason: 'no transaction replayed yet' })
      else {
        const lag = Math.max(0, Math.round(lagMs))
        const behind = lag > this.options.maxLagMs
        this.update(replica, { usable: !behind, lagMs: lag, reason: behind ? `lag ${lag} ms over ${this.options.maxLagMs} ms` : null })
      }
    } catch (error) {
      this.update(replica, { usable: false, lagMs: null, reason: `unreachable: ${(error as Error).message}` })
    }
  }

  private update (replica: Replica, state: Omit<ReplicaState, 'label'>): void {
    // the first check's outcome is reported either way, then each change
    const changed = !replica.reported || replica.usable !== state.usable
    Object.assign(replica, state, { reported: true })
    if (changed) this.options.onChange?.({ label: replica.label, ...state })
  }
}
