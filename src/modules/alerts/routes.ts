// Admins' alerts: the rules (thresholds on a limit), the webhook endpoints, what fired,
// the delivery log and its replay; and this instance's delivery worker, stopped on close.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IdParams, errorResponses, Message } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { deriveKey } from '../../lib/crypto.js'
import { startDeliveryWorker } from './delivery.js'
import { AlertPage, AlertQuery, DeliveryPage, DeliveryQuery, DeliveryRecord, EndpointCreate, EndpointList, EndpointRecord, EndpointUpdate, MAX_ENDPOINTS, MAX_RULES, RuleCreate, RuleList, RuleRecord, RuleUpdate } from './schemas.js'
import { createEndpoint, createRule, deleteEndpoint, deleteRule, getEndpoint, listAlerts, listDeliveries, listEndpoints, listRules, replayDelivery, updateEndpoint, updateRule } from './service.js'

/** The AES-256-GCM key of the endpoints' secrets: its own purpose, so no other secret's key opens them. */
export const webhookSecretKey = (encryptionKey: string): Buffer => deriveKey(encryptionKey, 'webhook-secret-cipher')

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const config = app.config
  const secretKey = webhookSecretKey(config.ENCRYPTION_KEY)

  if (config.ALERT_DELIVERY_INTERVAL_MS > 0) {
    const worker = startDeliveryWorker(app.pools.admin, {
      secretKey, maxAttempts: config.ALERT_DELIVERY_MAX_ATTEMPTS, timeoutMs: config.ALERT_WEBHOOK_TIMEOUT_MS, backoffMs: config.ALERT_DELIVERY_BACKOFF_MS, batchSize: 20
    }, config.ALERT_DELIVERY_INTERVAL_MS, app.log, (outcome) => { app.metrics.alertDeliveries.inc({ outcome }) })
    app.addHook('onClose', worker.stop)
  }

  const tags = ['alerts']

  route(app, {
    method: 'GET',
    url: '/admin/alerts/rules',
    schema: { tags, summary: 'List alert rules', description: 'Every rule, oldest first: thresholds (percents) on a limit of one subject, or of every subject of its kind.', response: { 200: RuleList, ...errorResponses() } },
    action: 'alert_rules.list',
    mode: 'admin',
    handle: async ({ db }) => listRules(db)
  })

  route(app, {
    method: 'POST',
    url: '/admin/alerts/rules',
    schema: { tags, summary: 'Add an alert rule', description: `Thresholds on a limit of a key (budget, balance, total_cost, daily_cost), a user (budget, quota) or a provider (quota); subject_id null or absent watches every subject of the kind. Each threshold fires once per window of the limit (docs/alerts.md). At most ${MAX_RULES} rules.`, body: RuleCreate, response: { 201: RuleRecord, ...errorResponses(409) } },
    action: 'alert_rules.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, audit }) => {
      audit({ subject_kind: body.subject_kind, subject_id: body.subject_id ?? null, limit_kind: body.limit_kind, thresholds: body.thresholds })
      const created = await createRule(db, body)
      audit({ rule_id: created.id })
      return created
    }
  })

  route(app, {
    method: 'PUT',
    url: '/admin/alerts/rules/:id',
    schema: { tags, summary: 'Change an alert rule', description: 'Its thresholds or whether it is active; its subject and limit stay (add another rule instead).', params: IdParams, body: RuleUpdate, response: { 200: RuleRecord, ...errorResponses(404) } },
    action: 'alert_rules.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ rule_id: params.id, fields: Object.keys(body) })
      return updateRule(db, params.id, body)
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/alerts/rules/:id',
    schema: { tags, summary: 'Remove an alert rule', description: 'The alerts it fired, and their deliveries, stay.', params: IdParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'alert_rules.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ rule_id: params.id })
      return deleteRule(db, params.id)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/alerts',
    schema: { tags, summary: 'List fired alerts', description: 'Newest first, paged with skip and limit; each as its webhook payload.', querystring: AlertQuery, response: { 200: AlertPage, ...errorResponses() } },
    action: 'alerts.list',
    mode: 'admin',
    handle: async ({ db, query }) => listAlerts(db, query)
  })

  route(app, {
    method: 'GET',
    url: '/admin/alerts/deliveries',
    schema: { tags, summary: 'The alert delivery log', description: 'One row per alert and endpoint, newest first: status, attempts, next attempt, last response code and error. Paged with skip and limit; filter by status, endpoint_id or alert_id.', querystring: DeliveryQuery, response: { 200: DeliveryPage, ...errorResponses() } },
    action: 'alert_deliveries.list',
    mode: 'admin',
    handle: async ({ db, query }) => listDeliveries(db, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/alerts/deliveries/:id/replay',
    schema: { tags, summary: 'Send an alert delivery again', description: 'A delivered or failed delivery becomes pending and due now, its attempts counted afresh; the payload is the same (receivers deduplicate by its id). 409 for a pending one.', params: IdParams, response: { 200: DeliveryRecord, ...errorResponses(404, 409) } },
    action: 'alert_deliveries.replay',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ delivery_id: params.id })
      return replayDelivery(db, params.id)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/webhooks',
    schema: { tags, summary: 'List webhook endpoints', description: 'Every endpoint, oldest first; secrets masked.', response: { 200: EndpointList, ...errorResponses() } },
    action: 'webhooks.list',
    mode: 'admin',
    handle: async ({ db }) => listEndpoints(db)
  })

  route(app, {
    method: 'POST',
    url: '/admin/webhooks',
    schema: { tags, summary: 'Add a webhook endpoint', description: `Every alert fired from now on is POSTed to it, signed with the secret (X-Keymeter-Signature, docs/alerts.md). The secret is write-only. At most ${MAX_ENDPOINTS} endpoints.`, body: EndpointCreate, response: { 201: EndpointRecord, ...errorResponses(409) } },
    action: 'webhooks.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, audit }) => {
      audit({ name: body.name, url: body.url })
      const created = await createEndpoint(db, secretKey, body)
      audit({ endpoint_id: created.id })
      return created
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/webhooks/:id',
    schema: { tags, summary: 'Get a webhook endpoint', description: 'Its secret masked.', params: IdParams, response: { 200: EndpointRecord, ...errorResponses(404) } },
    action: 'webhooks.get',
    mode: 'admin',
    handle: async ({ db, params }) => getEndpoint(db, params.id)
  })

  route(app, {
    method: 'PUT',
    url: '/admin/webhooks/:id',
    schema: { tags, summary: 'Change a webhook endpoint', description: 'Partial: its name, URL, secret (write-only) or whether it is active. Deliveries not yet sent use the new URL and secret.', params: IdParams, body: EndpointUpdate, response: { 200: EndpointRecord, ...errorResponses(404) } },
    action: 'webhooks.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ endpoint_id: params.id, fields: Object.keys(body) })
      return updateEndpoint(db, secretKey, params.id, body)
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/webhooks/:id',
    schema: { tags, summary: 'Remove a webhook endpoint', description: 'Its delivery log goes with it; the alerts stay.', params: IdParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'webhooks.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ endpoint_id: params.id })
      return deleteEndpoint(db, params.id)
    }
  })
}

export default routes
