// API keys: material, storage (hash for lookup, encrypted copy for the admin's
// "show full key"), the record every response uses, and the balance arithmetic.
import { KEY_DELETION_LOCK, type Db } from '../../db/prisma.js'
import { Prisma, type ApiKey, type User } from '../../generated/prisma/client.js'
import { Errors } from '../../http/errors.js'
import { forgetKey } from '../accounting/corrections.js'
import { providerIds, providerNamesOf } from '../providers/allowlist.js'
import { decrypt, encrypt, maskSecret, randomBase62 } from '../../lib/crypto.js'
import { hashApiKey, type Keyring } from '../../lib/keyring.js'
import { nanoToUsd, nanoToUsdOrNull, usdToNano } from '../../lib/money.js'
import { checkedIpList } from './restrictions.js'
import type { KeyCreateBody, KeyUpdateBody } from './schemas.js'

export const API_KEY_PREFIX = 'sk-'
export const API_KEY_PATTERN = /^sk-[0-9A-Za-z]{48}$/

export type KeyRow = ApiKey & { user: Pick<User, 'email' | 'username'> }

/** Which keys a route may touch: one user's, standalone ones, or any. */
export interface KeyScope { userId?: string, standalone?: boolean }

const withUser = { user: { select: { email: true, username: true } } } as const

export const generateApiKey = () => API_KEY_PREFIX + randomBase62(48)

/** A new secret's stored forms: the hash verify looks up, the display form, the encrypted copy */
const secretColumns = (keyring: Keyring, key: string) =>
  ({ keyHash: hashApiKey(keyring, key), keyPrefix: maskSecret(key, 7, 4), keyEncrypted: encrypt(keyring.apiKeyCipher, key) })

const list = (value: Prisma.JsonValue | null) => Array.isArray(value) && value.length > 0 ? value as string[] : null

export function toKeyRecord (row: KeyRow) {
  const remaining = row.currentBalance === null ? null : row.currentBalance - row.balanceUsed
  return {
    id: row.id,
    user_id: row.userId,
    user_email: row.user.email,
    username: row.user.username,
    name: row.name,
    key_display: row.keyPrefix,
    is_active: row.isActive,
    is_standalone: row.isStandalone,
    balance_used_usd: nanoToUsd(row.balanceUsed),
    current_balance_usd: nanoToUsdOrNull(row.currentBalance),
    remaining_balance_usd: nanoToUsdOrNull(remaining),
    total_requests: Number(row.totalRequests),
    total_tokens: Number(row.totalTokens),
    total_cost_usd: nanoToUsd(row.totalCost),
    rate_limit: row.rateLimit,
    token_limit: row.tokenLimit === null ? null : Number(row.tokenLimit),
    rate_window_seconds: row.rateWindowSeconds,
    concurrent_limit: row.concurrentLimit,
    daily_cost_limit_usd: nanoToUsdOrNull(row.dailyCostLimit),
    total_cost_limit_usd: nanoToUsdOrNull(row.totalCostLimit),
    allowed_providers: list(row.allowedProviders),
    allowed_api_formats: list(row.allowedApiFormats),
    allowed_models: list(row.allowedModels),
    allowed_ips: list(row.allowedIps),
    allowed_user_agents: list(row.allowedUserAgents),
    tags: list(row.tags),
    auto_delete_on_expiry: row.autoDeleteOnExpiry,
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    expires_at: row.expiresAt?.toISOString() ?? null,
    previous_key_expires_at: row.previousKeyExpiresAt !== null && row.previousKeyExpiresAt > new Date() ? row.previousKeyExpiresAt.toISOString() : null,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

/** The records of `rows`, each with the current names of the providers its allow-list holds (one query for all rows). */
export async function keyRecords (db: Db, rows: KeyRow[]) {
  const names = await providerNamesOf(db, rows.map((row) => list(row.allowedProviders)))
  return rows.map((row, i) => ({ ...toKeyRecord(row), allowed_provider_names: names[i]! }))
}

export const keyRecord = async (db: Db, row: KeyRow) => (await keyRecords(db, [row]))[0]!

/** JSON list column: an empty list means "all", stored as NULL like an absent one. */
const jsonList = (value: string[] | null | undefined) =>
  value === undefined ? undefined : value === null || value.length === 0 ? Prisma.DbNull : value

const optionalNano = (usd: number | null | undefined) => usd === undefined ? undefined : usd === null ? null : usdToNano(usd)

function expiry (body: Pick<KeyUpdateBody, 'expire_days' | 'expires_at'>, now: Date): Date | null | undefined {
  if (body.expire_days !== undefined && body.expires_at !== undefined) throw new Errors.InvalidInput('give expire_days or expires_at, not both')
  if (body.expire_days !== undefined) return body.expire_days === null ? null : new Date(now.getTime() + body.expire_days * 86_400_000)
  if (body.expires_at !== undefined) return body.expires_at === null ? null : new Date(body.expires_at)
  return undefined
}

/** The columns a create or update sets from the shared limit fields. */
function limitColumns (body: KeyUpdateBody, now: Date) {
  return {
    name: body.name,
    allowedProviders: jsonList(body.allowed_providers),
    allowedApiFormats: jsonList(body.allowed_api_formats),
    allowedModels: jsonList(body.allowed_models),
    allowedIps: jsonList(checkedIpList(body.allowed_ips)),
    allowedUserAgents: jsonList(body.allowed_user_agents),
    rateLimit: body.rate_limit,
    tokenLimit: body.token_limit === undefined || body.token_limit === null ? body.token_limit : BigInt(body.token_limit),
    rateWindowSeconds: body.rate_window_seconds,
    concurrentLimit: body.concurrent_limit,
    dailyCostLimit: optionalNano(body.daily_cost_limit_usd),
    totalCostLimit: optionalNano(body.total_cost_limit_usd),
    expiresAt: expiry(body, now),
    autoDeleteOnExpiry: body.auto_delete_on_expiry,
    tags: jsonList(body.tags)
  }
}

export async function createKey (db: Db, keyring: Keyring, ownerId: string, body: KeyCreateBody, standalone: boolean) {
  const key = generateApiKey()
  const allowedProviders = await providerIds(db, body.allowed_providers)
  const row = await db.apiKey.create({
    data: {
      ...limitColumns({ ...body, allowed_providers: allowedProviders }, new Date()),
      name: body.name,
      userId: ownerId,
      ...secretColumns(keyring, key),
      isStandalone: standalone,
      currentBalance: standalone ? optionalNano(body.initial_balance_usd) ?? null : null
    },
    include: withUser
  })
  return { ...await keyRecord(db, row), key }
}

export async function findKey (db: Db, id: string, scope: KeyScope): Promise<KeyRow> {
  const row = await db.apiKey.findFirst({ where: { id, userId: scope.userId, isStandalone: scope.standalone }, include: withUser })
  if (row === null) throw new Errors.NotFound('API key not found')
  return row
}

export async function listKeys (db: Db, scope: KeyScope, query: { skip: number, limit: number, is_active?: boolean }) {
  const where: Prisma.ApiKeyWhereInput = { userId: scope.userId, isStandalone: scope.standalone, isActive: query.is_active }
  const [rows, total] = await Promise.all([
    db.apiKey.findMany({ where, include: withUser, orderBy: [{ createdAt: 'desc' }, { id: 'asc' }], skip: query.skip, take: query.limit }),
    db.apiKey.count({ where })
  ])
  return { api_keys: await keyRecords(db, rows), total, limit: query.limit, skip: query.skip }
}

export async function updateKey (db: Db, id: string, scope: KeyScope, body: KeyUpdateBody): Promise<KeyRow> {
  await findKey(db, id, scope)
  const allowedProviders = await providerIds(db, body.allowed_providers)
  return db.apiKey.update({ where: { id }, data: { ...limitColumns({ ...body, allowed_providers: allowedProviders }, new Date()), isActive: body.is_active }, include: withUser })
}

export async function toggleKey (db: Db, id: string, scope: KeyScope) {
  const row = await findKey(db, id, scope)
  const updated = await db.apiKey.update({ where: { id }, data: { isActive: !row.isActive } })
  return { id, is_active: updated.isActive, message: updated.isActive ? 'API key enabled' : 'API key disabled' }
}

/** Deletes (removeKey: usage rows keep their history with api_key_id set to NULL), or without `hard` only disables. */
export async function deleteKey (db: Db, id: string, scope: KeyScope, hard: boolean) {
  await findKey(db, id, scope)
  if (hard) await removeKey(db, id)
  else await db.apiKey.update({ where: { id }, data: { isActive: false } })
  return { message: hard ? 'API key deleted' : 'API key disabled' }
}

/**
 * Deletes a key for good, whoever asks (an admin, the expiry cleanup). It first takes
 * KEY_DELETION_LOCK exclusively (every usage batch holds it shared): it waits for the
 * batches in flight and new ones queue behind it, so neither the key's row nor its
 * usage rows are locked by a batch meanwhile; then the rollups follow the usage rows.
 */
export async function removeKey (db: Db, id: string): Promise<void> {
  await db.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_DELETION_LOCK})`
  await db.apiKey.delete({ where: { id } })
  await forgetKey(db, id)
}

/**
 * Gives the key a new secret; the old one keeps verifying for `graceSeconds` (0: not at
 * all). One statement moves the current hash to previous_key_hash, so two rotations at
 * once chain instead of losing a secret; an earlier rotation's old secret stops at once.
 */
export async function rotateKey (db: Db, keyring: Keyring, id: string, scope: KeyScope, graceSeconds: number) {
  await findKey(db, id, scope)
  const key = generateApiKey()
  const secret = secretColumns(keyring, key)
  // api_keys primary key; a key deleted meanwhile is the 404 of the read after it
  await db.$executeRaw`
    UPDATE api_keys
       SET previous_key_hash = CASE WHEN ${graceSeconds}::int > 0 THEN key_hash END,
           previous_key_expires_at = CASE WHEN ${graceSeconds}::int > 0 THEN now() + make_interval(secs => ${graceSeconds}::int) END,
           key_hash = ${secret.keyHash}, key_prefix = ${secret.keyPrefix}, key_encrypted = ${secret.keyEncrypted}, updated_at = now()
     WHERE id = ${id}::uuid`
  return { ...await keyRecord(db, await findKey(db, id, scope)), key }
}

export function revealKey (keyring: Keyring, row: KeyRow): string {
  return decrypt(keyring.apiKeyCipher, row.keyEncrypted)
}

/** api_keys' balance columns are int8 nano-USD */
const MAX_BALANCE_NANO = 2n ** 63n - 1n

/**
 * Tops up (positive) or deducts (negative) a standalone key's balance in one
 * statement, so concurrent adjustments all count. A deduction may not take the
 * remaining balance below zero; a top-up is always taken (charges arrive after the
 * fact, so a key may be overdrawn, and a top-up is how it recovers) as long as the
 * balance fits its column. An unlimited key (no balance) becomes limited at the
 * amount topped up.
 */
export async function adjustBalance (db: Db, id: string, amountNano: bigint): Promise<KeyRow> {
  const row = await findKey(db, id, {})
  if (!row.isStandalone) throw new Errors.NotStandalone('only standalone keys have a balance')
  // compared in numeric: in bigint the sum itself would overflow before it could be compared
  const updated = await db.$queryRaw<Array<{ id: string }>>`
    UPDATE api_keys
       SET current_balance = COALESCE(current_balance, balance_used) + ${amountNano}, updated_at = now()
     WHERE id = ${id}::uuid
       AND COALESCE(current_balance, balance_used)::numeric + ${amountNano}::numeric <= ${MAX_BALANCE_NANO}::numeric
       AND (${amountNano}::bigint > 0 OR COALESCE(current_balance, balance_used)::numeric + ${amountNano}::numeric - balance_used >= 0)
    RETURNING id`
  if (updated.length === 0) {
    if (amountNano > 0n) throw Object.assign(new Errors.InvalidInput('the balance would pass the largest amount stored (int8 nano-USD)'), { field: 'body.amount_usd' })
    throw new Errors.InsufficientBalance('the deduction exceeds the remaining balance')
  }
  return findKey(db, id, {})
}
