// What every benchmark needs: a database of its own (embedded PostgreSQL in a
// scratch directory, or BENCH_DATABASE_URL), the app listening on a free port in a
// child process (so the load generator does not steal the server's event loop), and a
// load's figures (autocannon's closed loop, or bench/paced.ts's fixed rate) as one line.
import { fork, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { loadConfig, requireSecrets, type AppConfig } from '../src/config.js'
import { createDatabase } from '../src/db/prisma.js'
import { applyMigrations } from '../src/db/migrate.js'
import { createKeyring } from '../src/lib/keyring.js'
import { paced, type PacedOptions, type PacedResult } from './paced.js'
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
    // `ADMISSION_HOLD_VACUUM_SECONDS=0` measures reservations without the holds' vacuum
    ADMISSION_HOLD_VACUUM_SECONDS: process.env.ADMISSION_HOLD_VACUUM_SECONDS,
    SESSION_SECRET: 'bench-session-secret-0123456789abcdef',
    ENCRYPTION_KEY: 'bench-encryption-key-0123456789abcdef',
    GATEWAY_TOKEN
  }))
}

export interface Bench {
  url: string
  prisma: PrismaClient
  config: AppConfig
  keyring: ReturnType<typeof createKeyring>
  /** the server process's CPU time so far (user + system), in microseconds */
  serverCpu: () => Promise<number>
  /** the server's event-loop delay since the last call (p99 and max, ms); the call starts a new count */
  serverLoop: () => Promise<LoopDelay>
  /** PostgreSQL's CPU time so far, µs (its postmaster and every backend, exited ones included); null for BENCH_DATABASE_URL */
  databaseCpu: () => number | null
  /** the server process's resident memory now, bytes (null where /proc cannot tell) */
  serverRss: () => number | null
  close: () => Promise<void>
}

export async function startBench (): Promise<Bench> {
  let databaseUrl = process.env.BENCH_DATABASE_URL
  let stopDatabase = async () => {}
  let databaseCpu = (): number | null => null
  if (databaseUrl === undefined) {
    const { startEmbedded } = await import('../src/db/embedded.js')
    const dir = await mkdtemp(join(tmpdir(), 'keymeter-bench-'))
    await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
    const database = await startEmbedded({ dataDir: join(dir, 'pg'), password: 'bench', database: 'keymeter_bench', persistent: false, flags: (process.env.BENCH_PG_FLAGS ?? '').split(' ').filter((f) => f !== '') })
    databaseUrl = database.url
    databaseCpu = clusterCpu(join(dir, 'pg'))
    stopDatabase = async () => { await database.stop(); await rm(dir, { recursive: true, force: true }) }
  }
  await applyMigrations(databaseUrl)
  const config = benchConfig(databaseUrl)
  // the server runs as `npm start` runs it: the compiled dist/ (built by `npm run bench`) with
  // SERVER_NODE_ARGS; BENCH_SERVER_NODE_ARGS adds more,
  // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the server alone
  const nodeArgs = [...SERVER_NODE_ARGS, ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')]
  const server: ChildProcess = fork(fileURLToPath(new URL('./serve.mjs', import.meta.url)), [JSON.stringify(config)], { execArgv: nodeArgs, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const url = await new Promise<string>((resolve, reject) => {
    server.once('message', (message) => resolve(String(message)))
    server.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
  })
  // the adapter does not end a pool it was given: closing ends it, before the database stops
  const { pool, prisma } = createDatabase(databaseUrl)
  // one IPC question and its answer, told from other answers by its field
  const ask = async <T>(question: 'cpu' | 'loop') => new Promise<T>((resolve) => {
    const answer = (message: unknown) => {
      if (typeof message !== 'object' || message === null || !(question in message)) return
      server.off('message', answer)
      resolve((message as Record<string, T>)[question]!)
    }
    server.on('message', answer)
    server.send(question)
  })
  const serverCpu = async () => {
    const { user, system } = await ask<NodeJS.CpuUsage>('cpu')
    return user + system
  }
  return {
    url,
    prisma,
    serverCpu,
    serverLoop: async () => await ask<LoopDelay>('loop'),
    databaseCpu,
    serverRss: () => {
      try {
        const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))
        return kb === null ? null : Number(kb[1]) * 1024
      } catch {
        return null
      }
    },
    config,
    keyring: createKeyring(config.ENCRYPTION_KEY),
    close: async () => {
      await prisma.$disconnect()
      await pool.end()
      const exited = new Promise((resolve) => server.once('exit', resolve))
      server.kill('SIGTERM')
      await exited
      await stopDatabase()
    }
  }
}

/** The share of every core's time since the call that the fields at `part` of /proc/stat's first line (user … steal) took, percent; null where not reported. */
function cpuShareMeter (part: (delta: number[]) => number): () => number | null {
  const read = (): number[] | null => {
    try {
      const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
      const fields = line.trim().split(/\s+/).slice(1, 9).map(Number)
      return fields.length === 8 ? fields : null
    } catch {
      return null
    }
  }
  const start = read()
  return () => {
    const end = read()
    if (start === null || end === null) return null
    const delta = end.map((value, i) => value - start[i]!)
    const total = delta.reduce((a, b) => a + b, 0)
    return total === 0 ? 0 : Math.round(100 * part(delta) / total)
  }
}

/** CPU steal (from /proc/stat) since the call, in percent, so a run on a shared host says what it lost; null where not reported. */
export const stealMeter = () => cpuShareMeter((delta) => delta[7]!)

/** The machine's busy share since the call (all but idle and iowait), percent. */
export const busyMeter = () => cpuShareMeter((delta) => delta.reduce((a, b) => a + b, 0) - delta[3]! - delta[4]!)

/**
 * A cluster's CPU time so far (µs), from /proc: its postmaster's own and its waited-for
 * children's (the backends that exited), plus every live child's. Clock ticks of 10 ms:
 * read it over many statements.
 */
export function clusterCpu (dataDir: string): () => number | null {
  const TICK_US = 10_000
  // /proc/PID/stat: the fields after the command's closing parenthesis, from field 3 (state)
  const fields = (pid: string) => readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
  return () => {
    try {
      const postmaster = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]!.trim()
      const own = fields(postmaster)
      // utime, stime, cutime, cstime: fields 14–17, here 11–14
      let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])
      for (const pid of readdirSync('/proc')) {
        if (!/^\d+$/.test(pid) || pid === postmaster) continue
        try {
          const f = fields(pid)
          if (f[1] === postmaster) ticks += Number(f[11]) + Number(f[12])
        } catch {} // exited meanwhile: its time is in the postmaster's children's
      }
      return ticks * TICK_US
    } catch {
      return null
    }
  }
}

/**
 * " · CPU µs/request: server N, PostgreSQL N, bench N · machine busy N%" for a run's line
 * (what was not measured is left out): whether a run was bound by the two cores, and by whom.
 */
export function cpuNote (run: Run): string {
  if (run.cpuPerRequest === null) return ''
  const database = run.databaseCpuPerRequest === null ? '' : `, PostgreSQL ${fmt(run.databaseCpuPerRequest)}`
  const busy = run.busy === null ? '' : ` · machine busy ${run.busy}%`
  const loop = run.loop === null ? '' : ` · server event loop delay p99 ${fmt(run.loop.p99, 1)} ms, max ${fmt(run.loop.max, 1)} ms`
  return ` · CPU µs/request: server ${fmt(run.cpuPerRequest)}${database}, bench ${fmt(run.benchCpuPerRequest)}${busy}${loop}`
}

/** " · steal N%" for a run's line, or nothing where steal is not measured. */
export const stealNote = (percent: number | null) => percent === null ? '' : ` · steal ${percent}%`

export interface LoopDelay { p99: number, max: number }

export interface Run {
  requestsPerSecond: number
  p50: number
  p99: number
  errors: number
  non2xx: number
  total: number
  steal: number | null
  /** the server's CPU time per answered request, µs (null when the run was not given the bench) */
  cpuPerRequest: number | null
  /** PostgreSQL's (every backend's), µs per answered request; null for BENCH_DATABASE_URL or without the bench */
  databaseCpuPerRequest: number | null
  /** this process's (the load generator and whatever else the bench runs meanwhile, such as a settler), µs per answered request */
  benchCpuPerRequest: number
  /** the share of the machine's CPU time (every core) that was busy, percent; null where /proc/stat is not read */
  busy: number | null
  /** the server's event-loop delay over the run (null when the run was not given the bench) */
  loop: LoopDelay | null
}

/** What a load generator reports of a run; `measured` adds the machine's side. */
type LoadFigures = Pick<Run, 'requestsPerSecond' | 'p50' | 'p99' | 'errors' | 'non2xx' | 'total'> & {
  /** the requests the CPU figures are shared over, when more than `total` were sent in the measured time (a warm-up) */
  sentInAll?: number
}

/** The server process a run's CPU (and, when it reports it, event-loop delay) is read from. */
export interface MeasuredServer { cpu: () => Promise<number>, loop?: () => Promise<LoopDelay> }

/**
 * A load's run measured: given the bench, also the server's CPU per request (counting what else the server did meanwhile),
 * PostgreSQL's and the event loop's; the server is the bench's unless another is given (bench/floor.ts).
 */
async function measured<L extends LoadFigures> (load: () => Promise<L>, bench?: Bench, server: MeasuredServer | undefined = bench && { cpu: bench.serverCpu, loop: bench.serverLoop }): Promise<Run & L> {
  const steal = stealMeter()
  const busy = busyMeter()
  const benchBefore = process.cpuUsage()
  const cpuBefore = await server?.cpu()
  await server?.loop?.()
  const databaseBefore = bench?.databaseCpu() ?? null
  const result = await load()
  const cpuAfter = await server?.cpu()
  const loop = await server?.loop?.() ?? null
  const databaseAfter = bench?.databaseCpu() ?? null
  const benchCpu = process.cpuUsage(benchBefore)
  const requests = result.sentInAll ?? result.total
  const perRequest = (us: number) => us / Math.max(1, requests)
  return {
    ...result,
    steal: steal(),
    busy: busy(),
    loop,
    benchCpuPerRequest: perRequest(benchCpu.user + benchCpu.system),
    databaseCpuPerRequest: databaseBefore === null || databaseAfter === null ? null : perRequest(databaseAfter - databaseBefore),
    cpuPerRequest: cpuBefore === undefined || cpuAfter === undefined || requests === 0 ? null : (cpuAfter - cpuBefore) / requests
  }
}

const gatewayHeaders = { 'content-type': 'application/json', authorization: `Bearer ${GATEWAY_TOKEN}` }

/** One autocannon run (a closed loop: each connection sends when its last answer came), measured. */
export async function hammer (options: autocannon.Options, bench?: Bench): Promise<Run> {
  return await measured(async () => {
    const result = await autocannon({ ...options, headers: { ...gatewayHeaders, ...options.headers } })
    return { requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors, non2xx: result.non2xx, total: result.requests.total }
  }, bench)
}

/** One open-loop run at a fixed rate (bench/paced.ts), measured (on `server`, when not the bench's); `offered` is the rate asked for, `max` the slowest answer (ms). */
export async function pacedRun<C> (options: Omit<PacedOptions<C>, 'headers'>, bench?: Bench, server?: MeasuredServer): Promise<Run & { offered: number, max: number, connections: number, stalls: PacedResult['stalls'] }> {
  return await measured(async () => {
    const result = await paced({ ...options, headers: gatewayHeaders })
    return { ...result, total: result.answered, offered: options.rate }
  }, bench, server)
}

/** "  slowest seconds: HH:MM:SS N ms, …" for an open-loop run's second line (its stalls' wall-clock seconds, to match against PostgreSQL's log). */
export const slowestNote = (stalls: PacedResult['stalls']) => `  slowest seconds: ${stalls.map((s) => `${s.at.toISOString().slice(11, 19)} ${fmt(s.max)} ms`).join(', ')}`

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

/**
 * With pg_stat_statements preloaded (BENCH_PG_FLAGS="-c shared_preload_libraries=pg_stat_statements
 * -c pg_stat_statements.track_planning=on"), a meter of PostgreSQL's statements: started, it
 * resets the counts; read, it prints the `top` costliest since, planning and execution apart,
 * and the tables read by more than 100 sequential scans.
 * Without the library it prints nothing.
 */
export async function statementsMeter (bench: Bench, top = 8): Promise<() => Promise<void>> {
  if (!(process.env.BENCH_PG_FLAGS ?? '').includes('pg_stat_statements')) return async () => {}
  await bench.prisma.$executeRawUnsafe('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
  await bench.prisma.$queryRawUnsafe('SELECT pg_stat_statements_reset()')
  // the tables read by sequential scans meanwhile: a scan a plan made over an empty table keeps choosing
  const scans = async () => new Map((await bench.prisma.$queryRawUnsafe<Array<{ relname: string, seq_scan: bigint, seq_tup_read: bigint }>>(
    'SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables')).map((row) => [row.relname, row]))
  const scansBefore = await scans()
  return async () => {
    for (const [table, row] of await scans()) {
      const before = scansBefore.get(table)
      const count = Number(row.seq_scan - (before?.seq_scan ?? 0n))
      const tuples = Number(row.seq_tup_read - (before?.seq_tup_read ?? 0n))
      if (count > 100) console.log(`  ${table}: ${fmt(count)} sequential scans reading ${fmt(tuples)} rows`)
    }
    const rows = await bench.prisma.$queryRaw<Array<{ calls: bigint, plans: bigint, exec: number, plan: number, query: string }>>`
      SELECT calls, plans, total_exec_time AS exec, total_plan_time AS plan, query FROM pg_stat_statements
       WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time + total_plan_time DESC LIMIT ${top}`
    for (const row of rows) {
      const calls = Number(row.calls)
      console.log(`  ${fmt(calls).padStart(7)} calls  exec ${fmt(row.exec / calls, 3)} ms  plan ${fmt(row.plan / Math.max(1, Number(row.plans)), 3)} ms × ${fmt(Number(row.plans))}  total ${fmt(row.exec + row.plan)} ms  ${row.query.replace(/\s+/g, ' ').slice(0, 90)}`)
    }
  }
}
