// The model catalogue as Aether's models page reads it (GET /api/admin/models/global,
// AETHER.md §12): one entry per model with a price in effect, its global price in
// Aether's tier shape, the providers that price or served it, and its all-time finished
// requests from the rollups. Three statements whatever the page's size.
import sql, { type Sql as Fragment } from 'sql-template-tag'
import type { Db, Sql } from '../../db/prisma.js'
import { nanoToUsdOrNull } from '../../lib/money.js'
import { containsPattern } from '../../lib/like.js'
import { modelUsage } from '../accounting/read/models.js'
import { aetherTier, type StoredTier } from '../accounting/tiers.js'
import type { GlobalModelsFilters } from './schemas.js'

/** providers that served a model within this many days count as offering it */
const SERVED_DAYS = 30
const DAY_MS = 86_400_000

interface CurrentPrice {
  id: string
  model: string
  provider_id: string | null
  tiers: StoredTier[]
  price_per_request: bigint | null
  first_at: Date
  latest_at: Date
}

const run = async <T>(db: Db, query: Fragment) => db.$queryRawUnsafe<T[]>(query.text, ...query.values)

export async function globalModels (db: Db, stats: Sql, query: GlobalModelsFilters, now = new Date()) {
  // every entry is active: asking for inactive ones finds none
  if (query.is_active === false) return { models: [], total: 0 }
  const search = query.search === undefined || query.search === '' ? sql`TRUE` : sql`model ILIKE ${containsPattern(query.search)} ESCAPE '\\'`
  // model_prices (model, effective_from): the models with a version in effect, read in model order
  const started = sql`FROM model_prices WHERE effective_from <= ${now} AND ${search}`
  const [page, counted] = await Promise.all([
    run<{ model: string }>(db, sql`SELECT model ${started} GROUP BY model ORDER BY model LIMIT ${query.limit} OFFSET ${query.skip}`),
    run<{ total: bigint }>(db, sql`SELECT count(DISTINCT model) AS total ${started}`)
  ])
  const models = page.map((row) => row.model)
  if (models.length === 0) return { models: [], total: Number(counted[0]!.total) }

  const [prices, usage] = await Promise.all([
    // model_prices (model, effective_from): each (model, provider)'s version in effect, with the model's first and latest start
    run<CurrentPrice>(db, sql`
      SELECT DISTINCT ON (model, provider_id) id, model, provider_id, tiers, price_per_request,
             min(effective_from) OVER (PARTITION BY model) AS first_at, max(effective_from) OVER (PARTITION BY model) AS latest_at
        FROM model_prices
       WHERE model = ANY(${models}::text[]) AND effective_from <= ${now}
       ORDER BY model, provider_id NULLS FIRST, effective_from DESC`),
    modelUsage(stats, models, new Date(now.getTime() - SERVED_DAYS * DAY_MS))
  ])
  const used = new Map(usage.map((u) => [u.model, u]))
  return {
    models: models.map((model) => {
      const current = prices.filter((p) => p.model === model)
      const global = current.find((p) => p.provider_id === null) ?? null
      const providers = new Set([...current.flatMap((p) => p.provider_id === null ? [] : [p.provider_id]), ...used.get(model)?.servedBy ?? []])
      const first = current[0]!
      return {
        // the global price's row when there is one, else the first provider's
        id: (global ?? first).id,
        name: model,
        display_name: model,
        description: null,
        is_active: true,
        default_tiered_pricing: global === null ? null : { tiers: global.tiers.map(aetherTier) },
        default_price_per_request: nanoToUsdOrNull(global?.price_per_request),
        provider_count: providers.size,
        usage_count: used.get(model)?.requests ?? 0,
        config: null,
        supported_capabilities: null,
        created_at: first.first_at.toISOString(),
        updated_at: first.latest_at.toISOString()
      }
    }),
    total: Number(counted[0]!.total)
  }
}
