// Cache savings over a range (Aether's GET /api/admin/stats/cost/savings, keymeter's
// figures beside it): what cache reads saved against the input price (gross, Aether's
// cache_savings), net of what writes cost above it (keymeter's), and the writes that
// expired unread; in total, by model and by provider (a wasted write's: the request's that
// made it). One pricing rule for all of it (accounting/pricing.ts cacheEconomics), kept in
// the rollups by model.ts and in cache_savings_hourly (…_model) by cache/timeline.ts.
import sql, { empty, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { hourPlan, quarterDayPlan, type Span } from '../../lib/spans.js'
import { wasteOf } from '../accounting/cache/timeline.js'
import { cacheEconomicsSql, tierPricesJoinSql } from '../accounting/pricing.js'
import { lastWrites } from '../accounting/read/cache.js'
import { withinEither } from '../accounting/read/sql.js'
import { finishedSql, NIL_UUID } from '../accounting/rules.js'
import type { AnalyticsRange } from './range.js'

const HOUR = 3_600_000
const ECONOMICS = cacheEconomicsSql('u.', 'pt.')
const MEASURES = ['cache_read_tokens', 'cache_creation_tokens', 'cache_read_cost', 'cache_creation_cost', 'cache_read_saving', 'cache_write_premium'] as const
const ROLLUP_MEASURES = raw(MEASURES.map((m) => `r.${m}`).join(', '))
// a raw row as ingestion adds it to a rollup row (model.ts): an unpriced row saves nothing
const RAW_MEASURES = sql`u.cache_read_input_tokens::bigint, u.cache_creation_input_tokens::bigint, u.cache_read_cost, u.cache_creation_cost,
  COALESCE(${ECONOMICS.readSaving}, 0), COALESCE(${ECONOMICS.write5mPremium}, 0) + COALESCE(${ECONOMICS.write1hPremium}, 0)`

/** A group's sums, nano-USD and tokens as bigints. */
type Sums = Record<typeof MEASURES[number], bigint>

/**
 * The range's sums per (provider, model). All traffic: whole UTC days from
 * usage_daily_model (day, …), the hours beside them from usage_hourly_model (bucket, …),
 * the quarter-hours beside those from usage_quarter_hourly_model (bucket, …), what lies
 * inside a quarter-hour from usage (created_at). One user's: whole hours from usage_hourly
 * (user_id, bucket), edges from usage (user_id, created_at). A provider that no longer
 * exists (or none) is provider null.
 */
async function sumsByGroup (db: Sql, range: AnalyticsRange, userId: string | null) {
  let rollups: Fragment
  let edges: readonly [Span, Span]
  if (userId === null) {
    const plan = quarterDayPlan(range)
    edges = plan.ragged
    rollups = sql`
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_daily_model r
       WHERE r.day >= (${plan.days.from}::timestamptz AT TIME ZONE 'UTC')::date AND r.day < (${plan.days.to}::timestamptz AT TIME ZONE 'UTC')::date
      UNION ALL
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_hourly_model r WHERE ${withinEither(raw('r.bucket'), plan.hours)}
      UNION ALL
      SELECT r.provider_id, r.model, ${ROLLUP_MEASURES} FROM usage_quarter_hourly_model r WHERE ${withinEither(raw('r.bucket'), plan.quarters)}`
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
        SELECT COALESCE(u.provider_id, ${NIL_UUID}::uuid), u.model, ${RAW_MEASURES} FROM usage u ${raw(tierPricesJoinSql('u'))}
         WHERE ${finishedSql('u')} AND ${withinEither(raw('u.created_at'), edges)}${userId === null ? empty : sql` AND u.user_id = ${userId}::uuid`}
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
const NONE: Wasted = { w5: 0n, w1: 0n, cost: 0n }
const addWasted = (a: Wasted, b: Wasted): Wasted => ({ w5: a.w5 + b.w5, w1: a.w1 + b.w1, cost: a.cost + b.cost })

/** A group's wasted writes: the writer's model, and its provider as sumsByGroup names it (null: none or deleted). */
interface WastedGroup { model: string, providerId: string | null, providerName: string | null, wasted: Wasted }

/**
 * Writes that expired unread, by the hour they were written and the writer's model and provider:
 * cache_savings_hourly_model over every hour the range touches (primary key (bucket, model, provider_id)),
 * or cache_savings_hourly's (user_id, bucket) for one user; and each key's last write in them judged
 * against the clock, as the cache page does (cache/service.ts hitAnalysis; cache_timeline_tail (scope, last_at)).
 * Providers named from providers' primary key: a deleted one's id (kept by ingestion) or the nil id is none.
 */
async function wastedWrites (db: Sql, range: AnalyticsRange, userId: string | null, now: Date): Promise<WastedGroup[]> {
  const from = new Date(Math.floor(range.start.getTime() / HOUR) * HOUR)
  const [{ rows }, tails] = await Promise.all([
    db.query(sql`
      SELECT model, provider_id, sum(wasted_5m_tokens)::text AS w5, sum(wasted_1h_tokens)::text AS w1, sum(wasted_cost)::text AS cost
        FROM ${userId === null ? raw('cache_savings_hourly_model') : raw('cache_savings_hourly')}
       WHERE bucket >= ${from} AND bucket < ${range.end}${userId === null ? empty : sql` AND user_id = ${userId}::uuid`}
       GROUP BY model, provider_id`),
    lastWrites(db, from, userId, null)
  ])
  const groups = new Map<string, { model: string, providerId: string, wasted: Wasted }>()
  const into = (model: string, providerId: string, wasted: Wasted) => {
    const id = `${providerId}|${model}`
    groups.set(id, { model, providerId, wasted: addWasted(groups.get(id)?.wasted ?? NONE, wasted) })
  }
  for (const row of rows as Array<Record<string, string>>) into(row.model!, row.provider_id!, { w5: BigInt(row.w5!), w1: BigInt(row.w1!), cost: BigInt(row.cost!) })
  const end = Math.ceil(range.end.getTime() / HOUR) * HOUR
  for (const last of tails) {
    if (last.createdAt.getTime() >= end) continue
    const waste = wasteOf(last, now.getTime() - last.createdAt.getTime())
    into(last.model, last.providerId, { w5: waste.wasted5mTokens, w1: waste.wasted1hTokens, cost: waste.wastedCost })
  }
  const live = [...groups.values()].filter((g) => g.wasted.w5 !== 0n || g.wasted.w1 !== 0n || g.wasted.cost !== 0n)
  const ids = [...new Set(live.map((g) => g.providerId))]
  const names = ids.length === 0
    ? new Map<string, string>()
    : new Map((await db.query(sql`SELECT id, name FROM providers WHERE id = ANY(${ids}::uuid[])`)).rows.map((p: Record<string, string>) => [p.id!, p.name!]))
  return live.map((g) => ({ model: g.model, providerId: names.has(g.providerId) ? g.providerId : null, providerName: names.get(g.providerId) ?? null, wasted: g.wasted }))
}

const ZERO: Sums = Object.fromEntries(MEASURES.map((m) => [m, 0n])) as Sums
const add = (a: Sums, b: Sums): Sums => Object.fromEntries(MEASURES.map((m) => [m, a[m] + b[m]])) as Sums

/** A group's figures: Aether's names (gross), keymeter's beside them, and its wasted writes; USD. */
function figures (s: Sums, wasted: Wasted) {
  return {
    cache_read_tokens: Number(s.cache_read_tokens),
    cache_read_cost: nanoToUsd(s.cache_read_cost),
    cache_creation_cost: nanoToUsd(s.cache_creation_cost),
    // the reads at the input price: what they would have cost uncached
    estimated_full_cost: nanoToUsd(s.cache_read_cost + s.cache_read_saving),
    cache_savings: nanoToUsd(s.cache_read_saving),
    cache_creation_tokens: Number(s.cache_creation_tokens),
    cache_write_premium: nanoToUsd(s.cache_write_premium),
    net_savings: nanoToUsd(s.cache_read_saving - s.cache_write_premium),
    wasted_write_tokens: Number(wasted.w5 + wasted.w1),
    wasted_write_5m_tokens: Number(wasted.w5),
    wasted_write_1h_tokens: Number(wasted.w1),
    wasted_write_cost: nanoToUsd(wasted.cost)
  }
}

/** Larger gross saving first, then by name: a stable order. */
const bySaving = <T extends { sums: Sums, name: string }>(a: T, b: T) =>
  a.sums.cache_read_saving === b.sums.cache_read_saving ? (a.name < b.name ? -1 : 1) : a.sums.cache_read_saving > b.sums.cache_read_saving ? -1 : 1

/** The range's cache savings, over all traffic (userId null) or one user's keys. */
export async function cacheSavings (db: Sql, range: AnalyticsRange, userId: string | null, now = new Date()) {
  const [groups, wastedGroups] = await Promise.all([sumsByGroup(db, range, userId), wastedWrites(db, range, userId, now)])
  type Group = { sums: Sums, wasted: Wasted }
  const models = new Map<string, Group>()
  const providers = new Map<string | null, Group & { name: string | null }>()
  let total: Group = { sums: ZERO, wasted: NONE }
  // a group with wasted writes but no cache tokens in the range (a write in its first, partial hour) is listed too
  for (const g of [...groups.map((g) => ({ ...g, wasted: NONE })), ...wastedGroups.map((g) => ({ ...g, sums: ZERO }))]) {
    const plus = (into: Group | undefined): Group => ({ sums: add(into?.sums ?? ZERO, g.sums), wasted: addWasted(into?.wasted ?? NONE, g.wasted) })
    total = plus(total)
    models.set(g.model, plus(models.get(g.model)))
    providers.set(g.providerId, { name: g.providerName, ...plus(providers.get(g.providerId)) })
  }
  return {
    ...figures(total.sums, total.wasted),
    by_model: [...models].map(([model, m]) => ({ name: model, ...m })).sort(bySaving).map(({ name, sums, wasted }) => ({ model: name, ...figures(sums, wasted) })),
    by_provider: [...providers].map(([id, p]) => ({ id, name: p.name ?? '', providerName: p.name, sums: p.sums, wasted: p.wasted })).sort(bySaving)
      .map((p) => ({ provider_id: p.id, provider_name: p.providerName, ...figures(p.sums, p.wasted) })),
    start_date: range.start.toISOString(),
    end_date: range.end.toISOString()
  }
}
