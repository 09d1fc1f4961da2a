// Users: the admin's catalogue of people, the first admin at boot, and the record
// shape every response uses (never a password hash).
import type { Db } from '../../db/prisma.js'
import sql from 'sql-template-tag'
import { Prisma, type User } from '../../generated/prisma/client.js'
import { hashPassword, randomBase62, verifyPassword } from '../../lib/crypto.js'
import { nanoToUsd, nanoToUsdOrNull, usdToNano } from '../../lib/money.js'
import { Errors } from '../../http/errors.js'
import { isTimeZone } from '../../lib/time.js'
import { providerIds, providerNamesOf } from '../providers/allowlist.js'
import type { PreferencesBody, PreferencesUpdateBody, UserCreateBody, UserUpdateBody } from './schemas.js'

export function toProfile (user: User) {
  return {
    id: user.id,
    email: user.email,
    username: user.username,
    role: user.role,
    is_active: user.isActive,
    quota_usd: nanoToUsdOrNull(user.quota),
    used_usd: nanoToUsd(user.used),
    total_usd: nanoToUsd(user.totalUsed),
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
    last_login_at: user.lastLoginAt?.toISOString() ?? null
  }
}

const allowList = (value: Prisma.JsonValue | null) => Array.isArray(value) ? value as string[] : null

export function toUserRecord (user: User) {
  const formats = allowList(user.allowedApiFormats)
  return {
    ...toProfile(user),
    allowed_providers: allowList(user.allowedProviders),
    allowed_api_formats: formats,
    allowed_endpoints: formats,
    allowed_models: allowList(user.allowedModels)
  }
}

/** The records of `users`, each with the current names of the providers its allow-list holds (one query for all users). */
export async function userRecords (db: Db, users: User[]) {
  const names = await providerNamesOf(db, users.map((user) => allowList(user.allowedProviders)))
  return users.map((user, i) => ({ ...toUserRecord(user), allowed_provider_names: names[i]! }))
}

export const userRecord = async (db: Db, user: User) => (await userRecords(db, [user]))[0]!

// the lists' items are unique (schema), so equal length and inclusion is set equality
const sameList = (a: string[] | null, b: string[] | null) => a === null || b === null ? a === b : a.length === b.length && a.every((v) => b.includes(v))

/** The API-format allow list under either name (Aether's allowed_endpoints or ours); both given and different is a 400. */
function apiFormats (body: { allowed_api_formats?: string[] | null, allowed_endpoints?: string[] | null }): string[] | null | undefined {
  const { allowed_api_formats: ours, allowed_endpoints: theirs } = body
  if (ours !== undefined && theirs !== undefined && !sameList(ours, theirs)) {
    throw Object.assign(new Errors.InvalidInput('allowed_endpoints and allowed_api_formats name the same list: give one, or both equal'), { field: 'body.allowed_endpoints' })
  }
  return ours !== undefined ? ours : theirs
}

/** JSON column value for an allow list: null (or absent) means no restriction. */
export const jsonList = (list: string[] | null | undefined) =>
  list === undefined ? undefined : list === null ? Prisma.DbNull : list

const quota = (usd: number | null | undefined) => usd === undefined ? undefined : usd === null ? null : usdToNano(usd)

export async function createUser (db: Db, body: UserCreateBody): Promise<User> {
  const formats = apiFormats(body)
  const providers = await providerIds(db, body.allowed_providers)
  return db.user.create({
    data: {
      username: body.username,
      email: body.email ?? null,
      passwordHash: await hashPassword(body.password),
      role: body.role ?? 'user',
      allowedProviders: jsonList(providers),
      allowedApiFormats: jsonList(formats),
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
  const formats = apiFormats(body)
  await findUser(db, id)
  if (id === actorId && (body.is_active === false || body.role === 'user')) {
    throw new Errors.Conflict('you cannot deactivate or demote your own account')
  }
  const providers = await providerIds(db, body.allowed_providers)
  const user = await db.user.update({
    where: { id },
    data: {
      username: body.username,
      email: body.email,
      passwordHash: body.password === undefined ? undefined : await hashPassword(body.password),
      role: body.role,
      allowedProviders: jsonList(providers),
      allowedApiFormats: jsonList(formats),
      allowedModels: jsonList(body.allowed_models),
      quota: quota(body.quota_usd),
      isActive: body.is_active
    }
  })
  // a deactivated user or a new password ends every open session
  if (body.is_active === false || body.password !== undefined) await revokeSessions(db, id)
  return user
}

/**
 * Aether's "reset quota": used goes to 0 and total_used stays, in one statement, so a
 * batch charging the user meanwhile lands wholly before or wholly after it.
 */
export async function resetQuota (db: Db, id: string): Promise<{ before: bigint, user: User }> {
  // users' primary key, twice
  const query = sql`
    UPDATE users u SET used = 0, updated_at = now()
      FROM (SELECT id, used FROM users WHERE id = ${id}::uuid AND NOT is_deleted FOR UPDATE) b
     WHERE u.id = b.id
    RETURNING b.used AS before`
  const rows = await db.$queryRawUnsafe<Array<{ before: bigint }>>(query.text, ...query.values)
  if (rows.length === 0) throw new Errors.NotFound('user not found')
  return { before: rows[0]!.before, user: await findUser(db, id) }
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

/** Ends the user's open sessions, but for `keep` (the caller's own, when it changes its password). */
export async function revokeSessions (db: Db, userId: string, keep?: string): Promise<void> {
  await db.userSession.updateMany({ where: { userId, revokedAt: null, ...(keep !== undefined && { id: { not: keep } }) }, data: { revokedAt: new Date() } })
}

/** A user's own name or email (Aether's settings page): a name or email another user has is refused with a 400, as Aether does. */
export async function updateOwnProfile (db: Db, id: string, body: { username?: string, email?: string }): Promise<void> {
  for (const field of ['username', 'email'] as const) {
    const value = body[field]
    if (value === undefined) continue
    const holder = await db.user.findFirst({ where: { [field]: value, id: { not: id } }, select: { id: true } })
    if (holder !== null) throw Object.assign(new Errors.InvalidInput(`this ${field} is already taken`), { field: `body.${field}` })
  }
  await findUser(db, id)
  await db.user.update({ where: { id }, data: { username: body.username, email: body.email } })
}

/** Checks the current password, stores the new one, and ends every other session of the user (the caller's own stays). */
export async function changeOwnPassword (db: Db, id: string, body: { old_password: string, new_password: string }, currentSessionId?: string): Promise<void> {
  const user = await findUser(db, id)
  if (!await verifyPassword(body.old_password, user.passwordHash)) throw Object.assign(new Errors.InvalidInput('the current password is wrong'), { field: 'body.old_password' })
  await db.user.update({ where: { id }, data: { passwordHash: await hashPassword(body.new_password) } })
  await revokeSessions(db, id, currentSessionId)
}

const NO_PREFERENCES: PreferencesBody = { avatar_url: null, bio: null, theme: null, language: null, timezone: null, notifications: { email: null, usage_alerts: null, announcements: null } }

/** The stored settings over the defaults (every key present, null where never set). */
export function toPreferences (stored: Prisma.JsonValue | null): PreferencesBody {
  const saved = (stored !== null && typeof stored === 'object' && !Array.isArray(stored) ? stored : {}) as Partial<PreferencesBody>
  return { ...NO_PREFERENCES, ...saved, notifications: { ...NO_PREFERENCES.notifications, ...saved.notifications } }
}

/** Merges the given settings into the stored ones and returns the result. */
export async function updatePreferences (db: Db, id: string, body: PreferencesUpdateBody): Promise<PreferencesBody> {
  if (typeof body.timezone === 'string' && !isTimeZone(body.timezone)) throw Object.assign(new Errors.InvalidInput(`unknown time zone ${body.timezone}`), { field: 'body.timezone' })
  const current = toPreferences((await findUser(db, id)).preferences)
  const given = <K extends keyof PreferencesBody>(key: K) => body[key] === undefined ? {} : { [key]: body[key] }
  const flat = { email: body.email_notifications, usage_alerts: body.usage_alerts, announcements: body.announcement_notifications }
  const next: PreferencesBody = {
    ...current,
    ...given('avatar_url'), ...given('bio'), ...given('theme'), ...given('language'), ...given('timezone'),
    notifications: {
      ...current.notifications,
      ...Object.fromEntries(Object.entries(flat).filter(([, v]) => v !== undefined)),
      ...body.notifications
    }
  }
  await db.user.update({ where: { id }, data: { preferences: next } })
  return next
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
  try {
    await db.user.create({
      data: {
        username: settings.username,
        email: settings.email,
        passwordHash: await hashPassword(settings.password ?? generatedPassword!),
        role: 'admin'
      }
    })
  } catch (error) {
    // instances started at once on a new database: another made the admin between the count and this insert
    if ((error as { code?: unknown }).code === 'P2002' && await db.user.count({ where: { role: 'admin', isDeleted: false } }) > 0) return { created: false }
    throw error
  }
  return { created: true, ...(generatedPassword !== undefined && { generatedPassword }) }
}
