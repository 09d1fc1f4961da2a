// The server on its embedded database SIGKILLed under a load of gateway usage batches and
// verify calls, then started again on the same DATA_DIR: the gateway resends every batch
// it got no answer for, and afterwards every event is recorded exactly once (receipts make
// the resends idempotent) and the books balance (key, user and rollup totals = raw sums).
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { assertConsistent } from '../modules/gateway/fixtures.js'
import { testConfig } from '../helper.js'
import { dataDirFor, embeddedUrl, GATEWAY_TOKEN, signIn, startServer, until, type Server } from './server-process.js'

// real server processes, several seconds each on a busy 2-core machine
t.setTimeout(900_000)

const GATEWAY = { authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-type': 'application/json' }

type Event = Record<string, unknown> & { type: string, request_id: string }
interface Batch { loop: number, index: number, events: Event[], acked: boolean }
interface Completed { key: string, input: number, output: number }

async function call (base: string, headers: Record<string, string>, method: string, path: string, body?: object): Promise<Record<string, any>> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...headers, 'content-type': 'application/json' }, ...(body !== undefined && { body: JSON.stringify(body) }) })
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${await res.text()}`)
  return res.json() as Promise<Record<string, any>>
}

/** POST /api/gateway/usage: the results when answered 200, null when the server gave no answer. */
async function sendBatch (base: string, events: Event[]): Promise<Array<{ request_id: string, type: string, outcome: string }> | null> {
  let res: Response
  try {
    res = await fetch(`${base}/api/gateway/usage`, { method: 'POST', headers: GATEWAY, body: JSON.stringify({ events }) })
  } catch {
    return null // refused or reset: the gateway resends it
  }
  const text = await res.text()
  if (res.status !== 200) throw new Error(`usage → ${res.status} ${text}`)
  return (JSON.parse(text) as { results: Array<{ request_id: string, type: string, outcome: string }> }).results
}

t.test('SIGKILL under load, restart, resend the unanswered batches: every event recorded once, the books balance', async (t) => {
  const dataDir = await dataDirFor(t)
  const first = await startServer(t, dataDir)
  const admin = await signIn(first.base)
  const provider = await call(first.base, admin, 'POST', '/api/admin/providers', { name: 'anthropic', billing_type: 'pay_as_you_go' })
  const endpoint = await call(first.base, admin, 'POST', `/api/admin/providers/${provider.id}/endpoints`, { api_format: 'claude:messages', base_url: 'https://api.example.com' })
  const providerKey = await call(first.base, admin, 'POST', `/api/admin/providers/${provider.id}/keys`, { name: 'k', secret: 'sk-provider-secret-0123456789', rate_multiplier: 1.5 })
  await call(first.base, admin, 'POST', '/api/admin/model-prices', { model: 'claude-x', effective_from: '2020-01-01T00:00:00Z', tiers: [{ up_to: null, input: 3, output: 15 }], price_per_request_usd: 0.001 })
  const keys: Array<{ id: string, key: string }> = []
  for (const name of ['ada', 'grace']) {
    const user = await call(first.base, admin, 'POST', '/api/admin/users', { username: name, password: 'correct-horse-battery', quota_usd: 1000 })
    keys.push(await call(first.base, admin, 'POST', `/api/admin/users/${user.id}/api-keys`, { name: `${name}-key` }) as { id: string, key: string })
  }
  const route = { model: 'claude-x', api_format: 'claude:messages', provider_id: provider.id, provider_endpoint_id: endpoint.id, provider_api_key_id: providerKey.id }

  // what the gateway sent: the batches (answered or not) and each completed request's key and tokens
  const batches: Batch[] = []
  const completed = new Map<string, Completed>()
  const complete = (requestId: string, n: number, withStart: boolean): Event => {
    const key = keys[n % keys.length]!.id
    const input = 100 + (n * 37) % 900
    const output = 10 + (n * 13) % 300
    completed.set(requestId, { key, input, output })
    return {
      type: 'complete', request_id: requestId, status: 'completed', status_code: 200, input_tokens: input, output_tokens: output,
      response_time_ms: 50 + n % 400, ...(withStart && { api_key_id: key, ...route })
    }
  }
  /** batch k of a loop: 5 requests started, the 5 the previous batch started completed, 3 reported only at their end */
  const makeBatch = (loop: number, index: number): Batch => {
    const events: Event[] = []
    for (let j = 0; j < 5; j++) {
      const n = index * 5 + j
      events.push({ type: 'start', request_id: `r${loop}-${index}-${j}`, api_key_id: keys[n % keys.length]!.id, ...route })
      if (index > 0) events.push(complete(`r${loop}-${index - 1}-${j}`, n - 5, false))
    }
    for (let j = 0; j < 3; j++) events.push(complete(`c${loop}-${index}-${j}`, index * 3 + j + loop, true))
    return { loop, index, events, acked: false }
  }

  let killed = false
  const answersBeforeKill: string[] = []
  const loadLoop = async (server: Server, loop: number) => {
    for (let index = 0; !killed; index++) {
      const batch = makeBatch(loop, index)
      batches.push(batch)
      const results = await sendBatch(server.base, batch.events)
      if (results === null) continue
      batch.acked = true
      answersBeforeKill.push(...results.map((r) => r.outcome))
    }
  }
  const verifyStatuses: number[] = []
  const verifyLoop = async (server: Server) => {
    for (let n = 0; !killed; n++) {
      const res = await fetch(`${server.base}/api/gateway/keys/verify`, { method: 'POST', headers: GATEWAY, body: JSON.stringify({ key: keys[n % keys.length]!.key, model: 'claude-x' }) }).catch(() => null)
      if (res !== null) verifyStatuses.push(res.status)
    }
  }
  const loops = Promise.all([0, 1, 2, 3].map((loop) => loadLoop(first, loop)).concat([verifyLoop(first), verifyLoop(first)]))
  await until(() => batches.filter((b) => b.acked).length >= 40, '40 batches answered')
  first.child.kill('SIGKILL')
  killed = true
  await first.exited
  await loops

  const unanswered = batches.filter((b) => !b.acked)
  t.ok(unanswered.length > 0, `the kill left batches unanswered (${unanswered.length} of ${batches.length})`)
  t.same([...new Set(answersBeforeKill)], ['recorded'], 'every answered event was recorded')
  t.same(verifyStatuses.filter((s) => s !== 200), [], `every verify answered before the kill was 200 (${verifyStatuses.length})`)

  const restartedAt = Date.now()
  const second = await startServer(t, dataDir)
  t.comment(`spawn to ready after the SIGKILL: ${Date.now() - restartedAt} ms`)
  // the gateway resends what got no answer, each loop's batches in their order
  const resent: string[] = []
  for (const batch of unanswered) {
    const results = await sendBatch(second.base, batch.events)
    t.ok(results, `batch ${batch.loop}/${batch.index} answered on resend`)
    resent.push(...(results ?? []).map((r) => r.outcome))
  }
  const duplicates = resent.filter((o) => o === 'duplicate').length
  t.comment(`resent ${unanswered.length} batches (${resent.length} events): ${duplicates} events had committed before the kill (duplicate), ${resent.length - duplicates} recorded now`)
  t.same(resent.filter((o) => o !== 'recorded' && o !== 'duplicate'), [], 'no resent event rejected')
  // and a resend of batches that were answered changes nothing
  const again = batches.filter((b) => b.acked).slice(0, 3)
  for (const batch of again) t.same((await sendBatch(second.base, batch.events))!.map((r) => r.outcome), batch.events.map(() => 'duplicate'), 'an answered batch resent is all duplicates')
  for (const key of keys) {
    const res = await fetch(`${second.base}/api/gateway/keys/verify`, { method: 'POST', headers: GATEWAY, body: JSON.stringify({ key: key.key, model: 'claude-x' }) })
    t.equal(res.status, 200, 'verify answers after the restart')
  }

  const app = await buildApp(testConfig(await embeddedUrl(dataDir)))
  try {
    await app.ready()
    // every event the gateway sent has exactly one receipt, and no other receipt exists
    const sent = new Set(batches.flatMap((b) => b.events.map((e) => `${e.request_id}/${e.type}`)))
    const receipts = await app.pg.query<{ id: string }>(`SELECT request_id || '/' || event_type AS id FROM gateway_events`)
    t.equal(receipts.rows.length, sent.size, `${sent.size} events sent, as many receipts`)
    t.same(receipts.rows.map((r) => r.id).sort(), [...sent].sort(), 'the receipts are the events sent')
    // each completed request is one completed row with the tokens sent
    const rows = await app.pg.query<{ request_id: string, status: string, api_key_id: string, input_tokens: number, output_tokens: number }>(
      'SELECT request_id, status, api_key_id, input_tokens, output_tokens FROM usage')
    const requests = new Set(batches.flatMap((b) => b.events.map((e) => e.request_id)))
    t.equal(rows.rows.length, requests.size, `one usage row per request (${requests.size})`)
    const finished = rows.rows.filter((r) => r.status === 'completed')
    t.same(
      Object.fromEntries(finished.map((r) => [r.request_id, { key: r.api_key_id, input: r.input_tokens, output: r.output_tokens }])),
      Object.fromEntries(completed), 'every completed request recorded once, with its tokens')
    // each key charged once per completed request: counts and tokens from what the gateway sent
    const charged = await app.pg.query<{ id: string, total_requests: string, total_tokens: string }>('SELECT id, total_requests::text, total_tokens::text FROM api_keys')
    for (const key of keys) {
      const mine = [...completed.values()].filter((c) => c.key === key.id)
      t.same(charged.rows.find((r) => r.id === key.id), {
        id: key.id, total_requests: String(mine.length), total_tokens: String(mine.reduce((sum, c) => sum + c.input + c.output, 0))
      }, `key ${key.id}: ${mine.length} requests charged once each`)
    }
    await assertConsistent(t, app, 'after the kill and the resends: ')
  } finally {
    await app.close()
  }

  second.child.kill('SIGTERM')
  t.same(await second.exited, { code: 0, signal: null }, 'the restarted server stops cleanly')
  t.equal(second.stderr(), '')
})
