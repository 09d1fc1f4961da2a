// The server process (src/server.ts) on its own PostgreSQL, under gateway ingestion,
// through three faults: its connections terminated (pg_terminate_backend, checked-out
// and idle), the postmaster killed (SIGKILL, then started again: crash recovery), and a
// clean restart (fast shutdown, then start). The process stays up; while the database is
// away /ready and the API answer 503 (database_unavailable, Retry-After) and /health 200;
// it recovers by itself; every batch is resent until acknowledged, and after all three no
// acknowledged event is lost, none is counted twice, and the money books hold.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { resolve } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { freePort, initCluster, postgresBinaries, postgresUser } from '../../src/db/embedded.js'
import { applyMigrations } from '../../src/db/migrate.js'
import { buildTestApp, GATEWAY_TOKEN } from '../helper.js'
import { spawnServerProcess } from '../process.js'
import { assertConsistent } from '../modules/gateway/fixtures.js'

const PASSWORD = 'restart-test'
const ADMIN_PASSWORD = 'restart-admin-password'
const SENDERS = 4
const BATCH = 200
const AT = '2026-03-01T12:00:00.000Z'

/** Resolves once `condition` resolves true, polling every 25 ms; fails past `ms`. */
async function until (condition: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** A PostgreSQL cluster of this file's own, whose postmaster the test kills and starts. */
class Cluster {
  child: ChildProcess | undefined
  readonly adminUrl: string
  constructor (readonly dataDir: string, readonly port: number) {
    this.adminUrl = `postgresql://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`
  }

  static async create (t: Test): Promise<Cluster> {
    const dataDir = resolve(`.data/test/restart-${process.pid}-${randomBytes(4).toString('hex')}`)
    const port = await freePort()
    await initCluster(dataDir, PASSWORD, await postgresUser())
    const cluster = new Cluster(dataDir, port)
    t.teardown(async () => {
      await cluster.stop('SIGINT').catch(() => {})
      await rm(dataDir, { recursive: true, force: true })
    })
    await cluster.start()
    return cluster
  }

  /** Starts the postmaster and waits until it accepts connections; after a SIGKILL, retried while the old backends still hold its shared memory. */
  async start (): Promise<void> {
    const { postgres: bin } = await postgresBinaries()
    const ids = await postgresUser()
    const flags = ['-D', this.dataDir, '-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=100']
    await until(async () => {
      const child = spawn(bin, flags, { ...ids, stdio: 'ignore' })
      const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(true)))
      this.child = child
      for (;;) {
        if (await Promise.race([exited, new Promise<false>((resolve) => setTimeout(() => resolve(false), 50))])) return false
        if (await this.accepts()) return true
      }
    }, 60_000, 'PostgreSQL to start')
  }

  async accepts (): Promise<boolean> {
    const client = new pg.Client({ connectionString: this.adminUrl })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('SELECT 1')
      return true
    } catch {
      return false
    } finally {
      await client.end().catch(() => {})
    }
  }

  /** SIGINT: fast shutdown; SIGKILL: the postmaster dies at once (its backends exit when they notice). Resolves when the postmaster is gone. */
  async stop (signal: 'SIGINT' | 'SIGKILL'): Promise<void> {
    const child = this.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill(signal)
    await exited
  }

  async sql<T extends pg.QueryResultRow> (text: string, values: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const url = new URL(this.adminUrl)
    url.pathname = `/${database}`
    const client = new pg.Client({ connectionString: url.toString() })
    client.on('error', () => {})
    await client.connect()
    try {
      return (await client.query<T>(text, values)).rows
    } finally {
      await client.end()
    }
  }
}

interface Answer { status: number, retryAfter: string | null, body: any }

/** The keymeter process, driven over HTTP. */
class Server {
  out = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  constructor (readonly child: ChildProcess, readonly port: number) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { this.out += chunk })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.out += chunk })
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  }

  get running (): boolean { return this.child.exitCode === null && this.child.signalCode === null }

  async call (method: string, path: string, body?: object, headers: Record<string, string> = {}): Promise<Answer> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, {
      method, headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers }, ...(body !== undefined && { body: JSON.stringify(body) })
    })
    const text = await res.text()
    let parsed: unknown = text
    try { parsed = JSON.parse(text) } catch { /* not JSON */ }
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: parsed }
  }
}

async function startServer (t: Test, url: string): Promise<Server> {
  const spawned = await spawnServerProcess(t, {
    LOG_LEVEL: 'warn', DATABASE_URL: url, SESSION_SECRET: 'restart-test-session-secret-0123456789',
    ENCRYPTION_KEY: 'restart-test-encryption-key-0123456789', GATEWAY_TOKEN, ADMIN_PASSWORD, CLEANUP_CRON: 'off'
  })
  const server = new Server(spawned.child, spawned.port)
  const listening = async () => {
    try { return (await server.call('GET', '/health')).status === 200 } catch { return false }
  }
  await until(async () => !server.running || await listening(), 60_000, 'the server to listen')
  if (!server.running) throw new Error(`the server exited at boot:\n${server.out}`)
  return server
}

interface Load {
  /** request ids of every event acknowledged (in a 200), each batch once */
  acknowledged: Set<string>
  /** statuses other than 200 and 503, and transport errors (the process gone) */
  failures: string[]
  /** 503 answers, by error type */
  unavailable: Map<string, number>
  batches: number
  stop: () => Promise<void>
}

const GATEWAY_HEADERS = { authorization: `Bearer ${GATEWAY_TOKEN}` }

/** SENDERS loops over HTTP, each sending BATCH completions and resending a batch until it is acknowledged (as the gateway does). */
function startLoad (server: Server, keyId: string): Load {
  let running = true
  const load: Load = { acknowledged: new Set(), failures: [], unavailable: new Map(), batches: 0, stop: async () => {} }
  const loop = async (sender: number) => {
    for (let batch = 0; running; batch++) {
      const events = Array.from({ length: BATCH }, (_, i) => ({
        type: 'complete', request_id: `s${sender}-b${batch}-e${i}`, api_key_id: keyId, model: 'm', created_at: AT,
        status: 'completed', status_code: 200, input_tokens: 1000 + i, output_tokens: 100
      }))
      for (;;) {
        let answer: Answer
        try {
          answer = await server.call('POST', '/api/gateway/usage', { events }, GATEWAY_HEADERS)
        } catch (error) {
          load.failures.push(`transport: ${(error as Error).message}`)
          if (!server.running) return
          continue
        }
        if (answer.status === 200) {
          for (const event of events) load.acknowledged.add(event.request_id)
          load.batches++
          break
        }
        if (answer.status !== 503) { load.failures.push(`${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`); return }
        const type = String(answer.body?.error?.type)
        load.unavailable.set(type, (load.unavailable.get(type) ?? 0) + 1)
        // the gateway's back-off between resends
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  }
  const loops = Array.from({ length: SENDERS }, (_, sender) => loop(sender))
  load.stop = async () => { running = false; await Promise.all(loops) }
  return load
}

t.test('the server survives terminated connections, a killed postmaster and a restart under ingestion', async (t) => {
  const cluster = await Cluster.create(t)
  await cluster.sql('CREATE DATABASE keymeter')
  const url = cluster.adminUrl.replace(/\/postgres$/, '/keymeter')
  await applyMigrations(url)
  const server = await startServer(t, url)

  const login = await server.call('POST', '/api/auth/login', { email: 'admin', password: ADMIN_PASSWORD })
  t.equal(login.status, 200, 'the admin signs in')
  const admin = { authorization: `Bearer ${login.body.access_token as string}` }
  const must = async (method: string, path: string, body?: object) => {
    const answer = await server.call(method, path, body, admin)
    if (answer.status >= 300) throw new Error(`${method} ${path} → ${answer.status} ${JSON.stringify(answer.body)}`)
    return answer.body
  }
  await must('POST', '/api/admin/model-prices', { model: 'm', effective_from: '2020-01-01T00:00:00Z', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await must('POST', '/api/admin/users', { username: 'restarted', password: 'correct-horse-battery', quota_usd: 1_000_000 })
  const key = await must('POST', `/api/admin/users/${user.id as string}/api-keys`, { name: 'under faults' })

  const load = startLoad(server, key.id)
  const acknowledgedAfter = async (count: number, what: string) => {
    const target = load.batches + count
    await until(() => load.batches >= target || !server.running, 120_000, what)
  }
  await acknowledgedAfter(SENDERS, 'the first batches')

  const figures: string[] = []

  await t.test('pg_terminate_backend of every connection of the server, repeatedly', async (t) => {
    let terminated = 0
    for (let round = 0; round < 5; round++) {
      const rows = await cluster.sql<{ ok: boolean }>(`
        SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = 'keymeter' AND pid <> pg_backend_pid()`)
      terminated += rows.length
      await acknowledgedAfter(1, 'a batch after the termination')
    }
    t.ok(terminated >= 5, `${terminated} connections terminated (checked out and idle)`)
    t.ok(server.running, 'the process is still up')
    await acknowledgedAfter(SENDERS, 'batches after the terminations')
  })

  /** Stops the database with `signal`, checks the answers while it is away, starts it, and times the recovery. */
  const outage = async (t: Test, signal: 'SIGKILL' | 'SIGINT', label: string) => {
    await cluster.stop(signal)
    await until(async () => (await server.call('GET', '/ready')).status === 503, 30_000, '/ready to answer 503')
    const ready = await server.call('GET', '/ready')
    t.match(ready, { status: 503, body: { status: 'not_ready' } }, '/ready answers 503 while the database is away')
    t.match(await server.call('GET', '/health'), { status: 200, body: { status: 'ok' } }, '/health stays 200')
    const usage = await server.call('POST', '/api/gateway/usage', { events: [{ type: 'start', request_id: `probe-${label}`, api_key_id: key.id, model: 'm' }] }, GATEWAY_HEADERS)
    t.match(usage, { status: 503, retryAfter: /^\d+$/, body: { error: { type: 'database_unavailable' }, request_id: String } }, 'a usage batch answers 503 database_unavailable with Retry-After')
    const adminRead = await server.call('GET', '/api/admin/users', undefined, admin)
    t.match(adminRead, { status: 503, retryAfter: /^\d+$/, body: { error: { type: 'database_unavailable' } } }, 'an admin call answers 503 database_unavailable')
    const verify = await server.call('POST', '/api/gateway/keys/verify', { key: 'sk-' + 'a'.repeat(48), model: 'm' }, GATEWAY_HEADERS)
    t.equal(verify.status, 503, 'a verify answers 503')
    t.ok(server.running, 'the process is still up while the database is away')

    await cluster.start()
    const started = Date.now()
    await until(async () => (await server.call('GET', '/ready')).status === 200, 60_000, '/ready to answer 200 again')
    const readyAfter = Date.now() - started
    const batches = load.batches
    await until(() => load.batches > batches || !server.running, 60_000, 'a batch acknowledged after the restart')
    const batchAfter = Date.now() - started
    figures.push(`${label}: /ready 200 ${readyAfter} ms after the database accepted connections, a batch acknowledged after ${batchAfter} ms`)
    t.ok(server.running, 'the process recovered by itself')
    t.equal((await server.call('GET', '/api/admin/users', undefined, admin)).status, 200, 'admin calls succeed again')
    await acknowledgedAfter(SENDERS, 'batches after the restart')
  }

  await t.test('the postmaster killed (SIGKILL), then started again', (t) => outage(t, 'SIGKILL', 'postmaster SIGKILL'))
  await t.test('a clean restart (fast shutdown, then start)', (t) => outage(t, 'SIGINT', 'fast shutdown'))

  await load.stop()
  for (const line of figures) t.comment(line)
  t.comment(`${load.batches} batches acknowledged; 503 answers resent: ${JSON.stringify(Object.fromEntries(load.unavailable))}`)
  t.ok(server.running, 'the process stayed up through all three faults')
  t.same(load.failures, [], 'no answer other than 200 or 503, no transport error')
  t.notMatch(server.out, /Unhandled|uncaught/i, 'no unhandled error logged')

  const { app } = await buildTestApp(t, { url })
  const rows = await app.prisma.$queryRawUnsafe<Array<{ request_id: string, status: string, input_tokens: number }>>(
    `SELECT request_id, status::text AS status, input_tokens FROM usage WHERE request_id NOT LIKE 'probe-%'`)
  const recorded = new Set(rows.map((r) => r.request_id))
  t.equal(rows.length, recorded.size)
  t.same([...load.acknowledged].filter((id) => !recorded.has(id)), [], 'no acknowledged event is lost')
  t.same(rows.filter((r) => !load.acknowledged.has(r.request_id)).map((r) => r.request_id), [], 'every recorded event was acknowledged (each batch was resent until it was)')
  t.same(rows.filter((r) => r.status !== 'completed' || r.input_tokens !== 1000 + Number(r.request_id.split('-e')[1])), [], 'each row is its completion')
  const charged = await app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id as string } })
  t.equal(charged.totalRequests, BigInt(load.acknowledged.size), 'the key counts each acknowledged event once')
  await assertConsistent(t, app, 'after the faults: ')
})
