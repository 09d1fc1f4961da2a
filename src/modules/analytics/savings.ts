// Cache savings over a range (Aether's GET /api/admin/stats/cost/savings, keymeter's
// figures beside it): what cache reads saved against the input price (gross, Aether's
// cache_savings), net of what writes cost above it (keymeter's), and the writes that
// expired unread; in total, by model and by provider. One pricing rule for all of it
// (accounting/pricing.ts cacheEconomics), kept in the rollups by model.ts and in
// cache_savings_hourly by cache/timeline.ts.
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { dayPlan, hourPlan, type Span } from '../../lib/spans.js'
import { wasteOf } from '../accounting/cache/timeline.js'
import { cacheEconomicsSql } from '../accounting/pricing.js'
import { lastWrites } from '../accounting/read/cache.js'
import { finishedSql, NIL_UUID } from '../accounting/rules.js'
import type { AnalyticsRange } from './range.js'

const HOUR = 3_600_000
const ECONOMICS = cacheEconomicsSql('u.')
const MEASURES = ['cache_read_tokens', 'cache_creation_tokens', 'cache_read_cost', 'cache_creation_cost', 'cache_read_saving', 'cache_write_premium'] as const
const ROLLUP_MEASURES = raw(MEASURES.map((m) => `r.${m}`).join(', '))
// a raw row as ingestion adds it to a rollup row (model.ts): an unpriced row saves nothing
const RAW_MEASURES = sql`u.cache_read_input_tokens::bigint, u.cache_creation_input_tokens::bigint, u.cache_read_cost, u.cache_creation_cost,
  COALESCE(${ECONOMICS.readSaving}, 0), COALESCE(${ECONOMICS.write5mPremium}, 0) + COALESCE(${ECONOMICS.write1hPremium}, 0)`

/** A group's sums, nano-USD and tokens as bigints. */
type Sums = Record<typeof MEASURES[number], bigint>

const inSpans = (column: string, spans: Span[]): Fragment =>
  sql`(${join(spans.map((s) => sql`(${raw(column)} >= ${s.from} AND ${raw(column)} < ${s.to})`), ' OR ')})`

/**
 * The range's sums per (provider, model). All traffic: whole UTC days from
 * usage_daily_model (day, …), the hours beside them from usage_hourly_model (bucket, …),
 * the ragged edges from usage (created_at). One user's: whole hours from usage_hourly
 * (user_id, bucket), edges from usage (user_id, created_at). A provider that no longer
 * exists (or none) is provider null.
 */
async function sumsByGroup (db: Sql, range: AnalyticsRange, userId: string | null) {
  let rollups: Fragment
  let edges: Span[]
  if (userId === null) {
    const plan = dayPlan(range)
    edges = plan.edges
    rollups = sql`
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_daily_model r
       WHERE r.day >= (${plan.days.from}::timestamptz AT TIME ZONE 'UTC')::date AND r.day < (${plan.days.to}::timestamptz AT TIME ZONE 'UTC')::date
      UNION ALL
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_hourly_model r WHERE ${inSpans('r.bucket', plan.hours)}`
  } else {
    const plan = hourPlan(range)
    edges = plan.edges
    rollups = sql`
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_hourly r
       WHERE r.user_id = ${userId}::uuid AND r.bucket >= ${plan.hours.from} AND r.bucket < ${plan.hours.to}`
  }
  const { rows } = await db.query(sql`
    SELECT n.id AS provider_id, n.name AS provider_name, p.model, ${raw(MEASURES.map((m) => `sum(p.${m})::text AS ${m}`).join(', '))}
      FROM (
        ${rollups}
        UNION ALL
        SELECT COALESCE(u.provider_id, ${NIL_UUID}::uuid), u.model, ${RAW_MEASURES} FROM usage u
         WHERE ${finishedSql('u')} AND ${inSpans('u.created_at', edges)}${userId === null ? empty : sql` AND u.user_id = ${userId}::uuid`}
      ) p LEFT JOIN providers n ON n.id = p.provider_id
     GROUP BY n.id, n.name, p.model
    HAVING sum(p.cache_read_tokens) <> 0 OR sum(p.cache_creation_tokens) <> 0`)
  return rows.map((row: Record<string, unknown>) => ({
    providerId: row.provider_id as string | null,
    providerName: row.provider_name as string | null,
    model: row.model as string,
    sums: Object.fromEntries(MEASURES.map((m) => [m, BigInt(row[m] as string)])) as Sums
  }))
}

/** Wasted writes of the range's hours (by the hour of the write), nano-USD and tokens. */
export interface Wasted { w5: bigint, w1: bigint, cost: bigint }

/**
 * Writes that expired unread, by the hour they were written: cache_savings_hourly_global over
 * every hour the range touches (primary key (bucket)), or cache_savings_hourly's (user_id, bucket) for one user; and each
 * key's last write in them judged against the clock, as the cache page does
 * (cache/service.ts hitAnalysis; cache_timeline_tail (scope, last_at)).
 */
async function wastedWrites (db: Sql, range: AnalyticsRange, userId: string | null, now: Date): Promise<Wasted> {
  const from = new Date(Math.floor(range.start.getTime() / HOUR) * HOUR)
  const [{ rows }, tails] = await Promise.all([
    db.query(sql`
      SELECT COALESCE(sum(wasted_5m_tokens), 0)::text AS w5, COALESCE(sum(wasted_1h_tokens), 0)::text AS w1, COALESCE(sum(wasted_cost), 0)::text AS cost
        FROM ${userId === null ? raw('cache_savings_hourly_global') : raw('cache_savings_hourly')}
       WHERE bucket >= ${from} AND bucket < ${range.end}${userId === null ? empty : sql` AND user_id = ${userId}::uuid`}`),
    lastWrites(db, from, userId, null)
  ])
  const wasted = { w5: BigInt(rows[0].w5), w1: BigInt(rows[0].w1), cost: BigInt(rows[0].cost) }
  const end = Math.ceil(range.end.getTime() / HOUR) * HOUR
  for (const last of tails) {
    if (last.createdAt.getTime() >= end) continue
    const waste = wasteOf(last, now.getTime() - last.createdAt.getTime())
    wasted.w5 += waste.wasted5mTokens
    wasted.w1 += waste.wasted1hTokens
    wasted.cost += waste.wastedCost
  }
  return wasted
}

const ZERO: Sums = Object.fromEntries(MEASURES.map((m) => [m, 0n])) as Sums
const add = (a: Sums, b: Sums): Sums => Object.fromEntries(MEASURES.map((m) => [m, a[m] + b[m]])) as Sums

/** A group's figures: Aether's names (gross), keymeter's beside them; USD. */
function figures (s: Sums) {
  return {
    cache_read_tokens: Number(s.cache_read_tokens),
    cache_read_cost: nanoToUsd(s.cache_read_cost),
    cache_creation_cost: nanoToUsd(s.cache_creation_cost),
    // the reads at the input price: what they would have cost uncached
    estimated_full_cost: nanoToUsd(s.cache_read_cost + s.cache_read_saving),
    cache_savings: nanoToUsd(s.cache_read_saving),
    cache_creation_tokens: Number(s.cache_creation_tokens),
    cache_write_premium: nanoToUsd(s.cache_write_premium),
    net_savings: nanoToUsd(s.cache_read_saving - s.cache_write_premium)
  }
}

/** Larger gross saving first, then by name: a stable order. */
const bySaving = <T extends { sums: Sums, name: string }>(a: T, b: T) =>
  a.sums.cache_read_saving === b.sums.cache_read_saving ? (a.name < b.name ? -1 : 1) : a.sums.cache_read_saving > b.sums.cache_read_saving ? -1 : 1

/** The range's cache savings, over all traffic (userId null) or one user's keys. */
export async function cacheSavings (db: Sql, range: AnalyticsRange, userId: string | null, now = new Date()) {
  const [groups, wasted] = await Promise.all([sumsByGroup(db, range, userId), wastedWrites(db, range, userId, now)])
  const models = new Map<string, Sums>()
  const providers = new Map<string | null, { name: string | null, sums: Sums }>()
  let total = ZERO
  for (const g of groups) {
    total = add(total, g.sums)
    models.set(g.model, add(models.get(g.model) ?? ZERO, g.sums))
    const p = providers.get(g.providerId)
    providers.set(g.providerId, { name: g.providerName, sums: add(p?.sums ?? ZERO, g.sums) })
  }
  return {
    ...figures(total),
    wasted_write_tokens: Number(wasted.w5 + wasted.w1),
    wasted_write_5m_tokens: Number(wasted.w5),
    wasted_write_1h_tokens: Number(wasted.w1),
    wasted_write_cost: nanoToUsd(wasted.cost),
    by_model: [...models].map(([model, sums]) => ({ name: model, sums })).sort(bySaving).map(({ name, sums }) => ({ model: name, ...figures(sums) })),
    by_provider: [...providers].map(([id, p]) => ({ id, name: p.name ?? '', providerName: p.name, sums: p.sums })).sort(bySaving)
      .map((p) => ({ provider_id: p.id, provider_name: p.providerName, ...figures(p.sums) })),
    start_date: range.start.toISOString(),
    end_date: range.end.toISOString()
  }
}
