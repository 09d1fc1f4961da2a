// The process: configuration, database (embedded when DATABASE_URL is unset),
// migrations, the first admin, listen, and a clean stop on SIGINT/SIGTERM.
import './env-file.js'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { EmbeddedError, firstLine } from './db/embedded.js'
import { MigrationError } from './db/migrate.js'
import { createLogger, envLogFormat } from './http/logging.js'
import { migrate, openRuntime } from './runtime.js'
import { scheduleCleanup } from './modules/cleanup/schedule.js'
import { ensureFirstAdmin } from './modules/users/service.js'

/** under DATA_DIR: the first admin's generated password, when ADMIN_PASSWORD is unset */
const FIRST_ADMIN_PASSWORD_FILE = 'first-admin-password'

// until the configuration is read (it may be what fails), at info and in LOG_FORMAT if that is valid
let logger = createLogger({ level: 'info', format: envLogFormat() })
// the boot's and the stop's lines, few and what an operator looks for: at info whatever LOG_LEVEL says
let lifecycle = logger
const log = (line: string) => { lifecycle.info(line) }

/**
 * Stops accepting and waits for the requests in flight, at most `graceMs`; past it their
 * connections are closed under them. False when the deadline cut some off.
 */
async function drain (app: FastifyInstance, graceMs: number): Promise<boolean> {
  const closing = app.close()
  // closing closes the keep-alive connections idle at that moment; one serving a request
  // then is left open after its answer until its keep-alive timeout (72 s), so a client
  // that keeps its connections busy (a gateway) held the stop that long: close them as they idle
  const idle = setInterval(() => app.server.closeIdleConnections(), 50)
  let deadline: NodeJS.Timeout | undefined
  const expired = new Promise<false>((resolve) => { deadline = setTimeout(resolve, graceMs, false) })
  try {
    // a close that fails (a pool refusing to end) is reported and the stop goes on
    const closed = closing.then(() => true, (error: unknown) => { lifecycle.warn(`shutdown: ${firstLine(error)}`); return true })
    const drained = await Promise.race([closed, expired])
    if (!drained) {
      lifecycle.warn(`shutdown: requests still in flight after SHUTDOWN_GRACE_MS (${graceMs} ms); closing their connections and exiting`)
      app.server.closeAllConnections()
    }
    return drained
  } finally {
    clearInterval(idle)
    clearTimeout(deadline)
  }
}

async function main (): Promise<void> {
  // the stop below drains the requests (SHUTDOWN_GRACE_MS at most), then stops the embedded database (if any) itself
  const loaded = loadConfig()
  logger = createLogger({ level: loaded.LOG_LEVEL, format: loaded.LOG_FORMAT })
  lifecycle = logger.child({}, { level: 'info' })
  const runtime = await openRuntime(loaded, log, { role: 'server' })
  const { config } = runtime
  let app: Awaited<ReturnType<typeof buildApp>> | undefined
  let cleanup: ReturnType<typeof scheduleCleanup> = null
  // SIGINT/SIGTERM (and the other termination signals) once; a second one exits at once.
  // Crashes keep Node's own handling: a process in an unknown state does not drain.
  closeWithGrace({ delay: null, logger, skip: ['uncaughtException', 'unhandledRejection', 'beforeExit'] }, async ({ signal }) => {
    log(`${signal ?? 'stop'}: draining requests and stopping`)
    cleanup?.stop()
    let drained = true
    if (app !== undefined) drained = await drain(app, config.SHUTDOWN_GRACE_MS)
    await runtime.close()
    log(drained ? 'stopped' : 'stopped, some requests cut off')
    if (!drained) process.exit(1)
  })
  try {
    if (config.MIGRATE_ON_START) await migrate(config, log)
    app = await buildApp(config, { logger })
    const admin = await ensureFirstAdmin(app.prisma, { email: config.ADMIN_EMAIL, username: config.ADMIN_USERNAME, password: config.ADMIN_PASSWORD })
    if (admin.generatedPassword !== undefined) {
      // a file only its owner reads, never the log: logs travel to places a password must not
      const file = join(resolve(config.DATA_DIR), FIRST_ADMIN_PASSWORD_FILE)
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, `${admin.generatedPassword}\n`, { mode: 0o600 })
      await chmod(file, 0o600)
      log(`first admin created: ${config.ADMIN_USERNAME} / ${config.ADMIN_EMAIL}; its generated password is in ${file} (mode 0600): sign in, change it, delete the file`)
    }
    await app.listen({ port: config.PORT, host: config.HOST })
    cleanup = scheduleCleanup(app.prisma, app.pg, config, app.log, app.metrics)
  } catch (error) {
    await app?.close()
    await runtime.close()
    throw error
  }
}

main().catch((error: unknown) => {
  const known = error instanceof ConfigError || error instanceof MigrationError || error instanceof EmbeddedError
  // an unforeseen Error keeps its stack; anything else thrown (even undefined) still names itself
  if (known || !(error instanceof Error)) lifecycle.fatal(`keymeter failed to start: ${firstLine(error)}`)
  else lifecycle.fatal({ err: error }, `keymeter failed to start: ${firstLine(error)}`)
  process.exit(1)
})
