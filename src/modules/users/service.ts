// Users: the admin's catalogue of people, the first admin at boot, and the record
// shape every response uses (never a password hash).
import type { Db } from '../../db/prisma.js'
import { Prisma, type User } from '../../generated/prisma/client.js'
import { hashPassword, randomBase62 } from '../../lib/crypto.js'
import { nanoToUsd, nanoToUsdOrNull, usdToNano } from '../../lib/money.js'
import { Errors } from '../../http/errors.js'
import type { UserCreateBody, UserUpdateBody } from './schemas.js'

export function toProfile (user: User) {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    role: user.role,
    is_active: user.isActive,
    quota_usd: nanoToUsdOrNull(user.quota),
    used_usd: nanoToUsd(user.used),
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
    last_login_at: user.lastLoginAt?.toISOString() ?? null
  }
}

const allowList = (value: Prisma.JsonValue | null) => Array.isArray(value) ? value as string[] : null

export function toUserRecord (user: User) {
  return {
    ...toProfile(user),
    allowed_providers: allowList(user.allowedProviders),
    allowed_api_formats: allowList(user.allowedApiFormats),
    allowed_models: allowList(user.allowedModels)
  }
}

/** JSON column value for an allow list: null (or absent) means no restriction. */
export const jsonList = (list: string[] | null | undefined) =>
  list === undefined ? undefined : list === null ? Prisma.DbNull : list

const quota = (usd: number | null | undefined) => usd === undefined ? undefined : usd === null ? null : usdToNano(usd)

export async function createUser (db: Db, body: UserCreateBody): Promise<User> {
  return db.user.create({
    data: {
      username: body.username,
      email: body.email ?? null,
      passwordHash: await hashPassword(body.password),
      role: body.role ?? 'user',
      allowedProviders: jsonList(body.allowed_providers),
      allowedApiFormats: jsonList(body.allowed_api_formats),
      allowedModels: jsonList(body.allowed_models),
      quota: quota(body.quota_usd),
      isActive: body.is_active ?? true
    }
  })
}

export async function findUser (db: Db, id: string): Promise<User> {
  const user = await db.user.findFirst({ where: { id, isDeleted: false } })
  if (user === null) throw new Errors.NotFound('user not found')
  return user
}

export async function updateUser (db: Db, id: string, body: UserUpdateBody, actorId: string): Promise<User> {
  await findUser(db, id)
  if (id === actorId && (body.is_active === false || body.role === 'user')) {
    throw new Errors.Conflict('you cannot deactivate or demote your own account')
  }
  const user = await db.user.update({
    where: { id },
    data: {
      username: body.username,
      email: body.email,
      passwordHash: body.password === undefined ? undefined : await hashPassword(body.password),
      role: body.role,
      allowedProviders: jsonList(body.allowed_providers),
      allowedApiFormats: jsonList(body.allowed_api_formats),
      allowedModels: jsonList(body.allowed_models),
      quota: quota(body.quota_usd),
      isActive: body.is_active
    }
  })
  // a deactivated user or a new password ends every open session
  if (body.is_active === false || body.password !== undefined) await revokeSessions(db, id)
  return user
}

/** Soft delete: the row stays for history (usage, audit); the person can no longer sign in or use keys. */
export async function deleteUser (db: Db, id: string, actorId: string): Promise<void> {
  if (id === actorId) throw new Errors.Conflict('you cannot delete your own account')
  await findUser(db, id)
  await db.user.update({ where: { id }, data: { isDeleted: true, isActive: false } })
  await revokeSessions(db, id)
  await db.managementToken.updateMany({ where: { userId: id }, data: { isActive: false } })
  await db.apiKey.updateMany({ where: { userId: id }, data: { isActive: false } })
}

export async function revokeSessions (db: Db, userId: string): Promise<void> {
  await db.userSession.updateMany({ where: { userId, revokedAt: null }, data: { revokedAt: new Date() } })
}

export async function listUsers (db: Db, query: { skip: number, limit: number, role?: 'admin' | 'user', is_active?: boolean }) {
  const where: Prisma.UserWhereInput = { isDeleted: false, role: query.role, isActive: query.is_active }
  const [users, total] = await Promise.all([
    db.user.findMany({ where, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], skip: query.skip, take: query.limit }),
    db.user.count({ where })
  ])
  return { users, total }
}

/**
 * The first admin, when there is none: from ADMIN_EMAIL / ADMIN_USERNAME and
 * ADMIN_PASSWORD, or with a generated password that the caller prints once.
 */
export async function ensureFirstAdmin (db: Db, settings: { email: string, username: string, password?: string }): Promise<{ created: boolean, generatedPassword?: string }> {
  const existing = await db.user.count({ where: { role: 'admin', isDeleted: false } })
  if (existing > 0) return { created: false }
  const generatedPassword = settings.password === undefined ? randomBase62(20) : undefined
  await db.user.create({
    data: {
      username: settings.username,
      email: settings.email,
      passwordHash: await hashPassword(settings.password ?? generatedPassword!),
      role: 'admin'
    }
  })
  return { created: true, ...(generatedPassword !== undefined && { generatedPassword }) }
}
