// What every benchmark needs: a database of its own (embedded PostgreSQL in a
// scratch directory, or BENCH_DATABASE_URL), the app listening on a free port in a
// child process (so the load generator does not steal the server's event loop), and
// autocannon's figures printed as one line.
import { fork, type ChildProcess } from 'node:child_process'
import { Agent, request } from 'node:http'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { loadConfig, requireSecrets, type AppConfig } from '../src/config.js'
import { createPrisma } from '../src/db/prisma.js'
import { applyMigrations } from '../src/db/migrate.js'
import { createKeyring } from '../src/lib/keyring.js'
import type { PrismaClient } from '../src/generated/prisma/client.js'

export const GATEWAY_TOKEN = 'bench-gateway-token-0123456789abcdef'

/** The V8 flags `npm start` and the Dockerfile give the server (see README, Scaling). */
const SERVER_NODE_ARGS = ['--max-semi-space-size=64']

export function benchConfig (databaseUrl: string): AppConfig {
  return requireSecrets(loadConfig({
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    // `VERIFY_CACHE_TTL_MS=0 npm run bench -- verify` measures verify without its cache
    VERIFY_CACHE_TTL_MS: process.env.VERIFY_CACHE_TTL_MS,
    SESSION_SECRET: 'bench-session-secret-0123456789abcdef',
    ENCRYPTION_KEY: 'bench-encryption-key-0123456789abcdef',
    GATEWAY_TOKEN
  }))
}

export interface Bench { url: string, prisma: PrismaClient, config: AppConfig, keyring: ReturnType<typeof createKeyring>, close: () => Promise<void> }

export async function startBench (): Promise<Bench> {
  let databaseUrl = process.env.BENCH_DATABASE_URL
  let stopDatabase = async () => {}
  if (databaseUrl === undefined) {
    const { startEmbedded } = await import('../src/db/embedded.js')
    const dir = await mkdtemp(join(tmpdir(), 'keymeter-bench-'))
    await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
    const database = await startEmbedded({ dataDir: join(dir, 'pg'), password: 'bench', database: 'keymeter_bench', persistent: false })
    databaseUrl = database.url
    stopDatabase = async () => { await database.stop(); await rm(dir, { recursive: true, force: true }) }
  }
  await applyMigrations(databaseUrl)
  const config = benchConfig(databaseUrl)
  // the server runs as `npm start` runs it (SERVER_NODE_ARGS); BENCH_SERVER_NODE_ARGS adds more,
  // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the server alone
  const nodeArgs = [...SERVER_NODE_ARGS, ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')]
  const server: ChildProcess = fork(fileURLToPath(new URL('./serve.ts', import.meta.url)), [databaseUrl], { execArgv: ['--import', 'tsx', ...nodeArgs], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const url = await new Promise<string>((resolve, reject) => {
    server.once('message', (message) => resolve(String(message)))
    server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
  })
  const prisma = createPrisma(databaseUrl)
  return {
    url,
    prisma,
    config,
    keyring: createKeyring(config.ENCRYPTION_KEY),
    close: async () => {
      await prisma.$disconnect()
      const exited = new Promise((resolve) => server.once('exit', resolve))
      server.kill('SIGTERM')
      await exited
      await stopDatabase()
    }
  }
}

export interface Run { requestsPerSecond: number, p50: number, p99: number, errors: number, non2xx: number, total: number }

export async function hammer (options: autocannon.Options): Promise<Run> {
  const result = await autocannon({ ...options, headers: { 'content-type': 'application/json', authorization: `Bearer ${GATEWAY_TOKEN}`, ...options.headers } })
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
    total: result.requests.total
  }
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

export interface PacedOptions { url: string, body: string, rate: number, duration: number, connections: number }

/**
 * An open-loop load at a fixed rate: request i is due at start + i / rate whatever the
 * earlier ones are doing, and its latency runs from when it was due to its response's
 * end — so a server (or this generator) falling behind shows in the figures instead of
 * silently lowering the rate (the "coordinated omission" of closed-loop tools). Sent
 * each millisecond tick, over keep-alive `connections`.
 */
export async function paced (options: PacedOptions): Promise<Run> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections })
  const target = new URL(options.url)
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-length': Buffer.byteLength(options.body) }
  const latencies: number[] = []
  let errors = 0
  let non2xx = 0
  const send = (due: number) => new Promise<void>((resolve) => {
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers, agent }, (res) => {
      res.resume()
      res.on('end', () => {
        latencies.push(performance.now() - due)
        if (res.statusCode === undefined || res.statusCode < 200 || res.statusCode >= 300) non2xx++
        resolve()
      })
    })
    req.on('error', () => { errors++; resolve() })
    req.end(options.body)
  })
  const total = Math.floor(options.rate * options.duration)
  const start = performance.now()
  const pending: Array<Promise<void>> = []
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      while (next < total && start + next * 1000 / options.rate <= now) pending.push(send(start + next++ * 1000 / options.rate))
      if (next < total) setTimeout(tick, 1)
      else resolve()
    }
    tick()
  })
  await Promise.all(pending)
  const elapsed = (performance.now() - start) / 1000
  agent.destroy()
  const sorted = latencies.sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0
  return { requestsPerSecond: total / elapsed, p50: at(0.5), p99: at(0.99), errors, non2xx, total }
}
