// What the server and the CLI share: resolve the database (external, or embedded
// under DATA_DIR with secrets generated once) and apply pending migrations.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ConfigError, requireSecrets, type AppConfig, type Config } from './config.js'
import { attachEmbedded, EmbeddedError, ownerAlive, releaseLock, startEmbedded, takeLock } from './db/embedded.js'
import { applyMigrations } from './db/migrate.js'
import { randomBase62 } from './lib/crypto.js'

interface GeneratedSecrets { SESSION_SECRET: string, ENCRYPTION_KEY: string, POSTGRES_PASSWORD: string }

/** ./.data/secrets.json, created once with mode 0600: an embedded install needs no set-up. */
async function localSecrets (dataDir: string): Promise<GeneratedSecrets> {
  const file = join(dataDir, 'secrets.json')
  try {
    return JSON.parse(await readFile(file, 'utf8')) as GeneratedSecrets
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const secrets = { SESSION_SECRET: randomBase62(48), ENCRYPTION_KEY: randomBase62(48), POSTGRES_PASSWORD: randomBase62(24) }
  await mkdir(dataDir, { recursive: true })
  await writeFile(file, JSON.stringify(secrets, null, 2), { mode: 0o600, flag: 'wx' })
  await chmod(file, 0o600)
  return secrets
}

export interface Runtime { config: AppConfig, embedded: boolean, close: () => Promise<void> }

export interface RuntimeOptions {
  /**
   * 'server': one per DATA_DIR; it stops the embedded cluster itself when it stops (after
   * draining). 'command' (default): uses the cluster of a server running on DATA_DIR and
   * leaves it running, or starts one for its own length.
   */
  role?: 'server' | 'command'
  /** the command's name, for the line that refuses another process meanwhile */
  command?: string
}

export async function openRuntime (config: Config, log: (line: string) => void, options: RuntimeOptions = {}): Promise<Runtime> {
  if (config.DATABASE_URL !== undefined) {
    // an external database means a real deployment: secrets must be given, never invented
    return { config: requireSecrets(config), embedded: false, close: async () => {} }
  }
  const role = options.role ?? 'command'
  const dataDir = resolve(config.DATA_DIR)
  const secrets = await localSecrets(dataDir)
  const pgDir = join(dataDir, 'pg')
  const lockFile = join(dataDir, 'keymeter.lock')
  const database = { dataDir: pgDir, password: secrets.POSTGRES_PASSWORD, database: 'keymeter' }
  let url: string
  let close = async () => {}
  const holder = await takeLock(lockFile, role, options.command ?? role)
  if (holder !== null) {
    // a command beside a server shares its cluster; anything else would fight over the directory
    if (role === 'server' || holder.role !== 'server') {
      throw new EmbeddedError(holder.role === 'server'
        ? `another keymeter server (pid ${holder.pid}) is running on ${dataDir}; stop it first or give this one another DATA_DIR`
        : `keymeter ${holder.command} (pid ${holder.pid}) is using ${dataDir}; try again when it has finished`)
    }
    url = await attachEmbedded({ ...database, ownerAlive: () => ownerAlive(holder) })
    log(`using the embedded PostgreSQL of the keymeter server running on ${dataDir} (pid ${holder.pid})`)
  } else {
    let started: Awaited<ReturnType<typeof startEmbedded>>
    try {
      started = await startEmbedded({ ...database, log })
    } catch (error) {
      await releaseLock(lockFile)
      throw error
    }
    log(`embedded PostgreSQL started (data in ${pgDir})`)
    let closing: Promise<void> | undefined
    close = () => (closing ??= started.stop().finally(() => releaseLock(lockFile)))
    url = started.url
    if (role === 'command') {
      // the cluster runs in its own session, out of reach of a terminal's Ctrl-C: stop it before leaving
      for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
        process.once(signal, () => {
          // the command is abandoned: its connections break under the stop, and their errors with it
          process.on('uncaughtException', () => {})
          process.on('unhandledRejection', () => {})
          void close().finally(() => process.exit(code))
        })
      }
    }
  }
  try {
    const resolved = requireSecrets({
      ...config,
      DATABASE_URL: url,
      SESSION_SECRET: config.SESSION_SECRET ?? secrets.SESSION_SECRET,
      ENCRYPTION_KEY: config.ENCRYPTION_KEY ?? secrets.ENCRYPTION_KEY
    })
    return { config: resolved, embedded: true, close }
  } catch (error) {
    await close()
    throw error
  }
}

export async function migrate (config: AppConfig, log: (line: string) => void): Promise<void> {
  const applied = await applyMigrations(config.DATABASE_URL, { log })
  log(applied.length === 0 ? 'migrations: database is up to date' : `migrations: applied ${applied.length}`)
}

export { ConfigError, EmbeddedError }
