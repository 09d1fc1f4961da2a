// The key holder's periods: the current local day or month of a zone, cut by
// PostgreSQL's zone rules. The usage read over them is the accounting core's
// (src/modules/accounting/read/keys.ts).
import sql from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'

/** The current local day or month of `timeZone`, [start, end), cut by PostgreSQL's zone rules (DST included). */
export async function currentPeriod (db: Sql, timeZone: string, unit: 'day' | 'month'): Promise<{ start: Date, end: Date }> {
  const { rows } = await db.query<{ start: Date, end: Date }>(sql`
    SELECT date_trunc(${unit}::text, now() AT TIME ZONE ${timeZone}::text) AT TIME ZONE ${timeZone}::text AS start,
           (date_trunc(${unit}::text, now() AT TIME ZONE ${timeZone}::text) + ('1 ' || ${unit}::text)::interval) AT TIME ZONE ${timeZone}::text AS "end"`)
  return rows[0]!
}

/** The last `days` local days of `timeZone`, today included: from the first one's local midnight to now. */
export async function recentDays (db: Sql, timeZone: string, days: number): Promise<{ start: Date, end: Date }> {
  const { rows } = await db.query<{ start: Date, end: Date }>(sql`
    SELECT (date_trunc('day', now() AT TIME ZONE ${timeZone}::text) - (${days}::int - 1) * interval '1 day') AT TIME ZONE ${timeZone}::text AS start,
           now() AS "end"`)
  return rows[0]!
}

/** The key's client restrictions (api_keys primary key), as verify reads them: null or [] allows any client (as does a key deleted since). */
export async function clientRestrictions (db: Sql, keyId: string): Promise<{ allowed_ips: string[] | null, allowed_user_agents: string[] | null }> {
  // one row whatever: a key deleted since its authentication restricts nothing, and its handler answers as before
  const { rows } = await db.query<{ allowed_ips: string[] | null, allowed_user_agents: string[] | null }>(sql`
    SELECT k.allowed_ips, k.allowed_user_agents FROM (SELECT 1) AS one LEFT JOIN api_keys k ON k.id = ${keyId}::uuid`)
  return rows[0]!
}
