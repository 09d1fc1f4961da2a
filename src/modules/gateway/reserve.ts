// A verify that names its request (request_id) reserves: it admits the request only if a
// hold of the request's worst-case cost fits every limit of the key and its owner beside
// the holds already taken, and records that hold, atomically across instances.
// Reservations are decided in batches — those that arrive while others are being decided
// form the next — each one transaction on the verify pool, in two round trips:
//   1. BEGIN, the advisory locks of the batch's keys (and of their owners that have a
//      quota), in one global order so that no two batches wait in a cycle; then, in
//      snapshots taken after the locks, the keys' states and counters (every live hold
//      included) and what is known of each request (a live hold, a usage row) — and,
//      in one more round trip each, the budgets of the keys that have any and the
//      status of the requests that have a usage row;
//   2. the admitted holds inserted, and COMMIT.
// Between the two, each request is checked in arrival order (verify.ts's checkKey and
// checkLimits, the same rule as an advisory verify) against its key's state with the
// holds admitted before it counted in (keys/counters.ts countHold). A batch costs a hot
// key one lock hold for all its requests, and the whole batch two socket writes.
// Its completion settles the hold in ingestion's transaction (accounting/holds.ts).
import type pg from 'pg'
import sql, { type Sql as Fragment } from 'sql-template-tag'
import { usageByRequestSql } from '../../db/partitions.js'
import { pipeline } from '../../db/pipeline.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsd } from '../../lib/money.js'
import { liveHoldSql } from '../accounting/holds.js'
import { isFinished, isInFlight } from '../accounting/rules.js'
import { countHold, keyStatesOf, keyStateQuery, ownerLockNeeded, type CounterSettings, type KeyState } from '../keys/counters.js'
import { answerOf, checkKey, checkLimits, Refusals, type VerifyRequest } from './verify.js'

export interface Reservation {
  request_id: string
  /** nano-USD; worst-case cost, or the default hold */
  amount: bigint
  /** the tokens it may use: estimated_input_tokens + max_output_tokens, as far as given */
  tokens: bigint
  model?: string
}

export interface ReserveSettings extends CounterSettings {
  holdTtlSeconds: number
  /** called once a new hold has committed (not when a request's live hold answers again) */
  onHoldTaken?: () => void
  /** batches decided at once, each on its own connection (default 1: with more, the batches were smaller and cost more a request; bench/README, issue 17) */
  concurrentBatches?: number
  /** the most reservations in one batch (default 256) */
  maxBatch?: number
}

export type Reserved = ReturnType<typeof answerOf> & { hold: { request_id: string, amount_usd: number, expires_at: string } }

// advisory lock classes (the two-int form: its keys never meet the one-bigint locks); a
// key's class sorts before an owner's, so every batch takes keys first, then owners
const KEY_LOCK = 0x6b6d686b // "kmhk"
const USER_LOCK = 0x6b6d6875 // "kmhu"

/** 32 bits of a hex digest or uuid as a signed int4: two keys that share them only wait for each other. */
const lockId = (hex: string) => Number.parseInt(hex.replaceAll('-', '').slice(0, 8), 16) | 0

/** The locks, deduplicated, in the one order every batch takes them (class, then id). */
function lockOrder (keyHashes: Iterable<string>, userIds: Iterable<string>): { classes: number[], ids: number[] } {
  const pairs = new Map<string, [number, number]>()
  for (const hash of keyHashes) pairs.set(`k${lockId(hash)}`, [KEY_LOCK, lockId(hash)])
  for (const user of userIds) pairs.set(`u${lockId(user)}`, [USER_LOCK, lockId(user)])
  const sorted = [...pairs.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1])
  return { classes: sorted.map((pair) => pair[0]), ids: sorted.map((pair) => pair[1]) }
}

// a hold commits without waiting for its WAL flush (2–5 ms here): see docs/accounting.md, "A database crash"
const begin = [sql`BEGIN`, sql`SELECT set_config('synchronous_commit', 'off', true)`]

/** The locks, taken in the arrays' order (a function scan yields an unnest's rows in order). */
const lockSql = (locks: { classes: number[], ids: number[] }) =>
  sql`SELECT count(pg_advisory_xact_lock(c, i)) FROM unnest(${locks.classes}::int[], ${locks.ids}::int[]) AS l(c, i)`

/**
 * What is known of each request: its live hold, and whether it has a usage row (admission_holds'
 * and usage_requests' primary keys). usage itself is read only for the requests that have a row
 * (servedSql): a new request has none, and every month of usage costs each execution of a
 * statement that names it (bench/README, issue 17).
 */
const requestsSql = (requestIds: string[]) => sql`
  SELECT r.request_id, h.api_key_id AS prior_key_id, h.amount AS prior_amount, h.expires_at AS prior_expires_at, q.request_id IS NOT NULL AS served, now() AS at
    FROM unnest(${requestIds}::text[]) AS r(request_id)
    -- a probe of each primary key per request (LIMIT 1 keeps them probes: a join planned over small tables hashes them whole)
    LEFT JOIN LATERAL (SELECT h.api_key_id, h.amount, h.expires_at FROM admission_holds h WHERE h.request_id = r.request_id AND ${liveHoldSql('h')} LIMIT 1) h ON true
    LEFT JOIN LATERAL (SELECT q.request_id FROM usage_requests q WHERE q.request_id = r.request_id LIMIT 1) q ON true`

/** The status of these requests' usage rows (usage_requests' key, then usage's in the row's month). */
const servedSql = (requestIds: string[]) =>
  sql`SELECT q.request_id, u.status::text AS status FROM ${usageByRequestSql()} WHERE q.request_id = ANY(${requestIds}::text[])`

interface Admitted { request_id: string, api_key_id: string, user_id: string, model: string | null, amount: bigint, tokens: bigint, started: boolean }

/**
 * The admitted holds. An expired hold of the same request is replaced; a live one is not
 * (another key's, committed since this batch read: that request is refused, see below).
 */
const insertSql = (holds: Admitted[], ttlSeconds: number) => sql`
  INSERT INTO admission_holds (request_id, api_key_id, user_id, model, amount, tokens, started, expires_at)
  SELECT r, k, u, m, a, t, s, now() + make_interval(secs => ${ttlSeconds}::int)
    FROM unnest(${holds.map((h) => h.request_id)}::text[], ${holds.map((h) => h.api_key_id)}::uuid[], ${holds.map((h) => h.user_id)}::uuid[],
                ${holds.map((h) => h.model)}::text[], ${holds.map((h) => h.amount.toString())}::bigint[], ${holds.map((h) => h.tokens.toString())}::bigint[],
                ${holds.map((h) => h.started)}::boolean[]) AS n(r, k, u, m, a, t, s)
  ON CONFLICT (request_id) DO UPDATE SET api_key_id = EXCLUDED.api_key_id, user_id = EXCLUDED.user_id, model = EXCLUDED.model,
         amount = EXCLUDED.amount, tokens = EXCLUDED.tokens, started = EXCLUDED.started, created_at = now(), expires_at = EXCLUDED.expires_at
   WHERE NOT ${liveHoldSql('admission_holds')}
  RETURNING request_id, expires_at`

/**
 * What a reservation by this key hash must lock besides the hash itself, learnt from each
 * batch's read: the owner whose quota makes it take their lock too (a key's owner never
 * changes), or a rotated key's current hash when this is its old secret (so both secrets
 * share one lock). A stale entry costs the request one more batch, never a wrong
 * admission: the read decides, under the locks it shows are needed.
 */
const MAX_OWNERS = 10_000
export class LearntLocks {
  readonly #owners = new Map<string, string>()
  get (hash: string) { return this.#owners.get(hash) }
  set (hash: string, userId: string | null) {
    this.#owners.delete(hash)
    if (userId === null) return
    if (this.#owners.size >= MAX_OWNERS) this.#owners.delete(this.#owners.keys().next().value!)
    this.#owners.set(hash, userId)
  }
}

interface Pending {
  hash: string
  request: VerifyRequest
  hold: Reservation
  /** batches this request has been put back from (a missing owner lock, a deadlock) */
  retries: number
  resolve: (reserved: Reserved) => void
  reject: (error: unknown) => void
}

/** PostgreSQL's deadlock_detected: two instances' batches met in another order; both are retried */
const DEADLOCK = '40P01'
const MAX_RETRIES = 3

export class Reserver {
  readonly #queue: Pending[] = []
  #running = 0
  readonly #concurrent: number
  readonly #maxBatch: number

  constructor (private readonly pool: pg.Pool, private readonly keyring: Keyring, private readonly settings: ReserveSettings, private readonly owners = new LearntLocks(), private readonly currentHashes = new LearntLocks()) {
    this.#concurrent = settings.concurrentBatches ?? 1
    this.#maxBatch = settings.maxBatch ?? 256
  }

  async reserve (request: VerifyRequest, hold: Reservation): Promise<Reserved> {
    const hash = hashApiKey(this.keyring, request.key)
    return await new Promise<Reserved>((resolve, reject) => {
      this.#queue.push({ hash, request, hold, retries: 0, resolve, reject })
      this.#drain()
    })
  }

  /** Starts the batches there is room for; `client` is a finished batch's connection, handed to the next (else released). */
  #drain (client?: pg.PoolClient): void {
    while (this.#running < this.#concurrent && this.#queue.length > 0) {
      // a request_id met twice goes to a later batch, where the first one's hold answers it
      const seen = new Set<string>()
      const batch: Pending[] = []
      for (let i = 0; i < this.#queue.length && batch.length < this.#maxBatch;) {
        const item = this.#queue[i]!
        if (seen.has(item.hold.request_id)) { i++; continue }
        seen.add(item.hold.request_id)
        batch.push(item)
        this.#queue.splice(i, 1)
      }
      this.#running++
      const given = client
      client = undefined
      void this.#decide(batch, given).then((kept) => { this.#running--; this.#drain(kept) })
    }
    client?.release()
  }

  #retryOrFail (item: Pending, error: unknown): void {
    if (((error as { code?: string }).code === DEADLOCK || error instanceof NeedsOwnerLock) && item.retries < MAX_RETRIES) this.#queue.push({ ...item, retries: item.retries + 1 })
    else item.reject(error)
  }

  /**
   * One batch, on `given` or a connection from the pool: every item ends resolved, rejected,
   * or back in the queue; it never throws. Returns its connection when the batch ended
   * cleanly, for the next batch: under load a batch waits for no checkout (0.3–1 ms in a
   * busy event loop, bench/README).
   */
  async #decide (batch: Pending[], given?: pg.PoolClient): Promise<pg.PoolClient | undefined> {
    const undecided = new Set(batch)
    const knownOwners = new Set(batch.map((item) => this.owners.get(item.hash)).filter((user) => user !== undefined))
    const hashes = [...new Set(batch.map((item) => item.hash))]
    // a rotated key's old and new secret lock as one: by its current hash
    const lockHashes = new Set(batch.map((item) => this.currentHashes.get(item.hash) ?? item.hash))
    let client: pg.PoolClient | undefined
    let open = false
    try {
      client = given ?? await this.pool.connect()
      open = true
      const read = await pipeline(client, [...begin, lockSql(lockOrder(lockHashes, knownOwners)), keyStateQuery({ hashes }, this.settings),
        requestsSql(batch.map((item) => item.hold.request_id))])
      // one more statement in the transaction, under the same locks: a round trip of its own
      const readMore = async (query: Fragment) => (await pipeline(client!, [query]))[0]!.rows as Array<Record<string, unknown>>
      // the budgets, only when a key of the batch has any
      const keys = await keyStatesOf(read[3]!.rows as Array<Record<string, unknown>>, readMore)
      // by either secret's hash (a rotated key's old one verifies during its grace)
      const states = new Map(keys.flatMap((key) => key.previous_key_hash === null ? [[key.key_hash, key] as const] : [[key.key_hash, key] as const, [key.previous_key_hash, key] as const]))
      const requests = read[4]!.rows as Array<Omit<Known, 'served_status'> & { request_id: string, served: boolean }>
      // the usage rows' status, only for requests verified after their start or completion reached usage (rare)
      const servedIds = requests.filter((row) => row.served).map((row) => row.request_id)
      const statuses = new Map(servedIds.length === 0 ? [] : (await readMore(servedSql(servedIds))).map((row) => [row.request_id as string, row.status as string]))
      const known = new Map(requests.map((row) => [row.request_id, { ...row, served_status: statuses.get(row.request_id) ?? null }]))

      const admitted: Array<{ item: Pending, row: Admitted, answer: ReturnType<typeof answerOf> }> = []
      for (const item of batch) {
        const key = states.get(item.hash)
        try {
          if (key !== undefined) {
            const needsOwner = ownerLockNeeded(key)
            this.owners.set(item.hash, needsOwner ? key.user_id : null)
            this.currentHashes.set(item.hash, key.key_hash === item.hash ? null : key.key_hash)
            // the owner's quota or budget appeared since this process last saw the key: a later batch, with its lock
            if (needsOwner && !knownOwners.has(key.user_id)) throw new NeedsOwnerLock()
            // the old secret of a key rotated since this process last saw it: a later batch, with the current hash's lock
            if (!lockHashes.has(key.key_hash)) throw new NeedsOwnerLock()
          }
          const outcome = decideOne(item, key, known.get(item.hold.request_id)!)
          if ('reserved' in outcome) {
            undecided.delete(item)
            item.resolve(outcome.reserved)
            continue
          }
          const { row, at } = outcome
          admitted.push({ item, row, answer: answerOf(key!, row.amount) })
          // the requests after it in the batch see it as a live hold
          for (const other of keys) if (other.user_id === row.user_id) countHold(other, { ...row, at }, other === key)
        } catch (error) {
          undecided.delete(item)
          this.#retryOrFail(item, error)
        }
      }

      const written = await pipeline(client, admitted.length === 0 ? [sql`COMMIT`] : [insertSql(admitted.map((a) => a.row), this.settings.holdTtlSeconds), sql`COMMIT`])
      open = false
      const inserted = new Map(admitted.length === 0 ? [] : (written[0]!.rows as Array<{ request_id: string, expires_at: Date }>).map((row) => [row.request_id, row.expires_at]))
      for (const { item, answer } of admitted) {
        undecided.delete(item)
        const expiresAt = inserted.get(item.hold.request_id)
        // a reservation of the same request_id through another key committed while this batch read
        if (expiresAt === undefined) { item.reject(new Refusals.request_conflict(`request ${item.hold.request_id} is held by another key`)); continue }
        this.settings.onHoldTaken?.()
        item.resolve(withHold(answer, item.hold.request_id, item.hold.amount, expiresAt))
      }
    } catch (error) {
      // nothing of the batch committed: what the checks had not refused is retried or failed
      for (const item of undecided) this.#retryOrFail(item, error)
    }
    if (client === undefined) return undefined
    if (open) {
      // a failed ROLLBACK means the connection is gone; a rolled-back batch's connection is not handed on
      let broken: Error | undefined
      await client.query('ROLLBACK').catch((error: Error) => { broken = error })
      client.release(broken)
      return undefined
    }
    return client
  }
}

/** the batch lacked a lock its read showed a request needs: that request goes to a later batch, with the lock */
class NeedsOwnerLock extends Error {}

/** A request's usage row and live hold, and the database's now(), as the batch read them. */
interface Known { prior_key_id: string | null, prior_amount: string | null, prior_expires_at: Date | null, served_status: string | null, at: Date }

/**
 * One request against its key's state (with the batch's earlier holds counted in): throws
 * its refusal, or answers with its live hold, or says which hold to take.
 */
function decideOne (item: Pending, key: KeyState | undefined, known: Known): { reserved: Reserved } | { row: Admitted, at: Date } {
  checkKey(key, item.hash, item.request)
  const { hold } = item
  if (known.prior_key_id !== null) {
    // the same request verified again: its live hold stands (already among the counted holds); no second one
    if (known.prior_key_id !== key.id) throw new Refusals.request_conflict(`request ${hold.request_id} is held by another key`)
    return { reserved: withHold(answerOf(key, 0n), hold.request_id, BigInt(known.prior_amount!), known.prior_expires_at!) }
  }
  if (known.served_status !== null && isFinished(known.served_status)) {
    throw new Refusals.request_conflict(`request ${hold.request_id} is already settled: a new request needs a new request_id`)
  }
  checkLimits(key, hold.amount, hold.tokens, item.request.model)
  const started = known.served_status !== null && isInFlight(known.served_status)
  return { row: { request_id: hold.request_id, api_key_id: key.id, user_id: key.user_id, model: hold.model ?? null, amount: hold.amount, tokens: hold.tokens, started }, at: known.at }
}

const withHold = (answer: ReturnType<typeof answerOf>, requestId: string, amount: bigint, expiresAt: Date): Reserved =>
  ({ ...answer, hold: { request_id: requestId, amount_usd: nanoToUsd(amount), expires_at: expiresAt.toISOString() } })
