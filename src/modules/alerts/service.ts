// Alert rules, webhook endpoints (their secrets stored only encrypted), and the reads of
// what fired and how its deliveries went, with the replay of a delivery.
import sql, { empty, join, type Sql as Fragment } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import type { AlertRule, WebhookEndpoint } from '../../generated/prisma/client.js'
import { Errors } from '../../http/errors.js'
import { encrypt, maskSecret } from '../../lib/crypto.js'
import { alertPayload, type AlertRow } from './delivery.js'
import { MAX_ENDPOINTS, MAX_RULES, type AlertQueryParams, type DeliveryQueryParams, type EndpointCreateBody, type EndpointUpdateBody, type RuleCreateBody, type RuleUpdateBody } from './schemas.js'

const invalid = (field: string, problem: string) => Object.assign(new Errors.InvalidInput(`${field} ${problem}`), { field })

// ---- rules ----

/** The limits each kind of subject has. */
const LIMITS: Record<RuleCreateBody['subject_kind'], ReadonlyArray<RuleCreateBody['limit_kind']>> = {
  api_key: ['budget', 'balance', 'total_cost', 'daily_cost'],
  user: ['budget', 'quota'],
  provider: ['quota']
}

export function toRuleRecord (row: AlertRule) {
  return {
    id: row.id,
    subject_kind: row.subjectKind,
    subject_id: row.subjectId,
    limit_kind: row.limitKind,
    thresholds: row.thresholds,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

async function subjectExists (db: Db, kind: RuleCreateBody['subject_kind'], id: string): Promise<boolean> {
  if (kind === 'api_key') return await db.apiKey.count({ where: { id } }) > 0
  if (kind === 'user') return await db.user.count({ where: { id, isDeleted: false } }) > 0
  return await db.provider.count({ where: { id } }) > 0
}

export async function listRules (db: Db) {
  const rows = await db.alertRule.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })
  return { rules: rows.map(toRuleRecord) }
}

export async function createRule (db: Db, body: RuleCreateBody) {
  if (!LIMITS[body.subject_kind].includes(body.limit_kind)) throw invalid('body.limit_kind', `must be one of ${LIMITS[body.subject_kind].join(', ')} for a ${body.subject_kind}`)
  const subjectId = body.subject_id ?? null
  if (subjectId !== null && !await subjectExists(db, body.subject_kind, subjectId)) throw invalid('body.subject_id', `names no ${body.subject_kind}`)
  if (await db.alertRule.count() >= MAX_RULES) throw new Errors.LimitReached(`at most ${MAX_RULES} alert rules`)
  const row = await db.alertRule.create({
    data: { subjectKind: body.subject_kind, subjectId, limitKind: body.limit_kind, thresholds: [...body.thresholds].sort((a, b) => a - b), isActive: body.is_active ?? true }
  })
  return toRuleRecord(row)
}

async function findRule (db: Db, id: string): Promise<AlertRule> {
  const row = await db.alertRule.findUnique({ where: { id } })
  if (row === null) throw new Errors.NotFound('alert rule not found')
  return row
}

export async function updateRule (db: Db, id: string, body: RuleUpdateBody) {
  await findRule(db, id)
  const row = await db.alertRule.update({
    where: { id },
    data: { ...(body.thresholds !== undefined && { thresholds: [...body.thresholds].sort((a, b) => a - b) }), ...(body.is_active !== undefined && { isActive: body.is_active }) }
  })
  return toRuleRecord(row)
}

export async function deleteRule (db: Db, id: string) {
  await findRule(db, id)
  await db.alertRule.delete({ where: { id } })
  return { message: 'alert rule deleted; the alerts it fired stay' }
}

// ---- webhook endpoints ----

export function toEndpointRecord (row: WebhookEndpoint) {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    secret_display: row.secretDisplay,
    is_active: row.isActive,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString()
  }
}

const sealSecret = (key: Buffer, secret: string) => ({ secretEncrypted: encrypt(key, secret), secretDisplay: maskSecret(secret, 4, 4) })

/** A URL the worker can POST to (the schema's pattern has made it http or https): parseable, no credentials in it (they would show in every read). */
function checkedUrl (url: string): string {
  let parsed: URL
  try { parsed = new URL(url) } catch { throw invalid('body.url', 'is not a URL') }
  if (parsed.username !== '' || parsed.password !== '') throw invalid('body.url', 'must not carry credentials (the secret signs each delivery)')
  return url
}

export async function listEndpoints (db: Db) {
  const rows = await db.webhookEndpoint.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] })
  return { endpoints: rows.map(toEndpointRecord) }
}

export async function createEndpoint (db: Db, key: Buffer, body: EndpointCreateBody) {
  const url = checkedUrl(body.url)
  if (await db.webhookEndpoint.count() >= MAX_ENDPOINTS) throw new Errors.LimitReached(`at most ${MAX_ENDPOINTS} webhook endpoints`)
  const row = await db.webhookEndpoint.create({ data: { name: body.name, url, ...sealSecret(key, body.secret), isActive: body.is_active ?? true } })
  return toEndpointRecord(row)
}

async function findEndpoint (db: Db, id: string): Promise<WebhookEndpoint> {
  const row = await db.webhookEndpoint.findUnique({ where: { id } })
  if (row === null) throw new Errors.NotFound('webhook endpoint not found')
  return row
}

export async function getEndpoint (db: Db, id: string) {
  return toEndpointRecord(await findEndpoint(db, id))
}

export async function updateEndpoint (db: Db, key: Buffer, id: string, body: EndpointUpdateBody) {
  await findEndpoint(db, id)
  const row = await db.webhookEndpoint.update({
    where: { id },
    data: {
      ...(body.name !== undefined && { name: body.name }),
      ...(body.url !== undefined && { url: checkedUrl(body.url) }),
      ...(body.secret !== undefined && sealSecret(key, body.secret)),
      ...(body.is_active !== undefined && { isActive: body.is_active })
    }
  })
  return toEndpointRecord(row)
}

export async function deleteEndpoint (db: Db, id: string) {
  await findEndpoint(db, id)
  await db.webhookEndpoint.delete({ where: { id } })
  return { message: 'webhook endpoint deleted, with its delivery log' }
}

// ---- what fired, and its deliveries ----

/** The alerts, newest first. Served by alerts (created_at). */
export async function listAlerts (db: Db, query: AlertQueryParams) {
  const page = sql`
    SELECT id, subject_kind::text, subject_id, limit_kind::text, limit_id, window_start, window_end, threshold, used::text, limit_amount::text, created_at
      FROM alerts ORDER BY created_at DESC, id DESC LIMIT ${query.limit} OFFSET ${query.skip}`
  const count = sql`SELECT count(*)::int AS total FROM alerts`
  const rows = await db.$queryRawUnsafe<AlertRow[]>(page.text, ...page.values)
  const [{ total }] = await db.$queryRawUnsafe<Array<{ total: number }>>(count.text, ...count.values) as [{ total: number }]
  return { items: rows.map(alertPayload), total, skip: query.skip, limit: query.limit }
}

interface DeliveryRow {
  id: string
  alert_id: string
  endpoint_id: string
  status: 'pending' | 'delivered' | 'failed'
  attempts: number
  next_attempt_at: Date
  response_code: number | null
  last_error: string | null
  delivered_at: Date | null
  created_at: Date
  updated_at: Date
}

const toDeliveryRecord = (row: DeliveryRow) => ({
  ...row,
  next_attempt_at: row.next_attempt_at.toISOString(),
  delivered_at: row.delivered_at?.toISOString() ?? null,
  created_at: row.created_at.toISOString(),
  updated_at: row.updated_at.toISOString()
})

/**
 * The delivery log, newest first, filtered by status, endpoint or alert. Served by
 * alert_deliveries (created_at), (status, next_attempt_at), (endpoint_id), (alert_id).
 */
export async function listDeliveries (db: Db, query: DeliveryQueryParams) {
  const filters: Fragment[] = [
    ...(query.status !== undefined ? [sql`status = ${query.status}::"AlertDeliveryStatus"`] : []),
    ...(query.endpoint_id !== undefined ? [sql`endpoint_id = ${query.endpoint_id}::uuid`] : []),
    ...(query.alert_id !== undefined ? [sql`alert_id = ${query.alert_id}::uuid`] : [])
  ]
  const where = filters.length === 0 ? empty : sql`WHERE ${join(filters, ' AND ')}`
  const page = sql`
    SELECT id, alert_id, endpoint_id, status::text, attempts, next_attempt_at, response_code, last_error, delivered_at, created_at, updated_at
      FROM alert_deliveries ${where} ORDER BY created_at DESC, id DESC LIMIT ${query.limit} OFFSET ${query.skip}`
  const count = sql`SELECT count(*)::int AS total FROM alert_deliveries ${where}`
  const rows = await db.$queryRawUnsafe<DeliveryRow[]>(page.text, ...page.values)
  const [{ total }] = await db.$queryRawUnsafe<Array<{ total: number }>>(count.text, ...count.values) as [{ total: number }]
  return { items: rows.map(toDeliveryRecord), total, skip: query.skip, limit: query.limit }
}

/**
 * Sends a delivered or failed delivery again: pending, due now, its attempts counted
 * afresh. A pending one is refused (it is being tried, or will be).
 */
export async function replayDelivery (db: Db, id: string) {
  const query = sql`
    UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_id = NULL, lease_until = NULL, updated_at = now()
     WHERE id = ${id}::uuid AND status <> 'pending'
    RETURNING id, alert_id, endpoint_id, status::text, attempts, next_attempt_at, response_code, last_error, delivered_at, created_at, updated_at`
  const [row] = await db.$queryRawUnsafe<DeliveryRow[]>(query.text, ...query.values)
  if (row !== undefined) return toDeliveryRecord(row)
  const exists = await db.alertDelivery.count({ where: { id } })
  if (exists === 0) throw new Errors.NotFound('alert delivery not found')
  throw new Errors.Conflict('the delivery is already pending: it will be tried at its next_attempt_at')
}
