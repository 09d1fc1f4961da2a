// The real server process (src/server.ts under tsx) on a test database, for the
// reliability tests whose fault is the process itself: a hang or a refused boot.
import type { Test } from 'tap'
import { spawnServerProcess, type ServerProcess } from '../process.js'

export const SERVER_ADMIN_PASSWORD = 'reliability-admin-password'

export interface Server extends ServerProcess {
  /** Resolves when the server says it listens; rejects if the process exits first. */
  listening: () => Promise<void>
  /** Signs the first admin in; their bearer headers. */
  admin: () => Promise<{ authorization: string }>
}

/** Spawns the server on `url` with `env` added, killed at teardown if still running. */
export async function spawnServer (t: Test, url: string, env: Record<string, string> = {}): Promise<Server> {
  const spawned = await spawnServerProcess(t, {
    LOG_LEVEL: 'info',
    DATABASE_URL: url,
    SESSION_SECRET: 'reliability-session-secret-0123456789',
    ENCRYPTION_KEY: 'reliability-encryption-key-0123456789',
    ADMIN_PASSWORD: SERVER_ADMIN_PASSWORD,
    CLEANUP_CRON: 'off',
    ...env
  })
  const { base } = spawned
  const listening = () => spawned.waitFor(/Server listening/)
  const admin = async () => {
    const res = await fetch(`${base}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin', password: SERVER_ADMIN_PASSWORD })
    })
    if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`)
    return { authorization: `Bearer ${(await res.json() as { access_token: string }).access_token}` }
  }
  return { ...spawned, listening, admin }
}
