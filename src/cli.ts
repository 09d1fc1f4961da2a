// Entry points for operators and cron: `node dist/cli.js <command>`.
import './env-file.js'
import { loadConfig } from './config.js'
import { firstLine } from './db/embedded.js'
import { createDatabase, inTransaction } from './db/prisma.js'
import { createLogger, envLogFormat } from './http/logging.js'
import { rebuildCacheData } from './modules/accounting/cache/rebuild.js'
import { runCleanupJob } from './modules/cleanup/service.js'
import { seedCommand } from './modules/seed/command.js'
import { migrate, openRuntime } from './runtime.js'

// the server's format (JSON, or readable on a terminal: LOG_FORMAT); at info whatever LOG_LEVEL says, since these lines are the command's answer
const logger = createLogger({ level: 'info', format: envLogFormat() })
const log = (line: string) => { logger.info(line) }
const pools = { onLost: (error: Error) => { logger.error(`database connection lost: ${error.message}`) } }

const commands: Record<string, (args: string[]) => Promise<number>> = {
  migrate: async () => {
    const runtime = await openRuntime(loadConfig(), log, { command: 'migrate' })
    try {
      await migrate(runtime.config, log)
      return 0
    } finally {
      await runtime.close()
    }
  },
  // for a system cron: one line, exit 0
  cleanup: async () => {
    const runtime = await openRuntime(loadConfig(), () => {}, { command: 'cleanup' })
    const { prisma, pool } = createDatabase(runtime.config.DATABASE_URL, pools)
    try {
      log(await runCleanupJob(prisma, pool, runtime.config))
      return 0
    } finally {
      await prisma.$disconnect()
      await pool.end().catch(() => {})
      await runtime.close()
    }
  },
  // once after upgrading a database that has usage history: the cache analytics tables from the raw rows
  'rebuild-cache': async () => {
    const runtime = await openRuntime(loadConfig(), () => {}, { command: 'rebuild-cache' })
    const { prisma, pool } = createDatabase(runtime.config.DATABASE_URL, pools)
    try {
      await inTransaction(pool, rebuildCacheData)
      log('cache analytics rebuilt from the usage rows')
      return 0
    } finally {
      await prisma.$disconnect()
      await pool.end().catch(() => {})
      await runtime.close()
    }
  },
  // seed --rows N [--days 90] [--seed 42] [--reset]
  seed: (args) => seedCommand(args, log)
}

async function main (argv: string[]): Promise<number> {
  const name = argv[0] ?? ''
  const command = commands[name]
  if (command !== undefined) return command(argv.slice(1))
  process.stderr.write(`usage: keymeter <${Object.keys(commands).join('|')}>\n`)
  return 2
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error: unknown) => {
  // one line, never a stack, whatever was thrown (a non-Error too)
  logger.fatal(`keymeter ${process.argv[2] ?? ''}: ${firstLine(error)}`)
  process.exit(1)
})
