// npm run bench -- inprocess: gateway verify's cost inside the app, with no socket, kernel
// or load generator: the compiled app (dist/) on a scratch database, called through
// app.inject one call at a time, 20,000 calls a round. The HTTP figures of `verify` move
// by a quarter between runs of the same code on this shared host; this one does not, so
// it is the figure to compare when a change touches the request path.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { applyMigrations } from '../src/db/migrate.js'
import { startEmbedded } from '../src/db/embedded.js'
import { createKeyring } from '../src/lib/keyring.js'
import { completion, fixtures } from './gateway.js'
import { benchConfig, fmt, GATEWAY_TOKEN, stealMeter, stealNote, type Bench } from './harness.js'

const ROUNDS = 6
const CALLS = 20_000

export async function inprocess (): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-bench-'))
  await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
  const database = await startEmbedded({ dataDir: join(dir, 'pg'), password: 'bench', database: 'keymeter_bench', persistent: false })
  try {
    await applyMigrations(database.url)
    const config = benchConfig(database.url)
    const compiled = '../dist/app.js' // built by `npm run bench`; a variable, so the type checker does not need dist/
    const { buildApp } = await import(compiled) as typeof import('../src/app.js')
    const app = await buildApp(config)
    try {
      await app.ready()
      const { key, provider } = await fixtures({ prisma: app.prisma, keyring: createKeyring(config.ENCRYPTION_KEY) } as unknown as Bench)
      const headers = { authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-type': 'application/json' }
      await app.inject({ method: 'POST', url: '/api/gateway/usage', headers, payload: JSON.stringify({ events: Array.from({ length: 500 }, (_, i) => completion(key.id, provider.id, i)) }) })
      const payload = JSON.stringify({ key: key.key, model: 'claude-sonnet-4', api_format: 'claude:messages' })
      const call = async () => {
        const res = await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers, payload })
        if (res.statusCode !== 200) throw new Error(`verify answered ${res.statusCode}: ${res.body}`)
      }
      console.log(`verify through app.inject, the cache on (VERIFY_CACHE_TTL_MS=${config.VERIFY_CACHE_TTL_MS}); round 1 warms the JIT`)
      const walls: number[] = []
      const cpus: number[] = []
      for (let round = 1; round <= ROUNDS; round++) {
        const steal = stealMeter()
        const cpu = process.cpuUsage()
        const started = performance.now()
        for (let i = 0; i < CALLS; i++) await call()
        const wall = (performance.now() - started) * 1000 / CALLS
        const used = process.cpuUsage(cpu)
        const cpuPerCall = (used.user + used.system) / CALLS
        if (round > 1) { walls.push(wall); cpus.push(cpuPerCall) }
        console.log(`round ${round}: ${fmt(wall, 1)} µs a call, ${fmt(cpuPerCall, 1)} µs of CPU${stealNote(steal())}`)
      }
      const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!
      console.log(`median of rounds 2-${ROUNDS}: ${fmt(median(walls), 1)} µs a call, ${fmt(median(cpus), 1)} µs of CPU`)
    } finally {
      await app.close()
    }
  } finally {
    await database.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
