// The real server and CLI processes (src/server.ts, src/cli.ts under tsx) on an embedded
// database in a throwaway DATA_DIR, for the process-level reliability tests.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { CHILD_COVERAGE_OFF, spawnServerProcess, type Exit, type ServerProcess } from '../process.js'

export const ADMIN_PASSWORD = 'first-admin-password'
export const GATEWAY_TOKEN = 'reliability-gateway-token-0123456789'

export type { Exit }

export interface Server extends ServerProcess {
  /** ms from spawn to the first 200 from /ready (startServer) */
  readyMs?: number
}

/** The live postmaster on `dataDir`/pg (pid and port from its postmaster.pid), or null. Read here, not through src/db/embedded.ts, which is under test. */
export async function postmasterOf (dataDir: string): Promise<{ pid: number, port: number } | null> {
  let lines: string[]
  try {
    lines = (await readFile(join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')
  } catch {
    return null
  }
  const pid = Number(lines[0])
  return alive(pid) ? { pid, port: Number(lines[3]) } : null
}

/** SIGINT (fast shutdown) and wait for the process to go. */
export async function stopPostmaster (pid: number): Promise<void> {
  try { process.kill(pid, 'SIGINT') } catch { return }
  await until(() => !alive(pid), `postmaster ${pid} to stop`)
}

/** As root, the ids of the `postgres` user PostgreSQL runs as; else none. */
export function postgresIds (): { uid?: number, gid?: number } {
  if (process.getuid?.() !== 0) return {}
  return { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) }
}

/**
 * A DATA_DIR the `postgres` user can reach; at teardown any postmaster still running on it
 * is stopped (a test that fails half-way leaves none behind) and the directory removed.
 */
export async function dataDirFor (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-reliability-'))
  await chmod(dir, 0o755)
  t.teardown(async () => {
    const left = await postmasterOf(dir)
    if (left !== null) await stopPostmaster(left.pid)
    await rm(dir, { recursive: true, force: true })
  })
  return dir
}

/** The server on the embedded database in `dataDir`, in its own process group (as a terminal runs it). */
export async function spawnServer (t: Test, dataDir: string, env: Record<string, string> = {}): Promise<Server> {
  return spawnServerProcess(t, { LOG_LEVEL: 'warn', DATA_DIR: dataDir, ADMIN_PASSWORD, GATEWAY_TOKEN, CLEANUP_CRON: 'off', ...env }, { detached: true })
}

/** A server started and listening. */
export async function startServer (t: Test, dataDir: string, env: Record<string, string> = {}): Promise<Server> {
  const spawned = Date.now()
  const server = await spawnServer(t, dataDir, env)
  await server.waitFor(/embedded PostgreSQL started/)
  // LOG_LEVEL=warn hides Fastify's "listening" line: readiness says it serves
  const deadline = Date.now() + 120_000
  for (;;) {
    const res = await fetch(`${server.base}/ready`).catch(() => null)
    if (res?.status === 200) return { ...server, readyMs: Date.now() - spawned }
    if (server.child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not become ready\nstdout:\n${server.stdout()}\nstderr:\n${server.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export interface CliRun extends Exit { stdout: string, stderr: string }

/** `node --import tsx src/cli.ts ...args` on the embedded database in `dataDir`. */
export function runCli (dataDir: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...CHILD_COVERAGE_OFF, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
}

/** The URL of the `keymeter` database on the cluster running on `dataDir` (password from secrets.json). */
export async function embeddedUrl (dataDir: string): Promise<string> {
  const running = await postmasterOf(dataDir)
  if (running === null) throw new Error(`no postmaster running on ${dataDir}`)
  const { POSTGRES_PASSWORD } = JSON.parse(await readFile(join(dataDir, 'secrets.json'), 'utf8')) as { POSTGRES_PASSWORD: string }
  return `postgresql://postgres:${encodeURIComponent(POSTGRES_PASSWORD)}@127.0.0.1:${running.port}/keymeter`
}

/** Is `pid` a live process (not a zombie)? */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

/** Polls `condition` every 25 ms until it holds; fails after `timeoutMs`. */
export async function until (condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

export async function signIn (base: string): Promise<{ authorization: string }> {
  const res = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: ADMIN_PASSWORD }) })
  if (res.status !== 200) throw new Error(`login → ${res.status} ${await res.text()}`)
  return { authorization: `Bearer ${(await res.json() as { access_token: string }).access_token}` }
}
