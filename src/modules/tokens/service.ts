// Management tokens: long-lived credentials that act as their user, for scripts.
import type { Db } from '../../db/prisma.js'
import type { ManagementToken, Prisma } from '../../generated/prisma/client.js'
import { Errors } from '../../http/errors.js'
import { maskSecret, randomBase62 } from '../../lib/crypto.js'
import { hashToken, type Keyring } from '../../lib/keyring.js'
import { MANAGEMENT_TOKEN_PREFIX } from '../auth/service.js'
import type { TokenCreateBody } from './schemas.js'

export const MAX_TOKENS_PER_USER = 20

export function toTokenRecord (row: ManagementToken) {
  return {
    id: row.id,
    user_id: row.userId,
    name: row.name,
    description: row.description,
    token_display: row.tokenPrefix,
    allowed_ips: Array.isArray(row.allowedIps) ? row.allowedIps as string[] : null,
    expires_at: row.expiresAt?.toISOString() ?? null,
    last_used_at: row.lastUsedAt?.toISOString() ?? null,
    last_used_ip: row.lastUsedIp,
    usage_count: row.usageCount,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

export async function createToken (db: Db, keyring: Keyring, userId: string, body: TokenCreateBody) {
  // the user's row lock makes the count-then-insert safe against concurrent creates
  await db.$queryRaw`SELECT id FROM users WHERE id = ${userId}::uuid FOR UPDATE`
  const count = await db.managementToken.count({ where: { userId } })
  if (count >= MAX_TOKENS_PER_USER) throw new Errors.LimitReached(`at most ${MAX_TOKENS_PER_USER} management tokens per user; revoke one first`)
  if (body.expires_at !== undefined && new Date(body.expires_at) <= new Date()) throw new Errors.InvalidInput('expires_at must be in the future')
  const token = MANAGEMENT_TOKEN_PREFIX + randomBase62(40)
  const row = await db.managementToken.create({
    data: {
      userId,
      name: body.name,
      description: body.description ?? null,
      tokenHash: hashToken(keyring, token),
      tokenPrefix: maskSecret(token, 8, 4),
      allowedIps: body.allowed_ips ?? undefined,
      expiresAt: body.expires_at === undefined ? null : new Date(body.expires_at)
    }
  })
  return { ...toTokenRecord(row), token }
}

export async function listTokens (db: Db, where: Prisma.ManagementTokenWhereInput, page: { skip: number, limit: number }) {
  const [rows, total] = await Promise.all([
    db.managementToken.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'asc' }], skip: page.skip, take: page.limit }),
    db.managementToken.count({ where })
  ])
  return { items: rows.map(toTokenRecord), total, skip: page.skip, limit: page.limit }
}

/** Deletes a token; `userId` scopes the search so nobody learns of another user's token. */
export async function revokeToken (db: Db, id: string, userId?: string): Promise<void> {
  const { count } = await db.managementToken.deleteMany({ where: { id, ...(userId !== undefined && { userId }) } })
  if (count === 0) throw new Errors.NotFound('management token not found')
}
