// The real server process (`node --import tsx src/server.ts`), for the tests whose
// subject is the process: its boot, its stop, its faults. One spawner for all of them.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { freePort } from '../src/db/embedded.js'

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

export interface ServerProcess {
  child: ChildProcess
  port: number
  base: string
  stdout: () => string
  stderr: () => string
  exited: Promise<Exit>
  /** Resolves when stdout matches, rejects if the process exits first. */
  waitFor: (pattern: RegExp) => Promise<void>
}

/**
 * Spawns the server with exactly `env` (plus PATH, HOME, HOST and a free PORT unless
 * `env` names one), killed at teardown if still running. `detached` gives it a process
 * group of its own, as a terminal does.
 */
/**
 * Our TypeScript run by a child (`node --import tsx …`) records no coverage: tap merges a
 * child's coverage, taken under tsx's transform, with the test processes' own, and the
 * merge lost up to a third of a file's covered lines (users/service.ts: 69 % alone, 45 %
 * beside server.test.ts), which moved the total by 8 points between runs.
 */
/** the server's entry, from any working directory (a test may give it another, with its own .env) */
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

export const CHILD_COVERAGE_OFF = { _TAPJS_PROCESSINFO_COVERAGE_: '0' } as const

export async function spawnServerProcess (t: Test, env: Record<string, string>, options: { detached?: boolean, cwd?: string } = {}): Promise<ServerProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', TSX, SERVER], {
    cwd: options.cwd ?? process.cwd(),
    detached: options.detached ?? false,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: String(port), ...CHILD_COVERAGE_OFF, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const waitFor = (pattern: RegExp) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!pattern.test(out)) return false
      child.stdout!.off('data', check)
      resolve()
      return true
    }
    if (check()) return
    child.stdout!.on('data', check)
    void exited.then(({ code, signal }) => {
      if (!pattern.test(out)) reject(new Error(`server exited (code ${code}, signal ${signal}) before printing ${pattern}\nstdout:\n${out}\nstderr:\n${err}`))
    })
  })
  return { child, port, base: `http://127.0.0.1:${port}`, stdout: () => out, stderr: () => err, exited, waitFor }
}
