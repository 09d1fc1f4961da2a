// The prompt-cache analytics SQL (the shared pg pool; every value a parameter).
// Windows are whole UTC hours (`from` is an hour boundary), so the hourly tables
// answer them alone; the timeline's points come from cache_timeline_points, the
// keys' last requests from cache_timeline_tail: nothing here reads usage rows.
import type pg from 'pg'
import { inTransaction, type Sql } from '../../db/prisma.js'

/** Which groups: one scope, optionally one id of it, optionally the keys of one owner. */
export interface Scope { scope: 'user' | 'api_key', id: string | null, ownerId: string | null }

/** A group's hourly histograms over the window, concatenated (src/modules/cache/packed.ts: the same bin recurs once per hour). */
export interface GroupBins { scope_id: string, bins: Buffer }

/**
 * Histogram rows per group over the window: cache_interval_hourly (scope, bucket)
 * without an id, its primary key (scope, scope_id, bucket) with one. One row per
 * (group, hour) holds that hour's bins packed, so the window reads a row per group and
 * hour (for 168 hours at 10M usage rows: 30k rows by user, 113k by key) and PostgreSQL only
 * concatenates them per group; Node sums the bins.
 */
export async function intervalBins (db: pg.Pool, s: Scope, from: Date): Promise<GroupBins[]> {
  return await inTransaction(db, async (client) => {
    // a group's concatenation is hashed in memory (at most a few megabytes in all)
    await client.query(`SELECT set_config('work_mem', '64MB', true)`)
    const { rows } = await client.query<GroupBins>(`
      SELECT scope_id, string_agg(bins, ''::bytea) AS bins
        FROM cache_interval_hourly
       WHERE scope = $1 AND bucket >= $2 AND ($3::uuid IS NULL OR scope_id = $3)
         AND ($4::uuid IS NULL OR scope_id IN (SELECT id FROM api_keys WHERE user_id = $4))
       GROUP BY scope_id`, [s.scope, from, s.id, s.ownerId])
    return rows
  })
}

export interface GroupInfo { id: string, name: string | null, username: string | null, email: string | null }

/** Names of the groups: users, or keys with their owners. */
export async function groupInfo (db: Sql, scope: Scope['scope'], ids: string[]): Promise<Map<string, GroupInfo>> {
  const { rows } = scope === 'user'
    ? await db.query<GroupInfo>('SELECT id, NULL AS name, username, email FROM users WHERE id = ANY($1::uuid[])', [ids])
    : await db.query<GroupInfo>(`SELECT k.id, k.name, u.username, u.email FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
                                  WHERE k.id = ANY($1::uuid[])`, [ids])
  return new Map(rows.map((row) => [row.id, row]))
}

export interface DominantModel { group_id: string, model: string, input: string | null, cache_write_5m: string | null, cache_write_1h: string | null, cache_read: string | null }

/**
 * Each group's most requested model over the window's days (usage_daily_key
 * (day, …) / (user_id, day) / (api_key_id, day)), and that model's current global price's
 * first tier (model_prices (model, effective_from)); a provider's own price when there is
 * no global one. The groups are chosen by the same filters as intervalBins, not by the ids
 * it returns, so both run at once; a group with traffic but no gap in the window is
 * returned too, and not used. The model is chosen first, so the price is looked up once
 * per group, not once per (group, model).
 */
export async function dominantModels (db: Sql, s: Scope, from: Date): Promise<DominantModel[]> {
  const { rows } = await db.query<DominantModel>(`
    SELECT d.group_id, d.model, p.tiers -> 0 ->> 'input' AS input, p.tiers -> 0 ->> 'cache_write_5m' AS cache_write_5m,
           p.tiers -> 0 ->> 'cache_write_1h' AS cache_write_1h, p.tiers -> 0 ->> 'cache_read' AS cache_read
      FROM (SELECT DISTINCT ON (group_id) group_id, model
              FROM (SELECT CASE WHEN $1 = 'user' THEN user_id ELSE api_key_id END AS group_id, model, sum(requests) AS requests
                      FROM usage_daily_key
                     WHERE day >= $2::date AND ($3::uuid IS NULL OR CASE WHEN $1 = 'user' THEN user_id ELSE api_key_id END = $3)
                       AND ($4::uuid IS NULL OR api_key_id IN (SELECT id FROM api_keys WHERE user_id = $4))
                     GROUP BY 1, 2) m
             WHERE group_id IS NOT NULL
             ORDER BY group_id, requests DESC, model) d
      LEFT JOIN LATERAL (
        SELECT tiers FROM model_prices m WHERE m.model = d.model AND m.effective_from <= now()
         ORDER BY m.provider_id IS NULL DESC, m.effective_from DESC LIMIT 1) p ON true`, [s.scope, from, s.id, s.ownerId])
  return rows
}

export interface HitTotals {
  requests: string
  cache_hit_requests: string
  input_tokens: string
  cache_read_tokens: string
  cache_creation_tokens: string
  cache_read_cost: string
  cache_creation_cost: string
}

/**
 * Finished requests' token and cost totals: usage_hourly_provider (bucket, …) for all
 * traffic; usage_hourly (user_id, bucket) / (api_key_id, bucket) for a user or a key.
 */
export async function hitTotals (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<HitTotals> {
  const table = userId === null && keyId === null ? 'usage_hourly_provider' : 'usage_hourly'
  const filter = table === 'usage_hourly' ? 'AND ($2::uuid IS NULL OR user_id = $2) AND ($3::uuid IS NULL OR api_key_id = $3)' : ''
  const { rows } = await db.query<HitTotals>(`
    SELECT COALESCE(sum(requests), 0)::bigint AS requests, COALESCE(sum(cache_hit_requests), 0)::bigint AS cache_hit_requests,
           COALESCE(sum(input_tokens), 0)::bigint AS input_tokens, COALESCE(sum(cache_read_tokens), 0)::bigint AS cache_read_tokens,
           COALESCE(sum(cache_creation_tokens), 0)::bigint AS cache_creation_tokens, COALESCE(sum(cache_read_cost), 0)::bigint AS cache_read_cost,
           COALESCE(sum(cache_creation_cost), 0)::bigint AS cache_creation_cost
      FROM ${table} WHERE bucket >= $1 ${filter}`, table === 'usage_hourly' ? [from, userId, keyId] : [from])
  return rows[0]!
}

export interface SavingsTotals {
  read_saving: string
  write_5m_premium: string
  write_1h_premium: string
  cache_write_5m_tokens: string
  cache_write_1h_tokens: string
  wasted_5m_tokens: string
  wasted_1h_tokens: string
  wasted_cost: string
}

/** cache_savings_hourly: the primary key (bucket, …) for all; (user_id, bucket) / (api_key_id, bucket) filtered. */
export async function savingsTotals (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<SavingsTotals> {
  const { rows } = await db.query<SavingsTotals>(`
    SELECT COALESCE(sum(read_saving), 0)::bigint AS read_saving, COALESCE(sum(write_5m_premium), 0)::bigint AS write_5m_premium,
           COALESCE(sum(write_1h_premium), 0)::bigint AS write_1h_premium, COALESCE(sum(cache_write_5m_tokens), 0)::bigint AS cache_write_5m_tokens,
           COALESCE(sum(cache_write_1h_tokens), 0)::bigint AS cache_write_1h_tokens, COALESCE(sum(wasted_5m_tokens), 0)::bigint AS wasted_5m_tokens,
           COALESCE(sum(wasted_1h_tokens), 0)::bigint AS wasted_1h_tokens, COALESCE(sum(wasted_cost), 0)::bigint AS wasted_cost
      FROM cache_savings_hourly
     WHERE bucket >= $1 AND ($2::uuid IS NULL OR user_id = $2) AND ($3::uuid IS NULL OR api_key_id = $3)`, [from, userId, keyId])
  return rows[0]!
}

export interface LastRequest { created_at: Date, w5: number, w1: number, p5: string | null, p1: string | null }

/**
 * Each key's last completed request made in the window, if it wrote to the cache:
 * its writes are wasted once their TTL passes with no next request.
 * cache_timeline_tail (scope, last_at).
 */
export async function lastWrites (db: Sql, from: Date, userId: string | null, keyId: string | null): Promise<LastRequest[]> {
  const { rows } = await db.query<LastRequest>(`
    SELECT last_at AS created_at, cache_write_5m_tokens AS w5, cache_write_1h_tokens AS w1,
           cache_write_5m_price_per_1m::text AS p5, cache_write_1h_price_per_1m::text AS p1
      FROM cache_timeline_tail
     WHERE scope = 'api_key' AND last_at >= $1 AND ($2::uuid IS NULL OR user_id = $2) AND ($3::uuid IS NULL OR scope_id = $3)
       AND cache_write_5m_tokens + cache_write_1h_tokens > 0`, [from, userId, keyId])
  return rows
}

/** Timeline points per hour: cache_points_hourly primary key (bucket, …), or (user_id, bucket). */
export async function pointsPerHour (db: Sql, from: Date, userId: string | null): Promise<Array<{ bucket: Date, count: string }>> {
  const { rows } = await db.query<{ bucket: Date, count: string }>(`
    SELECT bucket, sum(count)::bigint AS count FROM cache_points_hourly
     WHERE bucket >= $1 AND ($2::uuid IS NULL OR user_id = $2)
     GROUP BY bucket HAVING sum(count) > 0 ORDER BY bucket`, [from, userId])
  return rows
}

export interface Point { created_at: Date, user_id: string, model: string, gap_ms: number }

/** Every timeline point in the window, oldest first: cache_timeline_points (created_at, request_id), or its primary key (user_id, created_at, …). */
export async function allPoints (db: Sql, from: Date, userId: string | null): Promise<Point[]> {
  const { rows } = userId === null
    ? await db.query<Point>(`SELECT created_at, user_id, model, gap_ms FROM cache_timeline_points WHERE created_at >= $1
                              ORDER BY created_at, request_id`, [from])
    : await db.query<Point>(`SELECT created_at, user_id, model, gap_ms FROM cache_timeline_points WHERE user_id = $2 AND created_at >= $1
                              ORDER BY created_at, request_id`, [from, userId])
  return rows
}

/**
 * The first timeline point in each [lo, hi) slot: one probe per slot of
 * cache_timeline_points (created_at, request_id), or of its primary key (user_id,
 * created_at, request_id) for one user.
 */
export async function firstPointPerSlot (db: Sql, slots: Array<{ lo: Date, hi: Date }>, userId: string | null): Promise<Point[]> {
  const { rows } = await db.query<Point>(`
    SELECT p.created_at, p.user_id, p.model, p.gap_ms
      FROM unnest($1::timestamptz[], $2::timestamptz[]) AS s(lo, hi)
     CROSS JOIN LATERAL (
        SELECT created_at, user_id, model, gap_ms FROM cache_timeline_points
         WHERE created_at >= s.lo AND created_at < s.hi${userId === null ? '' : ' AND user_id = $3'}
         ORDER BY created_at, request_id LIMIT 1) p
     ORDER BY p.created_at`, userId === null ? [slots.map((s) => s.lo), slots.map((s) => s.hi)] : [slots.map((s) => s.lo), slots.map((s) => s.hi), userId])
  return rows
}

/** Usernames for the timeline's users. */
export async function usernames (db: Sql, ids: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string, username: string }>('SELECT id, username FROM users WHERE id = ANY($1::uuid[])', [ids])
  return new Map(rows.map((row) => [row.id, row.username]))
}
