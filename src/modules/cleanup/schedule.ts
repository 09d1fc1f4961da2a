// The in-process schedule for the cleanup (CLEANUP_CRON in APP_TIMEZONE). `protect`
// skips a tick while the previous run is still going; the advisory lock covers other
// processes and the system cron.
import { Cron } from 'croner'
import type { FastifyBaseLogger } from 'fastify'
import type pg from 'pg'
import type { PrismaClient } from '../../generated/prisma/client.js'
import type { AppConfig } from '../../config.js'
import type { Metrics } from '../../http/metrics.js'
import { runCleanupJob } from './service.js'

export function scheduleCleanup (prisma: PrismaClient, pool: pg.Pool, config: AppConfig, log: FastifyBaseLogger, metrics?: Metrics): Cron | null {
  if (config.CLEANUP_CRON === 'off') return null
  return new Cron(config.CLEANUP_CRON, { timezone: config.APP_TIMEZONE, protect: true }, async () => {
    try {
      log.info(`cleanup: ${await runCleanupJob(prisma, pool, config, metrics?.usageCounted)}`)
      metrics?.cleanupRan('success')
    } catch (error) {
      log.error({ err: error }, 'cleanup failed')
      metrics?.cleanupRan('failure')
    }
  })
}
