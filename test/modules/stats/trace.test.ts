// Issue 16, AETHER.md §5.2: GET /api/admin/monitoring/trace/:request_id, the request
// drawer's fallback timeline, keyed by the usage's request_id: its candidates with the
// provider's and the provider key's names, or, none recorded, the one attempt the usage
// row tells; 404 with detail for an unknown id, 400 for one no request can have.
import t from 'tap'
import { signIn } from '../../helper.js'
import { gateway, type Json } from '../gateway/fixtures.js'

t.test('trace: candidates, the synthesised attempt, final status and refusals', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const alphaKey = await g.adminCall('POST', `/api/admin/providers/${alpha.id as string}/keys`, { name: 'alpha-main', secret: 'sk-alpha-main-0123456789' })
  const betaKey = await g.adminCall('POST', `/api/admin/providers/${beta.id as string}/keys`, { name: 'beta-spare', secret: 'sk-beta-spare-9876543210' })
  const endpoint = await g.endpoint(alpha.id, 'claude:messages')
  const user = await signIn(g.app, 'user', 'ann')
  const key = await g.userKey(user.id, { name: 'ann-laptop' })
  const start = { api_key_id: key.id, model: 'claude-x' }
  const base = { ...start, input_tokens: 10, output_tokens: 5 }
  await g.send([
    {
      type: 'complete', ...base, request_id: 'fallback', provider_id: alpha.id, provider_api_key_id: alphaKey.id, created_at: '2025-03-10T08:00:00Z',
      status: 'completed', status_code: 200, response_time_ms: 2100,
      candidates: [
        { candidate_index: 0, provider_id: beta.id, provider_api_key_id: betaKey.id, status: 'skipped', skip_reason: 'rate limited', latency_ms: 7 },
        {
          candidate_index: 1, provider_id: beta.id, provider_api_key_id: betaKey.id, status: 'failed', status_code: 529, error_type: 'overloaded', error_message: 'busy',
          latency_ms: 40, started_at: '2025-03-10T08:00:00.100Z', finished_at: '2025-03-10T08:00:00.140Z'
        },
        { candidate_index: 1, retry_index: 1, provider_id: beta.id, status: 'failed', status_code: 500, latency_ms: 60 },
        {
          candidate_index: 2, provider_id: alpha.id, provider_endpoint_id: endpoint.id, provider_api_key_id: alphaKey.id, status: 'success', status_code: 200,
          latency_ms: 1900, is_cached: true, started_at: '2025-03-10T08:00:00.200Z', finished_at: '2025-03-10T08:00:02.100Z'
        }
      ]
    },
    {
      type: 'complete', ...base, request_id: 'all-failed', provider_id: beta.id, created_at: '2025-03-10T08:01:00Z', status: 'failed', status_code: 502,
      candidates: [{ candidate_index: 0, provider_id: beta.id, status: 'failed', latency_ms: 11 }, { candidate_index: 1, provider_id: alpha.id, status: 'skipped' }]
    },
    {
      type: 'complete', ...base, request_id: 'plain', provider_id: alpha.id, provider_endpoint_id: endpoint.id, provider_api_key_id: alphaKey.id,
      created_at: '2025-03-10T08:02:00Z', finished_at: '2025-03-10T08:02:01.500Z', status: 'completed', status_code: 200, response_time_ms: 1500
    },
    { type: 'complete', ...base, request_id: 'hung-up', provider_id: alpha.id, created_at: '2025-03-10T08:03:00Z', status: 'cancelled', status_code: 499, response_time_ms: 300 },
    { type: 'start', ...start, request_id: 'in-flight', provider_id: beta.id, provider_api_key_id: betaKey.id, created_at: '2025-03-10T08:04:00Z' },
    { type: 'start', ...start, request_id: 'streaming', provider_id: beta.id, created_at: '2025-03-10T08:05:00Z' },
    { type: 'stream', request_id: 'streaming', first_byte_time_ms: 90 }
  ])
  const get = (requestId: string, headers: Record<string, string> = g.admin.headers) =>
    g.app.inject({ method: 'GET', url: `/api/admin/monitoring/trace/${encodeURIComponent(requestId)}`, headers })
  const trace = async (requestId: string) => {
    const res = await get(requestId)
    t.equal(res.statusCode, 200, requestId)
    return res.json() as Json
  }

  const fallback = await trace('fallback')
  // the sent candidates' latencies: 40 + 60 + 1900 (the skipped one's 7 is not a try)
  t.match(fallback, { request_id: 'fallback', total_candidates: 4, final_status: 'success', total_latency_ms: 2000 })
  const rows = await g.app.prisma.requestCandidate.findMany({ where: { requestId: 'fallback' }, orderBy: [{ candidateIndex: 'asc' }, { retryIndex: 'asc' }] })
  t.same(fallback.candidates.map((c: Json) => c.id), rows.map((r) => r.id), 'each candidate by its row id, in order')
  t.same(fallback.candidates.map((c: Json) => [c.candidate_index, c.retry_index, c.status]), [[0, 0, 'skipped'], [1, 0, 'failed'], [1, 1, 'failed'], [2, 0, 'success']])
  t.match(fallback.candidates[0], { provider_id: beta.id, provider_name: 'beta', key_id: betaKey.id, key_name: 'beta-spare', key_preview: betaKey.secret_display, skip_reason: 'rate limited' })
  t.match(fallback.candidates[1], {
    request_id: 'fallback', status_code: 529, error_type: 'overloaded', error_message: 'busy', latency_ms: 40,
    started_at: '2025-03-10T08:00:00.100Z', finished_at: '2025-03-10T08:00:00.140Z', created_at: String
  })
  t.match(fallback.candidates[2], { provider_name: 'beta', key_id: null, key_name: null, key_preview: null })
  t.match(fallback.candidates[3], {
    provider_id: alpha.id, provider_name: 'alpha', endpoint_id: endpoint.id, endpoint_name: 'claude:messages', key_id: alphaKey.id, key_name: 'alpha-main',
    key_preview: alphaKey.secret_display, status: 'success', is_cached: true, latency_ms: 1900
  })
  t.notMatch(alphaKey.secret_display, /0123456789/, 'the preview is the masked display, never the secret')
  t.notOk(JSON.stringify(fallback).includes('sk-alpha-main-0123456789'), 'no secret in the trace')

  t.match(await trace('all-failed'), { total_candidates: 2, final_status: 'failed', total_latency_ms: 11 })

  // no candidates recorded: the usage row's own attempt
  const plain = await trace('plain')
  t.same(plain, {
    request_id: 'plain',
    total_candidates: 1,
    final_status: 'success',
    total_latency_ms: 1500,
    candidates: [{
      id: 'plain:0:0', request_id: 'plain', candidate_index: 0, retry_index: 0, provider_id: alpha.id, provider_name: 'alpha', endpoint_id: endpoint.id,
      endpoint_name: 'claude:messages', key_id: alphaKey.id, key_name: 'alpha-main', key_preview: alphaKey.secret_display, status: 'success', skip_reason: null,
      is_cached: false, status_code: 200, error_type: null, error_message: null, latency_ms: 1500, created_at: '2025-03-10T08:02:00.000Z',
      started_at: '2025-03-10T08:02:00.000Z', finished_at: '2025-03-10T08:02:01.500Z'
    }]
  })
  t.match(await trace('hung-up'), { final_status: 'failed', total_latency_ms: 300, candidates: [{ status: 'failed', status_code: 499, error_type: 'cancelled' }] })
  t.match(await trace('in-flight'), { final_status: 'pending', total_latency_ms: 0, candidates: [{ status: 'pending', key_name: 'beta-spare', latency_ms: null, finished_at: null }] })
  t.match(await trace('streaming'), { final_status: 'streaming', candidates: [{ status: 'streaming', provider_name: 'beta' }] })

  const unknown = await get('never-seen')
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json(), { error: { type: 'not_found' }, detail: String })
  for (const bad of ['x'.repeat(129), 'a\u0001b', 'tab\there']) {
    const res = await get(bad)
    t.equal(res.statusCode, 400, `${JSON.stringify(bad.slice(0, 10))}… → 400`)
    t.match(res.json(), { error: { type: 'validation_error', field: 'params.request_id' }, detail: String })
  }
  t.equal((await get('x'.repeat(128))).statusCode, 404, '128 characters is a request id that may exist')
  t.equal((await get('fallback', {})).statusCode, 401)
  t.equal((await get('fallback', user.headers)).statusCode, 403, 'admins only')
})
