// A verify that names its request (request_id) reserves: it admits the request only if a
// hold of the request's worst-case cost fits every limit of the key and its owner beside
// the holds already taken, and records that hold, atomically across instances. Each
// reservation is one short transaction on the verify pool:
//   1. the key's advisory lock (and its owner's, when the owner has a quota), so the
//      reservations of one key run one at a time on every instance;
//   2. one statement, in a snapshot taken after the lock: the key's state and counters
//      (every live hold included), the request's prior hold and row, and the new hold inserted;
//   3. the checks (verify.ts's admit, the same rule as an advisory verify, with the hold),
//      then COMMIT, or ROLLBACK on a refusal, so a refused request holds nothing.
// Its completion settles the hold in ingestion's transaction (accounting/holds.ts).
import type pg from 'pg'
import sql from 'sql-template-tag'
import { prepared } from '../../db/prisma.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsd } from '../../lib/money.js'
import { FINISHED_STATUSES, isFinished, IN_FLIGHT_STATUSES } from '../accounting/rules.js'
import { keyStateQuery, ownerLockNeeded, toKeyState, type CounterSettings } from '../keys/counters.js'
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
}

// advisory lock classes (the two-int form: its keys never meet the one-bigint locks)
const KEY_LOCK = 0x6b6d686b // "kmhk"
const USER_LOCK = 0x6b6d6875 // "kmhu"

/** 32 bits of a hex digest or uuid as a signed int4: two keys that share them only wait for each other. */
const lockId = (hex: string) => Number.parseInt(hex.replaceAll('-', '').slice(0, 8), 16) | 0

/**
 * BEGIN and the locks in one round trip (the simple protocol takes no parameters; the
 * values are int4s computed here, never text from the request). The key's first, then
 * its owner's: every reservation takes them in that order, so none waits in a cycle.
 */
function beginLocked (keyHash: string, userId: string | undefined): string {
  const locks: Array<[number, number]> = [[KEY_LOCK, lockId(keyHash)]]
  if (userId !== undefined) locks.push([USER_LOCK, lockId(userId)])
  for (const pair of locks) if (!pair.every(Number.isSafeInteger)) throw new Error('advisory lock ids must be integers')
  // a hold commits without waiting for its WAL flush (2–5 ms here): see docs/accounting.md, "A database crash"
  return `BEGIN; SET LOCAL synchronous_commit = off; SELECT ${locks.map(([a, b]) => `pg_advisory_xact_lock(${a}, ${b})`).join(', ')}`
}

/**
 * The key's state and counters, what is known of the request, and its hold inserted —
 * unless its row is finished or a live hold already has its id (that one is kept). The
 * insert does not show in this statement's own reads. Served by api_keys (key_hash), the
 * counters' indexes, usage (request_id) and admission_holds' primary key.
 */
function reserveSql (hash: string, hold: Reservation, settings: ReserveSettings) {
  return sql`
    WITH k AS (${keyStateQuery({ hash }, settings)}),
    prior AS (SELECT api_key_id, amount, expires_at FROM admission_holds WHERE request_id = ${hold.request_id} AND expires_at > now()),
    served AS (SELECT status::text AS status FROM usage WHERE request_id = ${hold.request_id}),
    inserted AS (
      INSERT INTO admission_holds (request_id, api_key_id, user_id, model, amount, tokens, started, expires_at)
      SELECT ${hold.request_id}, k.id, k.user_id, ${hold.model ?? null}, ${hold.amount}::bigint, ${hold.tokens}::bigint,
             COALESCE((SELECT status FROM served) = ANY(${[...IN_FLIGHT_STATUSES]}::text[]), false),
             now() + make_interval(secs => ${settings.holdTtlSeconds}::int)
        FROM k
       WHERE NOT EXISTS (SELECT 1 FROM prior) AND COALESCE((SELECT status FROM served) <> ALL(${[...FINISHED_STATUSES]}::text[]), true)
      ON CONFLICT (request_id) DO UPDATE SET api_key_id = EXCLUDED.api_key_id, user_id = EXCLUDED.user_id, model = EXCLUDED.model,
             amount = EXCLUDED.amount, tokens = EXCLUDED.tokens, started = EXCLUDED.started, created_at = now(), expires_at = EXCLUDED.expires_at
       -- only an expired hold is replaced: a live one is the request's own (prior)
       WHERE admission_holds.expires_at <= now()
      RETURNING expires_at
    )
    SELECT k.*, (SELECT api_key_id FROM prior) AS prior_key_id, (SELECT amount FROM prior) AS prior_amount,
           (SELECT expires_at FROM prior) AS prior_expires_at, (SELECT status FROM served) AS served_status,
           (SELECT expires_at FROM inserted) AS hold_expires_at
      FROM k`
}

export type Reserved = ReturnType<typeof answerOf> & { hold: { request_id: string, amount_usd: number, expires_at: string } }

/**
 * Owners whose quota makes a reservation take their lock too, by key hash (a key's
 * owner never changes). Learnt from each reservation's read; a stale entry costs one
 * retry, never a wrong admission: the read decides, under the locks it shows are needed.
 */
const MAX_OWNERS = 10_000
export class OwnerLocks {
  readonly #owners = new Map<string, string>()
  get (hash: string) { return this.#owners.get(hash) }
  set (hash: string, userId: string | null) {
    this.#owners.delete(hash)
    if (userId === null) return
    if (this.#owners.size >= MAX_OWNERS) this.#owners.delete(this.#owners.keys().next().value!)
    this.#owners.set(hash, userId)
  }
}

class NeedsOwnerLock extends Error {}

export async function reserve (pool: pg.Pool, keyring: Keyring, request: VerifyRequest, hold: Reservation, settings: ReserveSettings, owners: OwnerLocks) {
  const hash = hashApiKey(keyring, request.key)
  for (let attempt = 0; ; attempt++) {
    try {
      return await reserveOnce(pool, hash, request, hold, settings, owners)
    } catch (error) {
      // the owner's quota appeared since this process last saw the key: again, with its lock
      if (!(error instanceof NeedsOwnerLock) || attempt > 0) throw error
    }
  }
}

async function reserveOnce (pool: pg.Pool, hash: string, request: VerifyRequest, hold: Reservation, settings: ReserveSettings, owners: OwnerLocks): Promise<Reserved> {
  const client = await pool.connect()
  let broken: Error | undefined
  let open = false
  try {
    const ownerLocked = owners.get(hash)
    open = true
    await client.query(beginLocked(hash, ownerLocked))
    const query = reserveSql(hash, hold, settings)
    const row = (await prepared(client).query(query.text, query.values)).rows[0] as Record<string, unknown> | undefined
    const key = row === undefined ? undefined : toKeyState(row)
    if (key !== undefined) {
      owners.set(hash, ownerLockNeeded(key) ? key.user_id : null)
      if (ownerLockNeeded(key) && ownerLocked !== key.user_id) throw new NeedsOwnerLock()
    }
    checkKey(key, hash, request)
    if (row!.prior_key_id !== null) {
      // the same request verified again: its live hold stands (already among the counted holds); no second one
      if (row!.prior_key_id !== key.id) throw new Refusals.request_conflict(`request ${hold.request_id} is held by another key`)
      return withHold(answerOf(key, 0n), hold.request_id, BigInt(row!.prior_amount as string), row!.prior_expires_at as Date)
    }
    if (typeof row!.served_status === 'string' && isFinished(row!.served_status)) {
      throw new Refusals.request_conflict(`request ${hold.request_id} is already settled: a new request needs a new request_id`)
    }
    // a reservation of the same request_id through another key committed while this one waited for it
    if (row!.hold_expires_at === null) throw new Refusals.request_conflict(`request ${hold.request_id} is held by another key`)
    checkLimits(key, hold.amount, hold.tokens, request.model)
    await client.query('COMMIT')
    open = false
    settings.onHoldTaken?.()
    return withHold(answerOf(key, hold.amount), hold.request_id, hold.amount, row!.hold_expires_at as Date)
  } finally {
    // a refusal or an error holds nothing; a failed ROLLBACK means the connection is gone
    if (open) await client.query('ROLLBACK').catch((error: Error) => { broken = error })
    client.release(broken)
  }
}

const withHold = (answer: ReturnType<typeof answerOf>, requestId: string, amount: bigint, expiresAt: Date): Reserved =>
  ({ ...answer, hold: { request_id: requestId, amount_usd: nanoToUsd(amount), expires_at: expiresAt.toISOString() } })
