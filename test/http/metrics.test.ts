import t from 'tap'
import { buildTestApp, GATEWAY_TOKEN } from '../helper.js'

t.test('GET /metrics counts requests per route pattern, verifications by result and events by outcome', async (t) => {
  const { app } = await buildTestApp(t)
  await app.inject({ method: 'GET', url: '/health' })
  await app.inject({ method: 'GET', url: '/api/admin/users/00000000-0000-4000-8000-000000000000' })
  await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { key: 'sk-nope' } })
  await app.inject({ method: 'POST', url: '/api/gateway/usage', headers: { authorization: `Bearer ${GATEWAY_TOKEN}` }, payload: { events: [{ type: 'stream', request_id: 'r', first_byte_time_ms: 1 }] } })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/plain/)
  t.match(res.body, /keymeter_http_requests_total\{method="GET",route="\/health",status="200"\} 1/)
  t.match(res.body, /keymeter_http_requests_total\{method="GET",route="\/api\/admin\/users\/:id",status="401"\} 1/, 'labelled by pattern, not by id')
  t.match(res.body, /keymeter_key_verifications_total\{result="key_invalid"\} 1/)
  t.match(res.body, /keymeter_gateway_events_total\{type="stream",outcome="rejected"\} 1/)
  t.match(res.body, /keymeter_process_cpu_seconds_total/)
})
