// The process: configuration, database (embedded when DATABASE_URL is unset),
// migrations, the first admin, listen, and a clean stop on SIGINT/SIGTERM.
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { EmbeddedError, firstLine } from './db/embedded.js'
import { MigrationError } from './db/migrate.js'
import { migrate, openRuntime } from './runtime.js'
import { scheduleCleanup } from './modules/cleanup/schedule.js'
import { ensureFirstAdmin } from './modules/users/service.js'

const log = (line: string) => process.stdout.write(`${line}\n`)

async function main (): Promise<void> {
  // the stop below drains the requests, then stops the embedded database (if any) itself
  const runtime = await openRuntime(loadConfig(), log, { role: 'server' })
  const { config } = runtime
  let app: Awaited<ReturnType<typeof buildApp>> | undefined
  let cleanup: ReturnType<typeof scheduleCleanup> = null
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    log(`${signal}: draining requests and stopping`)
    cleanup?.stop()
    if (app !== undefined) {
      const closing = app.close()
      // closing closes the keep-alive connections idle at that moment; one serving a request
      // then is left open after its answer until its keep-alive timeout (72 s), so a client
      // that keeps its connections busy (a gateway) held the stop that long: close them as they idle
      const idle = setInterval(() => app?.server.closeIdleConnections(), 50)
      await closing.finally(() => clearInterval(idle))
    }
    await runtime.close()
    process.exit(0)
  }
  process.once('SIGINT', () => { void stop('SIGINT') })
  process.once('SIGTERM', () => { void stop('SIGTERM') })

  try {
    if (config.MIGRATE_ON_START) await migrate(config, log)
    app = await buildApp(config)
    const admin = await ensureFirstAdmin(app.prisma, { email: config.ADMIN_EMAIL, username: config.ADMIN_USERNAME, password: config.ADMIN_PASSWORD })
    if (admin.generatedPassword !== undefined) {
      log(`first admin created: ${config.ADMIN_USERNAME} / ${config.ADMIN_EMAIL}, generated password: ${admin.generatedPassword} (shown once; change it)`)
    }
    await app.listen({ port: config.PORT, host: config.HOST })
    cleanup = scheduleCleanup(app.prisma, app.pg, config, app.log)
  } catch (error) {
    await app?.close()
    await runtime.close()
    throw error
  }
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof MigrationError || error instanceof EmbeddedError
  // an unforeseen Error keeps its stack; anything else thrown (even undefined) still names itself
  process.stderr.write(`keymeter failed to start: ${known || !(error instanceof Error) || error.stack === undefined ? firstLine(error) : error.stack}\n`)
  process.exit(1)
})
