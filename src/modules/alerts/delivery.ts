// Delivering alerts to webhooks: the payload (docs/alerts.md), its signature, and the
// worker. The worker claims due deliveries with FOR UPDATE SKIP LOCKED and a lease, so
// instances side by side never send one twice at once, and a crashed instance's claim
// passes to another when its lease ends; it sends outside any transaction and records
// the outcome only under its own lease. A failure is retried with exponential backoff
// up to a bounded number of attempts, then left "failed" for an admin to replay.
import { createHmac, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import sql from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { decrypt } from '../../lib/crypto.js'
import { nanoToUsd, percentOf } from '../../lib/money.js'
import { every, type Periodic } from '../../lib/periodic.js'

export const SIGNATURE_HEADER = 'x-keymeter-signature'

/** The signature header's value for `body` sent at `unixSeconds`: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">. */
export function signPayload (secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`
}

/** An alert row as read for its payload. */
export interface AlertRow {
  id: string
  subject_kind: 'api_key' | 'user' | 'provider'
  subject_id: string
  limit_kind: 'budget' | 'balance' | 'total_cost' | 'daily_cost' | 'quota'
  limit_id: string
  window_start: Date | null
  window_end: Date | null
  threshold: number
  used: string
  limit_amount: string
  created_at: Date
}

/** The JSON an endpoint receives for an alert (docs/alerts.md, "Payload"): the same bytes on every attempt and replay. */
export function alertPayload (alert: AlertRow) {
  const used = BigInt(alert.used)
  const limit = BigInt(alert.limit_amount)
  return {
    id: alert.id,
    type: 'alert.threshold_reached' as const,
    created_at: alert.created_at.toISOString(),
    subject: { kind: alert.subject_kind, id: alert.subject_id },
    limit: {
      kind: alert.limit_kind,
      id: alert.limit_id,
      amount_usd: nanoToUsd(limit),
      window_start: alert.window_start?.toISOString() ?? null,
      window_end: alert.window_end?.toISOString() ?? null
    },
    threshold_percent: alert.threshold,
    used_usd: nanoToUsd(used),
    used_percent: percentOf(used, limit)
  }
}

export interface DeliverySettings {
  /** the AES-256-GCM key of the endpoints' secrets */
  secretKey: Buffer
  maxAttempts: number
  timeoutMs: number
  /** the first retry's delay; each next one doubles, up to MAX_BACKOFF_MS */
  backoffMs: number
  /** deliveries one run claims */
  batchSize: number
}

const MAX_BACKOFF_MS = 6 * 3_600_000
/** the part of an error or answer kept in the log: enough to diagnose, never a whole page */
const ERROR_CHARS = 500

/** The delay before attempt `attempts + 1`, once `attempts` have failed. */
export const backoffMs = (base: number, attempts: number): number => Math.min(MAX_BACKOFF_MS, base * 2 ** Math.max(0, attempts - 1))

interface Claimed extends AlertRow {
  delivery_id: string
  attempts: number
  url: string
  secret_encrypted: string
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'failed'

/**
 * Claims up to batchSize due deliveries for `leaseMs` (their attempt counted), with their
 * alert and endpoint (an active one). Served by alert_deliveries (status, next_attempt_at); SKIP LOCKED
 * leaves rows another instance is claiming this instant to it.
 */
async function claim (db: Sql, now: Date, leaseId: string, leaseMs: number, batchSize: number): Promise<Claimed[]> {
  const query = sql`
    UPDATE alert_deliveries d SET attempts = d.attempts + 1, lease_id = ${leaseId}::uuid,
           lease_until = ${now}::timestamptz + make_interval(secs => ${leaseMs / 1000}), updated_at = ${now}::timestamptz
      FROM (SELECT id FROM alert_deliveries
             WHERE status = 'pending' AND next_attempt_at <= ${now}::timestamptz AND (lease_until IS NULL OR lease_until <= ${now}::timestamptz)
               -- an endpoint switched off keeps its deliveries waiting until it is on again
               AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = endpoint_id AND e.is_active)
             ORDER BY next_attempt_at LIMIT ${batchSize} FOR UPDATE SKIP LOCKED) due,
           alerts a, webhook_endpoints e
     WHERE d.id = due.id AND a.id = d.alert_id AND e.id = d.endpoint_id
    RETURNING d.id AS delivery_id, d.attempts, e.url, e.secret_encrypted, a.id, a.subject_kind::text, a.subject_id, a.limit_kind::text, a.limit_id,
              a.window_start, a.window_end, a.threshold, a.used::text, a.limit_amount::text, a.created_at`
  const { rows } = await db.query<Claimed>(query.text, query.values)
  return rows
}

/** Records one attempt's outcome, only while the lease is still this run's (a late run never overwrites another's). */
async function record (db: Sql, delivery: Claimed, leaseId: string, outcome: DeliveryOutcome, at: Date, next: Date, responseCode: number | null, error: string | null): Promise<void> {
  const query = sql`
    UPDATE alert_deliveries SET status = ${outcome === 'retry' ? 'pending' : outcome}::"AlertDeliveryStatus", response_code = ${responseCode},
           last_error = ${error}, next_attempt_at = ${next}, lease_id = NULL, lease_until = NULL,
           delivered_at = CASE WHEN ${outcome === 'delivered'} THEN ${at}::timestamptz END, updated_at = ${at}::timestamptz
     WHERE id = ${delivery.delivery_id}::uuid AND lease_id = ${leaseId}::uuid`
  await db.query(query.text, query.values)
}

/** POSTs one claimed delivery: a 2xx answer delivers it. */
async function send (delivery: Claimed, settings: DeliverySettings, at: Date): Promise<{ ok: boolean, code: number | null, error: string | null }> {
  const body = JSON.stringify(alertPayload(delivery))
  try {
    const secret = decrypt(settings.secretKey, delivery.secret_encrypted)
    const response = await fetch(delivery.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'keymeter-alerts', [SIGNATURE_HEADER]: signPayload(secret, body, Math.floor(at.getTime() / 1000)), 'x-keymeter-delivery': delivery.delivery_id },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(settings.timeoutMs)
    })
    const text = response.ok ? '' : (await response.text().catch(() => '')).slice(0, ERROR_CHARS)
    return { ok: response.ok, code: response.status, error: response.ok ? null : `HTTP ${response.status}${text === '' ? '' : `: ${text}`}` }
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message
    return { ok: false, code: null, error: `${(error as Error).message}${cause === undefined ? '' : ` (${cause})`}`.slice(0, ERROR_CHARS) }
  }
}

/**
 * One run: claims the due deliveries, sends them side by side, records each outcome.
 * Returns the outcomes (the metrics count them).
 */
export async function deliverDue (db: Sql, settings: DeliverySettings, now = new Date()): Promise<DeliveryOutcome[]> {
  const leaseId = randomUUID()
  // a claim outlives the longest send, so no other instance takes a row still being sent
  const claimed = await claim(db, now, leaseId, settings.timeoutMs * 2 + 30_000, settings.batchSize)
  return Promise.all(claimed.map(async (delivery) => {
    const result = await send(delivery, settings, now)
    const outcome: DeliveryOutcome = result.ok ? 'delivered' : delivery.attempts >= settings.maxAttempts ? 'failed' : 'retry'
    const next = outcome === 'retry' ? new Date(now.getTime() + backoffMs(settings.backoffMs, delivery.attempts)) : now
    await record(db, delivery, leaseId, outcome, now, next, result.code, result.error)
    return outcome
  }))
}

/** How many deliveries wait to be sent (the outbox's backlog). Served by alert_deliveries (status, next_attempt_at). */
export async function countBacklog (db: Sql): Promise<number> {
  const query = sql`SELECT count(*)::int AS pending FROM alert_deliveries WHERE status = 'pending'`
  const { rows } = await db.query<{ pending: number }>(query.text, query.values)
  return rows[0]!.pending
}

/** The in-process worker: a run every `intervalMs` (lib/periodic.ts); a failed run (database restarting, unreachable) is logged. */
export function startDeliveryWorker (db: Sql, settings: DeliverySettings, intervalMs: number, log: FastifyBaseLogger, onOutcome: (outcome: DeliveryOutcome) => void): Periodic {
  return every(intervalMs, async () => {
    for (const outcome of await deliverDue(db, settings)) onOutcome(outcome)
  }, (error) => { log.error({ err: error }, 'alert delivery run failed') })
}
