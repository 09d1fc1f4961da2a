// Audit rows: written by the pipeline for every admin and user call (refusals and
// failures included), by sign-in and by system jobs; read by GET /api/admin/audit-logs.
import { isIP } from 'node:net'
import type pg from 'pg'
import sql from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import type { Prisma } from '../../generated/prisma/client.js'
import { redactJson, redactText } from '../../lib/redact.js'

export interface AuditEntry {
  eventType: string
  action: string
  principalType: string
  userId?: string | null
  managementTokenId?: string | null
  ip?: string | null
  userAgent?: string | null
  requestId?: string | null
  method?: string | null
  path?: string | null
  statusCode?: number | null
  success: boolean
  durationMs?: number | null
  metadata?: Record<string, unknown>
  errorMessage?: string | null
}

/** An IP address as stored: a parsed IPv4/IPv6 address, else null (never whatever string a header carried). */
export function parsedIp (value: string | null | undefined): string | null {
  if (typeof value !== 'string') return null
  const address = value.trim()
  return isIP(address) === 0 ? null : address
}

/** The entry as it may be stored: a parsed address only, credentials masked in metadata and free text. */
function storable (entry: AuditEntry): AuditEntry {
  return {
    ...entry,
    ip: parsedIp(entry.ip),
    userAgent: entry.userAgent == null ? entry.userAgent : redactText(entry.userAgent),
    errorMessage: entry.errorMessage == null ? entry.errorMessage : redactText(entry.errorMessage),
    metadata: entry.metadata === undefined ? undefined : redactJson(entry.metadata) as Record<string, unknown>
  }
}

export async function writeAudit (db: Db, entry: AuditEntry): Promise<void> {
  const row = storable(entry)
  await db.auditLog.create({
    data: { ...row, metadata: row.metadata as Prisma.InputJsonValue | undefined }
  })
}

/**
 * The audit row of a call that changed nothing, on the reads' pool, whose sessions commit
 * asynchronously (createStatsPool): the call does not wait for its WAL flush (2–5 ms
 * here, half of a detail view). A database crash can lose the last fraction of a second
 * of such rows (at most three wal_writer_delay, 600 ms by default); a change's row is
 * always in the change's own transaction. `at` is when the call was answered: the
 * pipeline writes this row behind the answer (reads, and calls that failed with a 5xx),
 * and the rows must keep the calls' order.
 */
export async function writeReadAudit (pool: pg.Pool, entry: AuditEntry, at: Date): Promise<void> {
  entry = storable(entry)
  await pool.query(sql`
    INSERT INTO audit_logs (event_type, action, principal_type, user_id, management_token_id, ip, user_agent, request_id,
                            method, path, status_code, success, duration_ms, metadata, error_message, created_at)
    VALUES (${entry.eventType}, ${entry.action}, ${entry.principalType}, ${entry.userId ?? null}, ${entry.managementTokenId ?? null},
            ${entry.ip ?? null}, ${entry.userAgent ?? null}, ${entry.requestId ?? null}, ${entry.method ?? null}, ${entry.path ?? null},
            ${entry.statusCode ?? null}, ${entry.success}, ${entry.durationMs ?? null},
            ${entry.metadata === undefined ? null : JSON.stringify(entry.metadata)}::jsonb, ${entry.errorMessage ?? null}, ${at})`)
}

export interface AuditFilter {
  event_type?: string
  action?: string
  user_id?: string
  success?: boolean
  start_date?: string
  end_date?: string
  limit: number
  offset: number
}

// Served by audit_logs (created_at), (user_id, created_at), (action, created_at), (event_type, created_at).
export async function listAudit (db: Db, filter: AuditFilter) {
  const where: Prisma.AuditLogWhereInput = {
    eventType: filter.event_type,
    action: filter.action,
    userId: filter.user_id,
    success: filter.success,
    createdAt: {
      ...(filter.start_date !== undefined && { gte: new Date(filter.start_date) }),
      ...(filter.end_date !== undefined && { lt: new Date(filter.end_date) })
    }
  }
  const [items, total] = await Promise.all([
    db.auditLog.findMany({ where, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: filter.limit, skip: filter.offset }),
    db.auditLog.count({ where })
  ])
  return { items, total }
}
