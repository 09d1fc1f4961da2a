// An open-loop load: requests sent on a fixed schedule (rate per second), whatever the
// answers' speed, over keep-alive connections opened as needed. A closed loop (autocannon's
// connections, each waiting for its answer) measures throughput at saturation, where p99 is
// the queue it builds; "N requests a second at p99 ≤ M ms" is a question about a fixed
// rate. Each latency counts from the request's scheduled time, so an answer that made the
// next request wait for a free connection delays that one too (no coordinated omission).
import net from 'node:net'
import { performance } from 'node:perf_hooks'

export interface PacedOptions<C> {
  url: string
  /** requests a second */
  rate: number
  /** seconds of sending measured; answers still due after it are awaited (up to `drainSeconds`) */
  duration: number
  /** seconds of the same load sent first and not measured (connections opened, plans made, code compiled) */
  warmup?: number
  /** the most connections opened (default 256): past them, due requests wait in order */
  maxConnections?: number
  drainSeconds?: number
  headers: Record<string, string>
  /** the n-th request's body and what its answer's callback gets back */
  request: (n: number) => { body: string, context: C }
  onResponse?: (status: number, body: string, context: C) => void
}

export interface PacedResult {
  /** requests scheduled, the warm-up's included */
  sentInAll: number
  answered: number
  non2xx: number
  errors: number
  /** measured answers a second, from the measured time's start to the later of its end and the last answer */
  requestsPerSecond: number
  /** ms from each request's scheduled time to its answer */
  p50: number
  p99: number
  max: number
  /** the most connections open at once */
  connections: number
  /** the measured seconds whose slowest answer took longest (most first, up to three): when a stall came, to match against the database's log */
  stalls: Array<{ at: Date, max: number }>
}

interface Due<C> { at: number, bytes: Buffer, context: C, measured: boolean }

const HEADER_END = Buffer.from('\r\n\r\n')

/** One keep-alive connection: one request at a time, answers read by their Content-Length (Fastify's JSON answers always have one). */
class Connection<C> {
  readonly socket: net.Socket
  #buffer: Buffer = Buffer.alloc(0)
  #current: Due<C> | undefined
  #ready: Promise<void>

  constructor (host: string, port: number, private readonly answered: (due: Due<C>, status: number, body: string) => void, private readonly failed: (error: Error) => void) {
    this.socket = net.connect({ host, port, noDelay: true })
    this.#ready = new Promise((resolve) => this.socket.once('connect', () => resolve()))
    this.socket.on('data', (chunk: Buffer) => this.#read(chunk))
    this.socket.on('error', (error) => this.#fail(error))
    // the server may end a keep-alive connection: a request on it is lost, the others go elsewhere
    this.socket.on('close', () => this.#fail(new Error('the server closed a connection')))
  }

  /** it takes a request: open and not answering one */
  get idle () { return this.#current === undefined && !this.socket.destroyed }
  get closed () { return this.socket.destroyed }

  #fail (error: Error): void {
    const due = this.#current
    this.#current = undefined
    if (due !== undefined) this.failed(error)
  }

  send (due: Due<C>): void {
    this.#current = due
    void this.#ready.then(() => this.socket.write(due.bytes))
  }

  #read (chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    const end = this.#buffer.indexOf(HEADER_END)
    if (end < 0) return
    const head = this.#buffer.subarray(0, end).toString('latin1')
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)
    if (length === null) { this.#fail(new Error(`an answer without Content-Length: ${head.split('\r\n')[0]!}`)); this.socket.destroy(); return }
    const total = end + HEADER_END.length + Number(length[1])
    if (this.#buffer.length < total) return
    const body = this.#buffer.subarray(end + HEADER_END.length, total).toString('utf8')
    this.#buffer = this.#buffer.subarray(total)
    const due = this.#current!
    this.#current = undefined
    this.answered(due, Number(head.slice(9, 12)), body)
  }
}

export async function paced<C> (options: PacedOptions<C>): Promise<PacedResult> {
  const url = new URL(options.url)
  const port = Number(url.port)
  const headers = Object.entries({ ...options.headers, host: url.host, connection: 'keep-alive' }).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  const maxConnections = options.maxConnections ?? 256
  const latencies: number[] = []
  /** the slowest answer scheduled in each measured second */
  const slowest = new Map<number, number>()
  const connections: Array<Connection<C>> = []
  const waiting: Array<Due<C>> = []
  let non2xx = 0
  let errors = 0
  let outstanding = 0
  let settle: (() => void) | undefined
  let last = 0
  // once the run is over, a connection's close is no failure and nothing more is sent
  let stopped = false

  const finish = () => { outstanding--; if (outstanding === 0) settle?.() }
  const answered = (due: Due<C>, status: number, body: string) => {
    if (due.measured) {
      last = performance.now()
      latencies.push(last - due.at)
      const second = Math.floor((due.at - start) / 1000)
      slowest.set(second, Math.max(slowest.get(second) ?? 0, last - due.at))
      if (status < 200 || status > 299) non2xx++
    }
    options.onResponse?.(status, body, due.context)
    finish()
    dispatch()
  }
  const failed = (error: Error) => {
    if (stopped) return
    if (errors === 0) console.error(`  paced load: ${error.message}`)
    errors++
    finish()
    dispatch()
  }
  /** every waiting request onto an idle connection, opening one while under the cap */
  const dispatch = () => {
    while (waiting.length > 0 && !stopped) {
      let connection = connections.find((c) => c.idle)
      if (connection === undefined) {
        // connections the server closed leave the list (their lost request was counted as an error)
        for (let i = connections.length - 1; i >= 0; i--) if (connections[i]!.closed) connections.splice(i, 1)
      }
      if (connection === undefined && connections.length < maxConnections) {
        connection = new Connection<C>(url.hostname, port, answered, failed)
        connections.push(connection)
      }
      if (connection === undefined) return
      connection.send(waiting.shift()!)
    }
  }

  const first = performance.now()
  const start = first + (options.warmup ?? 0) * 1000
  const end = start + options.duration * 1000
  const interval = 1000 / options.rate
  let n = 0
  let most = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      // every request whose time has come, stamped with its own time, not the tick's
      for (let at = first + n * interval; at <= now && at < end; at = first + n * interval) {
        const { body, context } = options.request(n++)
        const bytes = Buffer.from(`POST ${url.pathname} HTTP/1.1\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
        waiting.push({ at, bytes, context, measured: at >= start })
        outstanding++
      }
      dispatch()
      most = Math.max(most, connections.length)
      if (now >= end) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      settle = resolve
      setTimeout(resolve, (options.drainSeconds ?? 10) * 1000)
    })
  }
  stopped = true
  for (const connection of connections) connection.socket.destroy()
  const sorted = Float64Array.from(latencies).sort()
  const at = (q: number) => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
  return {
    sentInAll: n,
    answered: latencies.length,
    non2xx,
    errors: errors + outstanding,
    requestsPerSecond: latencies.length === 0 ? 0 : latencies.length / ((Math.max(last, end) - start) / 1000),
    p50: at(0.5),
    p99: at(0.99),
    max: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
    connections: most,
    stalls: [...slowest].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([second, max]) => ({ at: new Date(performance.timeOrigin + start + second * 1000), max }))
  }
}
