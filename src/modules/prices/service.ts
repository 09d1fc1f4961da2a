// Model prices as versions: a change inserts a new row with its effective_from, and
// the price in effect at any moment is the latest version that has started — the
// provider's own, else the global default (provider_id NULL).
import type { Db } from '../../db/prisma.js'
import { Prisma, type ModelPrice } from '../../generated/prisma/client.js'
import { Errors } from '../../http/errors.js'
import { nanoToUsdOrNull, usdToNano } from '../../lib/money.js'
import { findProvider } from '../providers/service.js'
import type { PriceCreateBody, PriceListFilters, PriceUpdateBody } from './schemas.js'
import { tierFromUsd, tierProblem, tierToUsd, type StoredTier, type TierUsd } from '../accounting/tiers.js'

export interface PriceVersion { id: string, model: string, providerId: string | null, tiers: StoredTier[], pricePerRequest: bigint | null, effectiveFrom: Date }

type PriceRow = ModelPrice & { provider: { name: string } | null }

const withProvider = { provider: { select: { name: true } } } as const
const invalid = (field: string, problem: string) => Object.assign(new Errors.InvalidInput(`${field} ${problem}`), { field })
const storedTiersOf = (row: Pick<ModelPrice, 'tiers'>) => row.tiers as unknown as StoredTier[]
const nanoOrNull = (usd: number | null | undefined) => usd === undefined || usd === null ? null : usdToNano(usd)

export function toPriceRecord (row: PriceRow) {
  return {
    id: row.id,
    model: row.model,
    provider_id: row.providerId,
    provider_name: row.provider?.name ?? null,
    tiers: storedTiersOf(row).map(tierToUsd),
    price_per_request_usd: nanoToUsdOrNull(row.pricePerRequest),
    effective_from: row.effectiveFrom.toISOString(),
    created_at: row.createdAt.toISOString()
  }
}

function storedTiers (tiers: TierUsd[]): StoredTier[] {
  const problem = tierProblem(tiers)
  if (problem !== null) throw invalid('body.tiers', problem)
  return tiers.map(tierFromUsd)
}

async function insertVersion (db: Db, version: Omit<PriceVersion, 'id'>): Promise<PriceRow> {
  // the unique index treats NULL provider_ids as distinct, so global versions are checked here, under a per-model lock
  await db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${version.model}))`
  const clash = await db.modelPrice.count({ where: { model: version.model, providerId: version.providerId, effectiveFrom: version.effectiveFrom } })
  if (clash > 0) throw new Errors.Conflict(`a version of this price already takes effect at ${version.effectiveFrom.toISOString()}`)
  return db.modelPrice.create({
    data: { ...version, tiers: version.tiers as unknown as Prisma.InputJsonArray },
    include: withProvider
  })
}

export async function createPrice (db: Db, body: PriceCreateBody): Promise<PriceRow> {
  const tiers = storedTiers(body.tiers)
  const providerId = body.provider_id ?? null
  if (providerId !== null) await findProvider(db, providerId)
  return insertVersion(db, {
    model: body.model,
    providerId,
    tiers,
    pricePerRequest: nanoOrNull(body.price_per_request_usd),
    effectiveFrom: body.effective_from === undefined ? new Date() : new Date(body.effective_from)
  })
}

/** A new version of the price `id` belongs to: the fields not given are copied from that version. */
export async function updatePrice (db: Db, id: string, body: PriceUpdateBody): Promise<PriceRow> {
  const base = await findPrice(db, id)
  return insertVersion(db, {
    model: base.model,
    providerId: base.providerId,
    tiers: body.tiers === undefined ? storedTiersOf(base) : storedTiers(body.tiers),
    pricePerRequest: body.price_per_request_usd === undefined ? base.pricePerRequest : nanoOrNull(body.price_per_request_usd),
    effectiveFrom: body.effective_from === undefined ? new Date() : new Date(body.effective_from)
  })
}

export async function findPrice (db: Db, id: string): Promise<PriceRow> {
  const row = await db.modelPrice.findUnique({ where: { id }, include: withProvider })
  if (row === null) throw new Errors.NotFound('model price not found')
  return row
}

/** Deletes one version; the one before it (if any) is in effect again. */
export async function deletePrice (db: Db, id: string): Promise<PriceRow> {
  const row = await findPrice(db, id)
  await db.modelPrice.delete({ where: { id } })
  return row
}

/** The version in effect now for each (model, provider) pair, global defaults first within a model. */
export async function listCurrentPrices (db: Db, query: PriceListFilters) {
  const filters = [Prisma.sql`effective_from <= ${new Date()}`]
  if (query.model !== undefined) filters.push(Prisma.sql`model = ${query.model}`)
  if (query.provider_id !== undefined) filters.push(Prisma.sql`provider_id = ${query.provider_id}::uuid`)
  const current = Prisma.sql`
    SELECT DISTINCT ON (model, provider_id) id, model, provider_id
      FROM model_prices
     WHERE ${Prisma.join(filters, ' AND ')}
     ORDER BY model, provider_id, effective_from DESC`
  const [page, counted] = await Promise.all([
    db.$queryRaw<Array<{ id: string }>>`
      SELECT c.id FROM (${current}) c LEFT JOIN providers p ON p.id = c.provider_id
       ORDER BY c.model, p.name NULLS FIRST
       LIMIT ${query.limit} OFFSET ${query.skip}`,
    db.$queryRaw<Array<{ total: bigint }>>`SELECT count(*) AS total FROM (${current}) c`
  ])
  const rows = new Map((await db.modelPrice.findMany({ where: { id: { in: page.map((p) => p.id) } }, include: withProvider })).map((row) => [row.id, row]))
  return { prices: page.map((p) => toPriceRecord(rows.get(p.id)!)), total: Number(counted[0]!.total), skip: query.skip, limit: query.limit }
}

/** Every version of a model (of one provider when given), newest effective first. */
export async function priceHistory (db: Db, model: string, providerId?: string) {
  const rows = await db.modelPrice.findMany({
    where: { model, providerId },
    include: withProvider,
    orderBy: { effectiveFrom: 'desc' }
  })
  return { model, prices: rows.map(toPriceRecord) }
}

/** All versions of these models (any provider), for pricing a batch of requests in memory. */
export async function priceVersionsFor (db: Db, models: string[]): Promise<PriceVersion[]> {
  const rows = await db.modelPrice.findMany({
    where: { model: { in: models } },
    select: { id: true, model: true, providerId: true, tiers: true, pricePerRequest: true, effectiveFrom: true }
  })
  return rows.map((row) => ({ ...row, tiers: storedTiersOf(row) }))
}

/** The version in effect at `at` for (model, provider): the provider's own price first, else the global one; null = unpriced. */
export function pickPrice (versions: PriceVersion[], model: string, providerId: string | null, at: Date): PriceVersion | null {
  const latest = (owner: string | null) => {
    let best: PriceVersion | null = null
    for (const version of versions) {
      if (version.model !== model || version.providerId !== owner || version.effectiveFrom > at) continue
      if (best === null || version.effectiveFrom > best.effectiveFrom) best = version
    }
    return best
  }
  return (providerId === null ? null : latest(providerId)) ?? latest(null)
}
