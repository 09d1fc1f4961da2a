// GET /metrics in Prometheus text (README, "Metrics and logs"): requests and latencies per
// route, usage counted by model and provider, gateway events, verify answers, admission
// holds, the database pools, the cleanup, audit write failures, build info and the
// process's own metrics. One registry per app, so test apps never share counters.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type pg from 'pg'
import Type from 'typebox'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { Errors } from '../lib/errors.js'
import { ErrorBody, errorReply, sendError } from './errors.js'

/** What one committed ingestion batch newly counted for one request (usage/ingest/counted.ts). */
export interface CountedUsage {
  /** the request's model when the price book priced it, else null ("other") */
  model: string | null
  /** the name of the (existing) provider that served it, else null ("none") */
  provider: string | null
  status: string
  requests: number
  inputTokens: number
  outputTokens: number
  cacheCreationTokens: number
  cacheReadTokens: number
  /** what the key holder is charged (total_cost), nano-USD */
  costNano: bigint
}

export type CleanupOutcome = 'success' | 'failure'
export type AuditWrite = 'behind' | 'refusal'

export interface Metrics {
  gatewayEvents: Counter<'type' | 'outcome'>
  verifications: Counter<'result'>
  holdsTaken: Counter
  holdsExpired: Counter
  /** vacuums of admission_holds this instance ran (gateway/holds.ts vacuumHolds) */
  holdsVacuums: Counter
  /** audit rows that could not be written and were only logged (the answer had gone, or was a refusal) */
  auditWriteFailures: Counter<'write'>
  /** called after ingestion's COMMIT with what the batch newly counted */
  usageCounted: (counted: readonly CountedUsage[]) => void
  cleanupRan: (outcome: CleanupOutcome) => void
  /** alert deliveries attempted, by outcome: delivered, retry (failed, tried again later), failed (gave up) */
  alertDeliveries: Counter<'outcome'>
}

/** The workloads' pools, and read1, read2, … the read replicas' */
export type PoolSet = { admin: pg.Pool, verify: pg.Pool, ingest: pg.Pool, stats: pg.Pool } & Record<string, pg.Pool>

/** Where the statistics' reads went (src/db/replicas.ts) */
export interface ReadSource {
  servedCounts: () => Array<[string, number]>
  states: () => Array<{ label: string, usable: boolean, lagMs: number | null }>
  checkIfDue: () => void
}

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

export interface MetricsOptions {
  pools: PoolSet
  reads?: ReadSource
  /** the longest a request may legitimately take, ms: the duration buckets end there */
  longestRequestMs: number
  /** how many admission holds are live (the gateway module's count: http knows no domain table) */
  liveHolds: () => Promise<number>
  /** how many alert deliveries wait to be sent (the alerts module's count) */
  alertBacklog: () => Promise<number>
  /** when set, a scrape must present it as a bearer token */
  token?: string
}

const TOKEN_KINDS = [['input', 'inputTokens'], ['output', 'outputTokens'], ['cache_creation', 'cacheCreationTokens'], ['cache_read', 'cacheReadTokens']] as const
const NANO_PER_USD = 1_000_000_000n
const LADDER = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600]
/** how long a live-holds count is reused, and the longest a scrape waits for a new one */
const HOLDS_CACHE_MS = 5000
const HOLDS_WAIT_MS = 1000

/** The duration buckets (s): the usual ladder below `longestMs`, then `longestMs` itself, so a call cut off by a timeout still lands in a finite bucket. */
export function durationBuckets (longestMs: number): number[] {
  const top = longestMs / 1000
  return [...LADDER.filter((bound) => bound < top), top]
}

/** nano-USD as USD, exact to the double nearest: whole dollars and the fraction apart, so large sums keep their cents */
export const nanoAsUsd = (nano: bigint): number => Number(nano / NANO_PER_USD) + Number(nano % NANO_PER_USD) / 1e9

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

export default fp<MetricsOptions>(async (app, opts) => {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry, prefix: 'keymeter_' })
  // gauges named like counters (promtool refuses them); the same figures by type stay (keymeter_nodejs_active_handles etc.)
  for (const name of ['handles', 'requests', 'resources']) registry.removeSingleMetric(`keymeter_nodejs_active_${name}_total`)
  const requests = new Counter({ name: 'keymeter_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers })
  const duration = new Histogram({
    name: 'keymeter_http_request_duration_seconds', help: 'HTTP request duration by route, up to the longest statement, transaction or pool wait allowed', labelNames: ['method', 'route'],
    buckets: durationBuckets(opts.longestRequestMs), registers
  })
  new Gauge({ name: 'keymeter_build_info', help: 'The running keymeter: version and Node.js version (always 1)', labelNames: ['version', 'node'], registers }).set({ version: VERSION, node: process.version }, 1)

  // Label bounds: model is a price-book model (a row the price book priced) or "other", so at
  // most the price book's models + 1; provider is an existing provider's name or "none", so at
  // most the providers configured + 1; status is one of the three finished states.
  const usageLabels = ['model', 'provider', 'status'] as const
  const usageRequests = new Counter({ name: 'keymeter_usage_requests_total', help: 'Finished requests recorded by ingestion, by model, provider and the status they first finished with', labelNames: usageLabels, registers })
  const tokens = new Counter({ name: 'keymeter_usage_tokens_total', help: 'Tokens recorded by ingestion, by model, provider, status and kind', labelNames: [...usageLabels, 'kind'], registers })
  // money stays integer nano-USD here; USD (the Prometheus unit) only as the scrape reads it
  const costNano = new Map<string, { labels: Record<string, string>, nano: bigint }>()
  registry.registerMetric(new Counter({
    name: 'keymeter_usage_cost_usd_total', help: 'What recorded requests charge their keys (total_cost), USD, by model, provider and status', labelNames: usageLabels, registers: [],
    collect () {
      this.reset()
      for (const { labels, nano } of costNano.values()) this.inc(labels, nanoAsUsd(nano))
    }
  }))

  const cleanupRuns = new Counter({ name: 'keymeter_cleanup_runs_total', help: 'In-process cleanup runs, by outcome', labelNames: ['outcome'], registers })
  const cleanupLast = new Gauge({ name: 'keymeter_cleanup_last_run_timestamp_seconds', help: 'When the last in-process cleanup run ended (Unix time), by its outcome', labelNames: ['outcome'], registers })

  const poolGauge = (name: string, help: string, value: (pool: pg.Pool) => number) => new Gauge({
    name, help, labelNames: ['pool'], registers,
    collect () { for (const [label, pool] of Object.entries(opts.pools)) this.set({ pool: label }, value(pool)) }
  })
  poolGauge('keymeter_db_pool_in_use', 'Connections of each database pool checked out', (pool) => pool.totalCount - pool.idleCount)
  poolGauge('keymeter_db_pool_waiting', 'Calls waiting for a connection of each database pool', (pool) => pool.waitingCount)
  poolGauge('keymeter_db_pool_max', 'Size of each database pool (DB_POOL_*)', (pool) => pool.options.max)

  if (opts.reads !== undefined) {
    const reads = opts.reads
    registry.registerMetric(new Counter({
      name: 'keymeter_db_reads_total', help: 'Statistics and analytics queries by the database that answered: primary, or the replica read1, read2, … (DATABASE_READ_URL\'s order)', labelNames: ['database'], registers: [],
      collect () {
        this.reset()
        for (const [database, count] of reads.servedCounts()) this.inc({ database }, count)
      }
    }))
    registry.registerMetric(new Gauge({
      name: 'keymeter_db_replica_lag_seconds', help: 'Each read replica\'s replay lag at its last check (absent while it cannot be measured)', labelNames: ['database'], registers: [],
      collect () {
        // a scrape is a reason to look again, as a read is
        reads.checkIfDue()
        this.reset()
        for (const { label, lagMs } of reads.states()) if (lagMs !== null) this.set({ database: label }, lagMs / 1000)
      }
    }))
    registry.registerMetric(new Gauge({
      name: 'keymeter_db_replica_usable', help: 'Whether each read replica serves reads (1) or is skipped for its lag or for being unreachable (0)', labelNames: ['database'], registers: [],
      collect () { for (const { label, usable } of reads.states()) this.set({ database: label }, usable ? 1 : 0) }
    }))
  }

  /** A gauge read from the database: cached HOLDS_CACHE_MS, and a scrape waits for a new read at most HOLDS_WAIT_MS (the gauge keeps its last value meanwhile). */
  const tableGauge = (name: string, help: string, read: () => Promise<number>) => {
    let last: { at: number, pending: Promise<void> } | null = null
    registry.registerMetric(new Gauge({
      name, help, registers: [],
      async collect () {
        if (last === null || Date.now() - last.at >= HOLDS_CACHE_MS) {
          last = { at: Date.now(), pending: read().then((count) => { this.set(count) }, (error: unknown) => { app.log.warn({ err: error }, `reading ${name} failed`) }) }
        }
        let timer: NodeJS.Timeout | undefined
        await Promise.race([last.pending, new Promise((resolve) => { timer = setTimeout(resolve, HOLDS_WAIT_MS) })])
        clearTimeout(timer)
      }
    }))
  }
  // A count of the table, not a taken/settled counter pair: holds outlive this process and are
  // settled by any instance, so only the table knows how many are live. The same for the alert outbox.
  tableGauge('keymeter_admission_holds_live', 'Admission holds not yet settled nor expired (all instances)', opts.liveHolds)
  tableGauge('keymeter_alert_deliveries_pending', 'Alert deliveries waiting to be sent or retried: the outbox backlog (all instances)', opts.alertBacklog)

  const key = (labels: Record<string, string>) => `${labels.model}\u0000${labels.provider}\u0000${labels.status}`
  app.decorate('metrics', {
    gatewayEvents: new Counter({ name: 'keymeter_gateway_events_total', help: 'Usage events received, by type and outcome', labelNames: ['type', 'outcome'], registers }),
    verifications: new Counter({ name: 'keymeter_key_verifications_total', help: 'Key verifications (advisory and reserving), by result (allowed or the refusal type)', labelNames: ['result'], registers }),
    holdsTaken: new Counter({ name: 'keymeter_admission_holds_taken_total', help: 'Admission holds taken by verifies with a request_id', registers }),
    holdsExpired: new Counter({ name: 'keymeter_admission_holds_expired_total', help: 'Admission holds released unsettled, past ADMISSION_HOLD_TTL_SECONDS (each also an audit row)', registers }),
    holdsVacuums: new Counter({ name: 'keymeter_admission_holds_vacuums_total', help: 'Vacuums of admission_holds run by this instance, each once the table held 1,000 dead rows (checked every ADMISSION_HOLD_VACUUM_SECONDS)', registers }),
    auditWriteFailures: new Counter({ name: 'keymeter_audit_write_failures_total', help: 'Audit rows that could not be written (logged instead), by write: behind an answer or of a refusal', labelNames: ['write'], registers }),
    usageCounted: (counted) => {
      // summed per label set first: a batch's rows share a few, and each labelled inc costs a label check and a hash
      const sums = new Map<string, { labels: Record<string, string>, usage: Omit<CountedUsage, 'model' | 'provider' | 'status'> }>()
      for (const { model, provider, status, ...usage } of counted) {
        const labels = { model: model ?? 'other', provider: provider ?? 'none', status }
        const id = key(labels)
        const entry = sums.get(id)
        if (entry === undefined) {
          sums.set(id, { labels, usage })
          continue
        }
        entry.usage.requests += usage.requests
        for (const [, field] of TOKEN_KINDS) entry.usage[field] += usage[field]
        entry.usage.costNano += usage.costNano
      }
      for (const { labels, usage } of sums.values()) {
        if (usage.requests > 0) usageRequests.inc(labels, usage.requests)
        for (const [kind, field] of TOKEN_KINDS) if (usage[field] > 0) tokens.inc({ ...labels, kind }, usage[field])
        if (usage.costNano > 0n) {
          const entry = costNano.get(key(labels))
          if (entry === undefined) costNano.set(key(labels), { labels, nano: usage.costNano })
          else entry.nano += usage.costNano
        }
      }
    },
    alertDeliveries: new Counter({ name: 'keymeter_alert_deliveries_total', help: 'Alert delivery attempts by this instance, by outcome: delivered, retry (failed, tried again later), failed (gave up)', labelNames: ['outcome'], registers }),
    cleanupRan: (outcome) => {
      cleanupRuns.inc({ outcome })
      cleanupLast.set({ outcome }, Date.now() / 1000)
    }
  } satisfies Metrics)

  app.addHook('onResponse', async (request, reply) => {
    // the route pattern, not the URL, so ids do not explode the label set
    const route = request.routeOptions.url ?? 'unmatched'
    requests.inc({ method: request.method, route, status: String(reply.statusCode) })
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000)
  })

  // digests on both sides: equal lengths for timingSafeEqual, so neither the token's length nor its content leaks through timing
  const digest = (value: string) => createHash('sha256').update(value).digest()
  const expected = opts.token === undefined ? undefined : digest(`Bearer ${opts.token}`)
  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics',
      // a scrape needs the token only when METRICS_TOKEN is set
      security: expected === undefined ? [] : [{ bearer: [] }],
      description: 'The Prometheus text exposition of every keymeter metric (README, "Metrics and logs"). With METRICS_TOKEN set, the scrape must send it as a bearer token.',
      response: { 200: Type.String({ description: 'Prometheus text exposition format' }), 401: ErrorBody }
    }
  }, async (request, reply) => {
    if (expected !== undefined && !timingSafeEqual(digest(request.headers.authorization ?? ''), expected)) {
      reply.header('www-authenticate', 'Bearer realm="metrics"')
      return sendError(reply, request.id, errorReply(new Errors.Unauthorized('GET /metrics needs METRICS_TOKEN as a bearer token')))
    }
    reply.type(registry.contentType)
    return registry.metrics()
  })
}, { name: 'metrics', dependencies: ['prisma'] })
