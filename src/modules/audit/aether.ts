// The audit log as Aether's audit page reads it (GET /api/admin/monitoring/audit-logs):
// Aether's event names mapped from keymeter's (action, outcome) and back for the filter,
// a window of the last `days`, a user given as free text, and each row's user and a
// one-line description. Successful reads are left out unless a filter asks for them:
// keymeter audits every read, and the usage page's once-a-second polling would bury the rest.
import type { Db } from '../../db/prisma.js'
import type { AuditLog, Prisma } from '../../generated/prisma/client.js'
import { UUID_PATTERN } from '../../lib/crypto.js'

const KEY_DOORS = ['api_keys', 'user_api_keys', 'own_api_keys']

/** Aether's event names for keymeter's successful actions. */
const ACTION_EVENTS: ReadonlyArray<readonly [event: string, actions: string[]]> = [
  ['logout', ['auth.logout']],
  ['api_key_created', KEY_DOORS.map((door) => `${door}.create`)],
  ['api_key_deleted', KEY_DOORS.map((door) => `${door}.delete`)],
  ['user_created', ['users.create']],
  ['user_updated', ['users.update']],
  ['user_deleted', ['users.delete']],
  ['provider_added', ['providers.create']],
  ['provider_updated', ['providers.update']],
  ['provider_removed', ['providers.delete']]
]
const EVENT_OF_ACTION = new Map(ACTION_EVENTS.flatMap(([event, actions]) => actions.map((action) => [action, event] as const)))
const REFUSED = [401, 403]

/** The event name Aether's page shows for a row; keymeter's own event_type where Aether has none. */
export function aetherEventType (row: Pick<AuditLog, 'action' | 'success' | 'statusCode' | 'eventType'>): string {
  if (row.action === 'auth.login') return row.success ? 'login_success' : 'login_failed'
  if (row.statusCode !== null && REFUSED.includes(row.statusCode)) return 'unauthorized_access'
  return (row.success && EVENT_OF_ACTION.get(row.action)) || row.eventType
}

/** The rows `aetherEventType` names `event` (the inverse, as a filter). */
export function eventFilter (event: string): Prisma.AuditLogWhereInput {
  if (event === 'login_success' || event === 'login_failed') return { action: 'auth.login', success: event === 'login_success' }
  if (event === 'unauthorized_access') return { statusCode: { in: REFUSED }, action: { not: 'auth.login' } }
  const mapped = ACTION_EVENTS.find(([name]) => name === event)
  if (mapped !== undefined) return { action: { in: mapped[1] }, success: true }
  // keymeter's own event types, less the rows shown under an Aether name
  return {
    eventType: event,
    action: { not: 'auth.login' },
    OR: [{ statusCode: null }, { statusCode: { notIn: REFUSED } }], // NOT IN alone would drop rows without a status
    NOT: { action: { in: [...EVENT_OF_ACTION.keys()] }, success: true }
  }
}

/** The users a search box's text names: a uuid, or else an email or username (any case); never refused. */
async function usersNamed (db: Db, text: string): Promise<string[]> {
  if (UUID_PATTERN.test(text)) return [text.toLowerCase()]
  const found = await db.user.findMany({
    where: { OR: [{ email: { equals: text, mode: 'insensitive' } }, { username: { equals: text, mode: 'insensitive' } }] },
    select: { id: true }
  })
  return found.map((u) => u.id)
}

export interface AetherAuditQuery { days: number, limit: number, offset: number, event_type?: string, user_id?: string }

const describe = (row: AuditLog) =>
  `${row.action}: ${row.method ?? ''} ${row.path ?? ''} ${row.success ? 'answered' : 'refused with'} ${row.statusCode ?? '—'}`.replace(/\s+/g, ' ')

// Served by audit_logs (created_at), or (user_id, created_at) and (action, created_at) when those filter.
export async function aetherAuditPage (db: Db, query: AetherAuditQuery, now = new Date()) {
  const text = query.user_id?.trim() ?? ''
  const where: Prisma.AuditLogWhereInput = {
    AND: [
      { createdAt: { gte: new Date(now.getTime() - query.days * 86_400_000) } },
      text === '' ? {} : { userId: { in: await usersNamed(db, text) } },
      query.event_type !== undefined && query.event_type !== ''
        ? eventFilter(query.event_type)
        : { OR: [{ success: false }, { method: null }, { method: { not: 'GET' } }] } // not a successful read
    ]
  }
  const [rows, total] = await Promise.all([
    db.auditLog.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: query.limit, skip: query.offset }),
    db.auditLog.count({ where })
  ])
  const ids = [...new Set(rows.map((r) => r.userId).filter((id): id is string => id !== null))]
  const users = new Map((await db.user.findMany({ where: { id: { in: ids } }, select: { id: true, email: true, username: true } })).map((u) => [u.id, u]))
  return {
    total,
    items: rows.map((row) => ({
      row,
      event_type: aetherEventType(row),
      user_email: row.userId === null ? null : users.get(row.userId)?.email ?? null,
      user_username: row.userId === null ? null : users.get(row.userId)?.username ?? null,
      description: describe(row)
    }))
  }
}
