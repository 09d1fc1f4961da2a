// Builds the app for a test file against the file's own database (a copy of the
// migrated template), with the same serverOptions() as production.
import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import pg from 'pg'
import type { Test } from 'tap'
import { buildApp, type KeymeterApp } from '../src/app.js'
import { loadConfig, requireSecrets, type AppConfig } from '../src/config.js'
import { hashPassword } from '../src/lib/crypto.js'
import { clusterState, databaseUrl, TEMPLATE_DB } from './setup/cluster.js'

export const GATEWAY_TOKEN = 'gateway-test-token-0123456789'

/** A new empty (or migrated, from the template) database on the test server. */
export async function createDatabase (t: Test, options: { migrated?: boolean } = {}): Promise<string> {
  const { adminUrl } = clusterState()
  const name = `kmtest_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    const template = options.migrated === false ? 'template0' : TEMPLATE_DB
    // several files copy the template at once; PostgreSQL refuses while another copy holds it, so retry
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`)
        break
      } catch (error) {
        if (attempt > 50 || !/being accessed by other users/.test((error as Error).message)) throw error
        await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200))
      }
    }
  } finally {
    await admin.end()
  }
  t.teardown(async () => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await client.end()
  })
  return databaseUrl(adminUrl, name)
}

export function testConfig (url: string, overrides: Record<string, string> = {}): AppConfig {
  return requireSecrets(loadConfig({
    DATABASE_URL: url,
    LOG_LEVEL: 'silent',
    SESSION_SECRET: 'test-session-secret-0123456789abcdef',
    ENCRYPTION_KEY: 'test-encryption-key-0123456789abcdef',
    GATEWAY_TOKEN,
    ...overrides
  }))
}

/** Captures every log line the app writes. */
export function logCapture () {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(...chunk.toString().split('\n').filter(Boolean)); done() } })
  return { stream, lines, text: () => lines.join('\n') }
}

export interface TestApp { app: KeymeterApp, url: string, config: AppConfig }

export async function buildTestApp (t: Test, options: { env?: Record<string, string>, logStream?: NodeJS.WritableStream, url?: string } = {}): Promise<TestApp> {
  const url = options.url ?? await createDatabase(t)
  const config = testConfig(url, { ...(options.logStream !== undefined && { LOG_LEVEL: 'info' }), ...options.env })
  const app = await buildApp(config, { logStream: options.logStream })
  await app.ready()
  t.teardown(() => app.close())
  return { app, url, config }
}

export interface Signed { id: string, token: string, headers: { authorization: string } }

/** Creates a user with the role and signs them in; returns their bearer headers. */
export async function signIn (app: KeymeterApp, role: 'admin' | 'user', username = `${role}-${randomBytes(4).toString('hex')}`): Promise<Signed> {
  const password = 'correct-horse-battery'
  const user = await app.prisma.user.create({ data: { username, email: `${username}@example.com`, role, passwordHash: await hashPassword(password) } })
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: username, password } })
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.body}`)
  const token = res.json().access_token as string
  return { id: user.id, token, headers: { authorization: `Bearer ${token}` } }
}

/**
 * Polls `probe` until `done` accepts its answer and returns that answer; throws naming `what`
 * when `timeoutMs` passes first. For conditions another process or timer brings about.
 */
export async function waitUntil<T> (what: string, probe: () => Promise<T>, done: (value: T) => boolean, options: { timeoutMs?: number, intervalMs?: number } = {}): Promise<T> {
  const { timeoutMs = 10_000, intervalMs = 20 } = options
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (done(value)) return value
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
