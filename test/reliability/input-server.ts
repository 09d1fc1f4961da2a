// The real server process (src/server.ts under tsx) on a test database, for the
// reliability tests whose fault is the process itself: a hang or a refused boot.
import { spawn, type ChildProcess } from 'node:child_process'
import type { Test } from 'tap'
import { freePort } from '../../src/db/embedded.js'

export const SERVER_ADMIN_PASSWORD = 'reliability-admin-password'

export interface Server {
  child: ChildProcess
  base: string
  stdout: () => string
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Resolves when stdout matches; rejects if the process exits first. */
  listening: () => Promise<void>
  /** Signs the first admin in; their bearer headers. */
  admin: () => Promise<{ authorization: string }>
}

/** Spawns the server on `url` with `env` added, killed at teardown if still running. */
export async function spawnServer (t: Test, url: string, env: Record<string, string> = {}): Promise<Server> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      DATABASE_URL: url,
      SESSION_SECRET: 'reliability-session-secret-0123456789',
      ENCRYPTION_KEY: 'reliability-encryption-key-0123456789',
      ADMIN_PASSWORD: SERVER_ADMIN_PASSWORD,
      CLEANUP_CRON: 'off',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const base = `http://127.0.0.1:${port}`
  const listening = () => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!/Server listening/.test(out)) return
      child.stdout.off('data', check)
      resolve()
    }
    child.stdout.on('data', check)
    check()
    void exited.then(({ code, signal }) => reject(new Error(`server exited (code ${code}, signal ${signal}) before listening\nstdout:\n${out}\nstderr:\n${err}`)))
  })
  const admin = async () => {
    const res = await fetch(`${base}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: SERVER_ADMIN_PASSWORD })
    })
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`)
    return { authorization: `Bearer ${(await res.json() as { access_token: string }).access_token}` }
  }
  return { child, base, stdout: () => out, stderr: () => err, exited, listening, admin }
}
