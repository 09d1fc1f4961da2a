// GET /metrics in Prometheus text: request counts and latencies per route, gateway
// events by outcome, verify answers by result, and the process's own metrics.
// One registry per app, so test apps never share counters.
import fp from 'fastify-plugin'
import Type from 'typebox'
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client'

export interface Metrics {
  gatewayEvents: Counter<'type' | 'outcome'>
  verifications: Counter<'result'>
  holdsTaken: Counter
  holdsExpired: Counter
}

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

export default fp(async (app) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'keymeter_' })
  const requests = new Counter({ name: 'keymeter_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] })
  const duration = new Histogram({
    name: 'keymeter_http_request_duration_seconds', help: 'HTTP request duration by route', labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry]
  })
  app.decorate('metrics', {
    gatewayEvents: new Counter({ name: 'keymeter_gateway_events_total', help: 'Usage events received, by type and outcome', labelNames: ['type', 'outcome'], registers: [registry] }),
    verifications: new Counter({ name: 'keymeter_key_verifications_total', help: 'Key verifications, by result (allowed or the refusal type)', labelNames: ['result'], registers: [registry] }),
    holdsTaken: new Counter({ name: 'keymeter_admission_holds_taken_total', help: 'Admission holds taken by verifies with a request_id', registers: [registry] }),
    holdsExpired: new Counter({ name: 'keymeter_admission_holds_expired_total', help: 'Admission holds released unsettled, past ADMISSION_HOLD_TTL_SECONDS (each also an audit row)', registers: [registry] })
  })

  app.addHook('onResponse', async (request, reply) => {
    // the route pattern, not the URL, so ids do not explode the label set
    const route = request.routeOptions.url ?? 'unmatched'
    requests.inc({ method: request.method, route, status: String(reply.statusCode) })
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000)
  })

  app.get('/metrics', {
    schema: { tags: ['operations'], summary: 'Prometheus metrics', description: 'The Prometheus text exposition format, for a scraper: requests and their durations by route, verify outcomes, gateway events, admission holds, and the process.', response: { 200: Type.String({ description: 'Prometheus text exposition format' }) } }
  }, async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })
}, { name: 'metrics' })
