// Audit rows: written by the pipeline for every admin and user call (refusals
// included) and by system jobs; read by GET /api/admin/audit-logs.
import type { Db } from '../../db/prisma.js'
import type { Prisma } from '../../generated/prisma/client.js'

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

export async function writeAudit (db: Db, entry: AuditEntry): Promise<void> {
  await db.auditLog.create({
    data: { ...entry, metadata: entry.metadata as Prisma.InputJsonValue | undefined }
  })
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
