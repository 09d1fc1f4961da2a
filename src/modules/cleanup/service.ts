// The expiry cleanup (SPEC §6): active keys past expires_at are disabled, or deleted
// where auto_delete_on_expiry says so (null follows AUTO_DELETE_EXPIRED_KEYS). Each
// key handled gets an audit row in the same transaction. The whole run holds a
// transaction-scoped advisory lock, so two runs at once handle each key exactly once:
// the second waits, then finds nothing left to do.
import { ensurePartitions, monthlyTable, removeBefore, type PartitionPool } from '../../db/partitions.js'
import { KEY_DELETION_LOCK } from '../../db/prisma.js'
import type { PrismaClient } from '../../generated/prisma/client.js'
import type { AppConfig } from '../../config.js'
import { writeAudit } from '../audit/service.js'
import { removeKey } from '../keys/service.js'
import { sweepStale } from '../usage/active.js'

const CLEANUP_LOCK = 0x6b6d636c // "kmcl"

export interface CleanupSummary { disabled: number, deleted: number }

interface ExpiredKey { id: string, name: string, user_id: string, expires_at: Date, auto_delete_on_expiry: boolean | null }

export async function runCleanup (prisma: PrismaClient, settings: { autoDeleteExpiredKeys: boolean }, now = new Date()): Promise<CleanupSummary> {
  return prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${CLEANUP_LOCK})`
    // before the keys' row locks, as every key deletion: a batch holds it shared and then key-share locks its keys
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${KEY_DELETION_LOCK})`
    // served by api_keys (is_active, expires_at)
    const expired = await tx.$queryRaw<ExpiredKey[]>`
      SELECT id, name, user_id, expires_at, auto_delete_on_expiry
        FROM api_keys
       WHERE is_active AND expires_at IS NOT NULL AND expires_at <= ${now}
       ORDER BY expires_at
         FOR UPDATE`
    const summary: CleanupSummary = { disabled: 0, deleted: 0 }
    for (const key of expired) {
      const remove = key.auto_delete_on_expiry ?? settings.autoDeleteExpiredKeys
      if (remove) await removeKey(tx, key.id)
      else await tx.apiKey.update({ where: { id: key.id }, data: { isActive: false } })
      summary[remove ? 'deleted' : 'disabled'] += 1
      await writeAudit(tx, {
        eventType: 'system',
        action: remove ? 'key_expired_deleted' : 'key_expired_disabled',
        principalType: 'system',
        success: true,
        metadata: { key_id: key.id, key_name: key.name, owner_user_id: key.user_id, expires_at: key.expires_at.toISOString(), rule: key.auto_delete_on_expiry === null ? 'global' : 'key' }
      })
    }
    return summary
  }, { timeout: 10 * 60_000, maxWait: 10 * 60_000 })
}

/** Each count is of rows removed, those of the partitions dropped whole (…Partitions) included. */
export interface RetentionSummary {
  usageRows: number, usagePartitions: number, candidates: number, bodies: number, bodyPartitions: number, auditRows: number, auditPartitions: number, windowSeconds: number
}

/** What is kept, in days (0: forever). */
export interface RetentionSettings { usageDays: number, bodyDays: number, auditDays: number }

/** The longest rate window (api_keys.rate_window_seconds ≤ 86,400) and a day's margin: older per-second counts are read by nothing. */
const WINDOW_SECONDS_KEPT_MS = 2 * 86_400_000

/**
 * Retention: usage rows with their candidates and bodies, stored headers/bodies alone, and
 * audit rows past their age are removed (0 days = keep forever), and the rate window's
 * per-second counts past two days. The rollups, totals and balances keep what they counted:
 * a usage row's removal changes no figure but the raw rows' (records, detail, exports).
 * Each goes by whole monthly partitions where a partition is wholly past the cutoff, by row
 * deletes in the one that straddles it (db/partitions.ts removeBefore): the rows left are the
 * same. Bodies and candidates go before the usage rows they belong to (the bodies' foreign
 * key refuses to detach a month of usage they still reference). Served by each table's
 * (created_at).
 */
export async function applyRetention (prisma: PrismaClient, pool: PartitionPool, settings: RetentionSettings, now = new Date()): Promise<RetentionSummary> {
  const cutoff = (days: number) => days === 0 ? null : new Date(now.getTime() - days * 86_400_000)
  const older = async (table: string, at: Date | null) => at === null ? { partitions: [], rows: 0 } : await removeBefore(pool, monthlyTable(table), at)
  const usageCutoff = cutoff(settings.usageDays)
  const bodyCutoffs = [cutoff(settings.bodyDays), usageCutoff].filter((at) => at !== null)
  // a body goes with its usage row at the latest
  const bodies = await older('usage_bodies', bodyCutoffs.length === 0 ? null : new Date(Math.max(...bodyCutoffs.map((at) => at.getTime()))))
  const candidates = await older('request_candidates', usageCutoff)
  const usage = await older('usage', usageCutoff)
  const audit = await older('audit_logs', cutoff(settings.auditDays))
  // served by usage_key_seconds (second)
  const windowSeconds = (await prisma.usageKeySecond.deleteMany({ where: { second: { lt: new Date(now.getTime() - WINDOW_SECONDS_KEPT_MS) } } })).count
  return {
    usageRows: usage.rows,
    usagePartitions: usage.partitions.length,
    candidates: candidates.rows,
    bodies: bodies.rows,
    bodyPartitions: bodies.partitions.length,
    auditRows: audit.rows,
    auditPartitions: audit.partitions.length,
    windowSeconds
  }
}

/** The one-line summary the CLI prints for cron logs. */
export function cleanupLine (summary: CleanupSummary, timedOut: number, retention?: RetentionSummary, partitionsCreated: string[] = []): string {
  const extra = [
    timedOut > 0 ? `timed out ${timedOut} stale requests` : '',
    retention !== undefined && retention.usageRows > 0
      ? `removed ${retention.usageRows} old usage rows and ${retention.candidates} candidates${retention.usagePartitions > 0 ? ` (${retention.usagePartitions} monthly partitions dropped whole)` : ''}`
      : '',
    retention !== undefined && retention.bodies > 0
      ? `removed ${retention.bodies} old bodies${retention.bodyPartitions > 0 ? ` (${retention.bodyPartitions} monthly partitions dropped whole)` : ''}`
      : '',
    retention !== undefined && retention.auditRows > 0
      ? `removed ${retention.auditRows} old audit rows${retention.auditPartitions > 0 ? ` (${retention.auditPartitions} monthly partitions dropped whole)` : ''}`
      : '',
    partitionsCreated.length > 0 ? `created partitions ${partitionsCreated.join(', ')}` : ''
  ].filter((part) => part !== '')
  return [`disabled ${summary.disabled}, deleted ${summary.deleted}`, ...extra].join(', ')
}

/** The whole job, as the schedule and the CLI run it. */
export async function runCleanupJob (prisma: PrismaClient, pool: Parameters<typeof sweepStale>[0], config: AppConfig, onCommitted?: Parameters<typeof sweepStale>[3]): Promise<string> {
  const summary = await runCleanup(prisma, { autoDeleteExpiredKeys: config.AUTO_DELETE_EXPIRED_KEYS })
  const timedOut = await sweepStale(pool, config.PENDING_TIMEOUT_MINUTES, new Date(), onCommitted)
  const retention = await applyRetention(prisma, pool, { usageDays: config.USAGE_RETENTION_DAYS, bodyDays: config.USAGE_BODY_RETENTION_DAYS, auditDays: config.AUDIT_RETENTION_DAYS })
  // the months ahead, for a server that runs for months without a restart
  const created = await ensurePartitions(pool)
  return cleanupLine(summary, timedOut, retention, created)
}
