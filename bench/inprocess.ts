// npm run bench -- inprocess [--against DIR]: gateway verify's cost inside the app, with no
// socket, kernel or load generator: the compiled app (dist/) on a scratch database, called
// through app.inject one call at a time. The HTTP figures of `verify` move by a quarter
// between runs of the same code on this shared host, and so does this one between runs.
// --against DIR (another checkout, built with `npm run build`) loads that build too, in the
// same process on its own database of the same server, and alternates short slices of
// calls between the two: both meet the same host at the same moments, so the ratio holds
// where the absolute figures drift.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startEmbedded } from '../src/db/embedded.js'
import { completion } from './gateway.js'
import { benchConfig, fmt, GATEWAY_TOKEN, stealMeter, stealNote } from './harness.js'

const ROUNDS = 6
const CALLS = 20_000
/** calls a build makes before the other takes its turn, in a paired run */
const SLICE = 1_000

interface Build {
  label: string
  call: () => Promise<void>
  close: () => Promise<void>
}

/** One build's app on its own database: migrated by that build's applier, with a key, a provider and a price made by its own code. */
async function load (root: string, label: string, databaseUrl: string): Promise<Build> {
  const dist = (file: string) => pathToFileURL(join(root, 'dist', file)).href
  // variables, so the type checker does not need dist/; both builds share these modules' signatures
  const { applyMigrations } = await import(dist('db/migrate.js')) as typeof import('../src/db/migrate.js')
  const { buildApp } = await import(dist('app.js')) as typeof import('../src/app.js')
  const { createKey } = await import(dist('modules/keys/service.js')) as typeof import('../src/modules/keys/service.js')
  await applyMigrations(databaseUrl)
  const app = await buildApp(benchConfig(databaseUrl))
  await app.ready()
  const owner = await app.prisma.user.create({ data: { username: 'bench', passwordHash: 'x', role: 'admin' } })
  const key = await createKey(app.prisma, app.keyring, owner.id, { name: 'bench', rate_limit: 1_000_000, concurrent_limit: 100_000, daily_cost_limit_usd: 1e8 }, false)
  const provider = await app.prisma.provider.create({ data: { name: 'bench' } })
  await app.prisma.modelPrice.create({ data: { model: 'claude-sonnet-4', tiers: [{ up_to: null, input: 3_000_000_000, output: 15_000_000_000, cache_write_5m: 3_750_000_000, cache_write_1h: 6_000_000_000, cache_read: 300_000_000 }] } })
  const headers = { authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-type': 'application/json' }
  const events = Array.from({ length: 500 }, (_, i) => completion(key.id, provider.id, i))
  const seeded = await app.inject({ method: 'POST', url: '/api/gateway/usage', headers, payload: JSON.stringify({ events }) })
  if (seeded.statusCode !== 200) throw new Error(`${label}: usage answered ${seeded.statusCode}: ${seeded.body}`)
  const payload = JSON.stringify({ key: key.key, model: 'claude-sonnet-4', api_format: 'claude:messages' })
  return {
    label,
    call: async () => {
      const res = await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers, payload })
      if (res.statusCode !== 200) throw new Error(`${label}: verify answered ${res.statusCode}: ${res.body}`)
    },
    close: async () => { await app.close() }
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!

/** Runs `calls` calls of each build, in slices taken in turn; the µs a call (wall and CPU) of each. */
async function round (builds: Build[], calls: number): Promise<Array<{ wall: number, cpu: number }>> {
  const totals = builds.map(() => ({ wall: 0, cpu: 0 }))
  for (let done = 0; done < calls; done += SLICE) {
    for (const [i, build] of builds.entries()) {
      const cpu = process.cpuUsage()
      const started = performance.now()
      for (let c = 0; c < SLICE; c++) await build.call()
      totals[i]!.wall += (performance.now() - started) * 1000
      const used = process.cpuUsage(cpu)
      totals[i]!.cpu += used.user + used.system
    }
  }
  return totals.map((total) => ({ wall: total.wall / calls, cpu: total.cpu / calls }))
}

export async function inprocess (args: string[] = []): Promise<void> {
  const at = args.indexOf('--against')
  const against = at === -1 ? undefined : args[at + 1]
  if (at !== -1 && (against === undefined || against.startsWith('--'))) throw new Error('--against needs the folder of another built checkout')
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-bench-'))
  await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
  const database = await startEmbedded({ dataDir: join(dir, 'pg'), password: 'bench', database: 'keymeter_bench', persistent: false })
  const builds: Build[] = []
  try {
    builds.push(await load(resolve(import.meta.dirname, '..'), 'this build', database.url))
    if (against !== undefined) {
      const other = new URL(database.url)
      other.pathname = '/keymeter_against'
      const { Client } = await import('pg')
      const admin = new Client({ connectionString: database.url })
      await admin.connect()
      await admin.query('CREATE DATABASE keymeter_against').finally(async () => { await admin.end() })
      builds.push(await load(resolve(against), against, other.toString()))
    }
    console.log(`verify through app.inject, the cache on (VERIFY_CACHE_TTL_MS=${benchConfig('postgres://x/y').VERIFY_CACHE_TTL_MS}), ${CALLS} calls a round${builds.length > 1 ? ` per build, in slices of ${SLICE} taken in turn` : ''}; round 1 warms the JIT`)
    const figures = builds.map(() => ({ walls: [] as number[], cpus: [] as number[] }))
    for (let r = 1; r <= ROUNDS; r++) {
      const steal = stealMeter()
      const results = await round(builds, CALLS)
      const line = results.map((result, i) => `${builds[i]!.label} ${fmt(result.wall, 1)} µs (CPU ${fmt(result.cpu, 1)})`).join(', ')
      const ratio = results.length > 1 ? `; ratio ${fmt(results[0]!.wall / results[1]!.wall, 3)}` : ''
      console.log(`round ${r}: ${line}${ratio}${stealNote(steal())}`)
      if (r > 1) for (const [i, result] of results.entries()) { figures[i]!.walls.push(result.wall); figures[i]!.cpus.push(result.cpu) }
    }
    for (const [i, build] of builds.entries()) {
      console.log(`median of rounds 2-${ROUNDS}, ${build.label}: ${fmt(median(figures[i]!.walls), 1)} µs a call, ${fmt(median(figures[i]!.cpus), 1)} µs of CPU`)
    }
    if (builds.length > 1) {
      const ratios = figures[0]!.walls.map((wall, r) => wall / figures[1]!.walls[r]!)
      console.log(`median ratio, this build / ${builds[1]!.label}: ${fmt(median(ratios), 3)} (below 1: this build is faster)`)
    }
  } finally {
    for (const build of builds) await build.close()
    await database.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
