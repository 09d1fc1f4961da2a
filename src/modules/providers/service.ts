// Providers and what hangs off them: endpoints (one per API format) and the
// provider's own API keys, whose secrets are stored only encrypted. A child looked up
// under the wrong provider is a 404, like an unknown one.
import type { Db } from '../../db/prisma.js'
import { forgetProvider, forgetProviderKeys } from '../accounting/corrections.js'
import { mergedConfig, priorityOf } from './aether.js'
import { monthlyFields, quotaUsage } from './quota.js'
import { Prisma, type Provider, type ProviderApiKey, type ProviderEndpoint } from '../../generated/prisma/client.js'
import { Errors } from '../../http/errors.js'
import { encrypt, maskSecret } from '../../lib/crypto.js'
import type { Keyring } from '../../lib/keyring.js'
import { nanoToUsdOrNull, usdToNano } from '../../lib/money.js'
import type {
  EndpointCreateBody, EndpointUpdateBody, Page, ProviderCreateBody, ProviderKeyCreateBody, ProviderKeyUpdateBody, ProviderUpdateBody
} from './schemas.js'

const invalid = (field: string, problem: string) => Object.assign(new Errors.InvalidInput(`${field} ${problem}`), { field })

// ---- providers ----
const withCounts = { _count: { select: { endpoints: true, apiKeys: true } } } as const
type ProviderRow = Provider & { _count: { endpoints: number, apiKeys: number } }

export function toProviderRecord (row: ProviderRow) {
  return {
    id: row.id,
    name: row.name,
    billing_type: row.billingType,
    monthly_quota_usd: nanoToUsdOrNull(row.monthlyQuota),
    ...monthlyFields(quotaUsage(row, new Date())),
    priority: row.priority,
    is_active: row.isActive,
    config: row.config as Record<string, unknown> | null,
    endpoint_count: row._count.endpoints,
    key_count: row._count.apiKeys,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

/** The columns a body sets; Aether's fields go to priority and config (`current`: the config they are merged into). */
function providerColumns (body: ProviderUpdateBody, current: Record<string, unknown> | null) {
  const config = mergedConfig(current, body)
  return {
    name: body.name,
    billingType: body.billing_type,
    monthlyQuota: body.monthly_quota_usd === undefined ? undefined : body.monthly_quota_usd === null ? null : usdToNano(body.monthly_quota_usd),
    priority: priorityOf(body),
    isActive: body.is_active,
    config: config === undefined ? undefined : config === null ? Prisma.DbNull : config as Prisma.InputJsonObject
  }
}

export async function createProvider (db: Db, body: ProviderCreateBody): Promise<ProviderRow> {
  return db.provider.create({ data: { ...providerColumns(body, null), name: body.name }, include: withCounts })
}

export async function findProvider (db: Db, id: string): Promise<ProviderRow> {
  const row = await db.provider.findUnique({ where: { id }, include: withCounts })
  if (row === null) throw new Errors.NotFound('provider not found')
  return row
}

export async function listProviders (db: Db, query: Page & { is_active?: boolean }) {
  const where: Prisma.ProviderWhereInput = { isActive: query.is_active }
  const [rows, total] = await Promise.all([
    db.provider.findMany({ where, include: withCounts, orderBy: [{ priority: 'asc' }, { name: 'asc' }], skip: query.skip, take: query.limit }),
    db.provider.count({ where })
  ])
  return { providers: rows.map(toProviderRecord), total, skip: query.skip, limit: query.limit }
}

export async function updateProvider (db: Db, id: string, body: ProviderUpdateBody): Promise<ProviderRow> {
  // the row locked until the mutation's transaction ends: two updates merging fields into config must not lose one
  await db.$executeRaw`SELECT 1 FROM providers WHERE id = ${id}::uuid FOR UPDATE`
  const current = await findProvider(db, id)
  return db.provider.update({ where: { id }, data: providerColumns(body, current.config as Record<string, unknown> | null), include: withCounts })
}

/** Deletes the provider with its endpoints, keys and own prices (cascade); usage rows keep their history (SET NULL). */
export async function deleteProvider (db: Db, id: string) {
  const row = await db.provider.findUnique({
    where: { id },
    select: { name: true, endpoints: { select: { id: true } }, apiKeys: { select: { id: true } }, prices: { select: { id: true } } }
  })
  if (row === null) throw new Errors.NotFound('provider not found')
  // its keys first, by hand rather than by cascade: every key deleted is then known to the correction, one created meanwhile included
  const keys = await db.$queryRaw<Array<{ id: string }>>`DELETE FROM provider_api_keys WHERE provider_id = ${id}::uuid RETURNING id::text`
  await db.provider.delete({ where: { id } })
  await forgetProvider(db, id)
  await forgetProviderKeys(db, keys.map((key) => key.id))
  const ids = (children: Array<{ id: string }>) => children.map((child) => child.id)
  return { name: row.name, endpoint_ids: ids(row.endpoints), key_ids: ids(row.apiKeys), price_ids: ids(row.prices) }
}

// ---- endpoints ----
export function toEndpointRecord (row: ProviderEndpoint) {
  return {
    id: row.id,
    provider_id: row.providerId,
    api_format: row.apiFormat,
    base_url: row.baseUrl,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

export async function listEndpoints (db: Db, providerId: string, page: Page) {
  await findProvider(db, providerId)
  const where = { providerId }
  const [rows, total] = await Promise.all([
    db.providerEndpoint.findMany({ where, orderBy: [{ apiFormat: 'asc' }], skip: page.skip, take: page.limit }),
    db.providerEndpoint.count({ where })
  ])
  return { endpoints: rows.map(toEndpointRecord), total, skip: page.skip, limit: page.limit }
}

export async function createEndpoint (db: Db, providerId: string, body: EndpointCreateBody): Promise<ProviderEndpoint> {
  await findProvider(db, providerId)
  return db.providerEndpoint.create({ data: { providerId, apiFormat: body.api_format, baseUrl: body.base_url, isActive: body.is_active } })
}

export async function findEndpoint (db: Db, providerId: string, id: string): Promise<ProviderEndpoint> {
  const row = await db.providerEndpoint.findFirst({ where: { id, providerId } })
  if (row === null) throw new Errors.NotFound('endpoint not found')
  return row
}

export async function updateEndpoint (db: Db, providerId: string, id: string, body: EndpointUpdateBody): Promise<ProviderEndpoint> {
  await findEndpoint(db, providerId, id)
  return db.providerEndpoint.update({ where: { id }, data: { apiFormat: body.api_format, baseUrl: body.base_url, isActive: body.is_active } })
}

export async function deleteEndpoint (db: Db, providerId: string, id: string): Promise<void> {
  await findEndpoint(db, providerId, id)
  await db.providerEndpoint.delete({ where: { id } })
}

// ---- provider API keys ----
export function toProviderKeyRecord (row: ProviderApiKey) {
  return {
    id: row.id,
    provider_id: row.providerId,
    name: row.name,
    secret_display: row.secretDisplay,
    rate_multiplier: Number(row.rateMultiplier),
    cache_ttl_minutes: row.cacheTtlMinutes,
    is_active: row.isActive,
    expires_at: row.expiresAt?.toISOString() ?? null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

/** The Decimal(12, 6) column takes a string; more than 6 decimals would be silently rounded, so refuse them. */
function rateMultiplier (value: number | undefined): string | undefined {
  if (value === undefined) return undefined
  if (Number(value.toFixed(6)) !== value) throw invalid('body.rate_multiplier', 'must have at most 6 decimals')
  return value.toFixed(6)
}

const sealSecret = (keyring: Keyring, secret: string) => ({ secretEncrypted: encrypt(keyring.providerSecretCipher, secret), secretDisplay: maskSecret(secret) })

function providerKeyColumns (body: Omit<ProviderKeyUpdateBody, 'secret'>) {
  return {
    name: body.name,
    rateMultiplier: rateMultiplier(body.rate_multiplier),
    cacheTtlMinutes: body.cache_ttl_minutes,
    isActive: body.is_active,
    expiresAt: body.expires_at === undefined ? undefined : body.expires_at === null ? null : new Date(body.expires_at)
  }
}

export async function listProviderKeys (db: Db, providerId: string, page: Page) {
  await findProvider(db, providerId)
  const where = { providerId }
  const [rows, total] = await Promise.all([
    db.providerApiKey.findMany({ where, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: page.skip, take: page.limit }),
    db.providerApiKey.count({ where })
  ])
  return { keys: rows.map(toProviderKeyRecord), total, skip: page.skip, limit: page.limit }
}

export async function createProviderKey (db: Db, keyring: Keyring, providerId: string, body: ProviderKeyCreateBody): Promise<ProviderApiKey> {
  await findProvider(db, providerId)
  return db.providerApiKey.create({ data: { ...providerKeyColumns(body), ...sealSecret(keyring, body.secret), providerId, name: body.name } })
}

export async function findProviderKey (db: Db, providerId: string, id: string): Promise<ProviderApiKey> {
  const row = await db.providerApiKey.findFirst({ where: { id, providerId } })
  if (row === null) throw new Errors.NotFound('provider key not found')
  return row
}

export async function updateProviderKey (db: Db, keyring: Keyring, providerId: string, id: string, body: ProviderKeyUpdateBody): Promise<ProviderApiKey> {
  await findProviderKey(db, providerId, id)
  return db.providerApiKey.update({ where: { id }, data: { ...providerKeyColumns(body), ...(body.secret !== undefined && sealSecret(keyring, body.secret)) } })
}

export async function deleteProviderKey (db: Db, providerId: string, id: string): Promise<void> {
  await findProviderKey(db, providerId, id)
  await db.providerApiKey.delete({ where: { id } })
  await forgetProviderKeys(db, [id])
}
