// The names the prompt-cache analytics shows beside its groups (users, keys and their
// owners, by primary key); the analytics' own reads are the accounting core's
// (src/modules/accounting/read/cache.ts).
import sql from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import type { Scope } from '../accounting/read/cache.js'

export interface GroupInfo { id: string, name: string | null, username: string | null, email: string | null }

/** Names of the groups: users, or keys with their owners. */
export async function groupInfo (db: Sql, scope: Scope['scope'], ids: string[]): Promise<Map<string, GroupInfo>> {
  const { rows } = scope === 'user'
    ? await db.query<GroupInfo>(sql`SELECT id, NULL AS name, username, email FROM users WHERE id = ANY(${ids}::uuid[])`)
    : await db.query<GroupInfo>(sql`SELECT k.id, k.name, u.username, u.email FROM api_keys k LEFT JOIN users u ON u.id = k.user_id
                                     WHERE k.id = ANY(${ids}::uuid[])`)
  return new Map(rows.map((row) => [row.id, row]))
}

/** Usernames for the timeline's users. */
export async function usernames (db: Sql, ids: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ id: string, username: string }>(sql`SELECT id, username FROM users WHERE id = ANY(${ids}::uuid[])`)
  return new Map(rows.map((row) => [row.id, row.username]))
}
