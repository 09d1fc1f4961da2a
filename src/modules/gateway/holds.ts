// Around the holds (accounting/holds.ts): how big a new one is, the release of those
// never settled, and the admins' list of those live.
import type pg from 'pg'
import sql, { empty } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { liveHoldSql } from '../accounting/holds.js'
import { worstCaseCost, type Estimate } from '../accounting/pricing.js'
import { pickPrice, priceVersionsFor, type PriceVersion } from '../prices/service.js'
import { VerifyCache } from './cache.js'
import { UUID_PATTERN } from '../../lib/crypto.js'

/** The largest hold, nano-USD ($1,000,000): any limit below it refuses such a request anyway, and a key's holds must sum within int8. */
export const MAX_HOLD = 10n ** 15n

/** How long a model's prices and the providers' names are reused to size holds; this process's own changes clear them at once. */
export const PRICE_BOOK_TTL_MS = 10_000

export interface HoldRequest { model?: string, provider?: string, estimated_input_tokens?: number, max_output_tokens?: number }

/**
 * A hold's amount, nano-USD: the request's worst-case cost at the price in effect for its
 * model and provider (accounting/pricing.ts worstCaseCost), or the default hold when the
 * model has no price or the request gives no estimate of its input and output.
 */
export class HoldPricer {
  readonly #prices: VerifyCache<PriceVersion[]>
  readonly #providers: VerifyCache<Map<string, string>>

  constructor (private readonly db: Db, private readonly defaultHold: bigint) {
    this.#prices = new VerifyCache(PRICE_BOOK_TTL_MS)
    this.#providers = new VerifyCache(PRICE_BOOK_TTL_MS)
  }

  /** The hold of a request: its amount, and the tokens it may use (its estimates, as far as given). */
  async hold (request: HoldRequest, now = new Date()): Promise<{ amount: bigint, tokens: bigint }> {
    return { amount: await this.#amount(request, now), tokens: BigInt((request.estimated_input_tokens ?? 0) + (request.max_output_tokens ?? 0)) }
  }

  async #amount (request: HoldRequest, now: Date): Promise<bigint> {
    const { model, estimated_input_tokens: input, max_output_tokens: output } = request
    if (model === undefined || input === undefined || output === undefined) return this.defaultHold
    const versions = await this.#prices.get(model, () => priceVersionsFor(this.db, [model]))
    const price = pickPrice(versions ?? [], model, await this.#providerId(request.provider), now)
    if (price === null || price.tiers.length === 0) return this.defaultHold
    const estimate: Estimate = { inputTokens: input, outputTokens: output }
    const worst = worstCaseCost(price, estimate)
    return worst < MAX_HOLD ? worst : MAX_HOLD
  }

  /** The provider's id from its id or name; null when none is named or it is unknown (its model's global price then applies). */
  async #providerId (provider: string | undefined): Promise<string | null> {
    if (provider === undefined) return null
    if (UUID_PATTERN.test(provider)) return provider.toLowerCase()
    // served by providers' primary key: the whole table, a few rows
    const byName = await this.#providers.get('', async () => new Map((await this.db.provider.findMany({ select: { id: true, name: true } })).map((p) => [p.name, p.id])))
    return byName?.get(provider) ?? null
  }

  clear (): void {
    this.#prices.clear()
    this.#providers.clear()
  }
}

/**
 * Releases holds past their expiry, at most `batch` at a time, each with an audit row
 * (system, admission_hold_expired) in the same statement; returns how many. An expired
 * hold already counts for nothing (accounting/holds.ts liveHoldSql): this deletes it and
 * leaves its trace. SKIP LOCKED: instances sweeping at once release each hold once.
 * Served by admission_holds (expires_at).
 */
export async function releaseExpiredHolds (pool: pg.Pool, batch = 1000): Promise<number> {
  let released = 0
  for (;;) {
    const { rowCount } = await pool.query(sql`
      WITH expired AS (
        DELETE FROM admission_holds WHERE request_id IN (
          SELECT request_id FROM admission_holds WHERE expires_at <= now() ORDER BY expires_at LIMIT ${batch} FOR UPDATE SKIP LOCKED)
        RETURNING request_id, api_key_id, user_id, model, amount, started, created_at, expires_at
      )
      INSERT INTO audit_logs (event_type, action, principal_type, user_id, success, metadata)
      SELECT 'system', 'admission_hold_expired', 'system', user_id, true,
             jsonb_build_object('request_id', request_id, 'key_id', api_key_id, 'owner_user_id', user_id, 'model', model,
                                'amount_usd', round(amount / 1e9, 9), 'started', started, 'created_at', created_at, 'expires_at', expires_at)
        FROM expired`)
    released += rowCount ?? 0
    if ((rowCount ?? 0) < batch) return released
  }
}

/** Dead rows in admission_holds past which vacuumHolds vacuums it. */
export const HOLDS_VACUUM_THRESHOLD = 1000

/**
 * Vacuums admission_holds once it holds `threshold` dead rows or more; says whether it did,
 * or that it may not (this database user neither owns the table nor is a member of its
 * owner). Every settled hold leaves a dead row, and its index entry stays in its key's range
 * until a scan marks it dead or a vacuum removes it (docs/accounting.md, "Dead rows"; the
 * verify pool's plain index scans mark what they pass, db/prisma.ts VERIFY_PLANS). Autovacuum
 * visits a database at most once a minute. SKIP_LOCKED: instances vacuuming at once never wait for each other.
 */
export async function vacuumHolds (pool: pg.Pool, threshold = HOLDS_VACUUM_THRESHOLD): Promise<'vacuumed' | 'clean' | 'not owner'> {
  const { rows: [table] } = await pool.query<{ dead: string, owner: boolean }>(sql`
    SELECT s.n_dead_tup AS dead, pg_has_role(c.relowner, 'USAGE') AS owner
      FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'admission_holds'::regclass`)
  if (table === undefined || BigInt(table.dead) < BigInt(threshold)) return 'clean'
  if (!table.owner) return 'not owner'
  await pool.query('VACUUM (SKIP_LOCKED) admission_holds')
  return 'vacuumed'
}

export interface HoldFilter { api_key_id?: string, user_id?: string, limit: number }

interface HoldRow { request_id: string, api_key_id: string, user_id: string, model: string | null, amount: string, started: boolean, created_at: Date, expires_at: Date, total: number, held: string }

/** How many holds are live, all instances' (the metrics' gauge). Served by admission_holds (expires_at). */
export async function countLiveHolds (pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ live: number }>(sql`SELECT count(*)::int AS live FROM admission_holds h WHERE ${liveHoldSql('h')}`)
  return rows[0]!.live
}

/**
 * The live holds, newest first, with how many match and their sum (counted before the
 * limit). Served by admission_holds (api_key_id, expires_at) or (user_id, expires_at); without either, the whole
 * table, which holds only the requests in flight.
 */
export async function listHolds (pool: pg.Pool, filter: HoldFilter) {
  const { rows } = await pool.query<HoldRow>(sql`
    SELECT request_id, api_key_id, user_id, model, amount, started, created_at, expires_at,
           (count(*) OVER ())::int AS total, (sum(amount) OVER ())::text AS held
      FROM admission_holds
     WHERE ${liveHoldSql('admission_holds')}
       ${filter.api_key_id === undefined ? empty : sql`AND api_key_id = ${filter.api_key_id}::uuid`}
       ${filter.user_id === undefined ? empty : sql`AND user_id = ${filter.user_id}::uuid`}
     ORDER BY created_at DESC, request_id
     LIMIT ${filter.limit}`)
  return {
    holds: rows.map((row) => ({
      request_id: row.request_id,
      api_key_id: row.api_key_id,
      user_id: row.user_id,
      model: row.model,
      amount_usd: nanoToUsd(BigInt(row.amount)),
      started: row.started,
      created_at: row.created_at.toISOString(),
      expires_at: row.expires_at.toISOString()
    })),
    total: rows[0]?.total ?? 0,
    held_usd: nanoToUsd(BigInt(rows[0]?.held ?? 0))
  }
}
