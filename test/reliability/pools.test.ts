// Each workload has its own bounded pool: admin mutations succeed while the gateway keeps
// every ingestion connection busy with 1000-event batches; a hard delete of a key the
// gateway is still using succeeds, later events naming it are rejected one by one, and
// the money books hold after.
import t from 'tap'
import { assertConsistent, gateway, type Gateway, type Json } from '../modules/gateway/fixtures.js'

const SENDERS = 16
const BATCH = 1000
const AT = '2026-03-01T12:00:00.000Z'

interface Load {
  /** batches acknowledged (200) */
  acknowledged: number
  /** answers other than 200 and 503, with their bodies */
  failures: string[]
  /** 503s (resent, as the gateway does) */
  retried: number
  /** outcomes of the events naming each key */
  outcomes: Map<string, Map<string, number>>
  stop: () => Promise<void>
}

/** SENDERS loops, each sending BATCH completions of one of `keys` until stopped; a 503 is resent until acknowledged. */
function startLoad (g: Gateway, keys: string[]): Load {
  let running = true
  const load: Load = { acknowledged: 0, failures: [], retried: 0, outcomes: new Map(), stop: async () => {} }
  const loop = async (sender: number) => {
    const keyId = keys[sender % keys.length]!
    for (let batch = 0; running; batch++) {
      const events = Array.from({ length: BATCH }, (_, i) => ({
        type: 'complete', request_id: `s${sender}-b${batch}-e${i}`, api_key_id: keyId, model: 'm', created_at: AT,
        status: 'completed', status_code: 200, input_tokens: 100 + i, output_tokens: 10
      }))
      for (;;) {
        const res = await g.usage(events)
        if (res.statusCode === 503) { load.retried++; continue }
        if (res.statusCode !== 200) { load.failures.push(`${res.statusCode} ${res.body.slice(0, 300)}`); return }
        load.acknowledged++
        const counts = load.outcomes.get(keyId) ?? new Map<string, number>()
        for (const r of res.json().results as Json[]) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1)
        load.outcomes.set(keyId, counts)
        break
      }
    }
  }
  const loops = Array.from({ length: SENDERS }, (_, sender) => loop(sender))
  load.stop = async () => { running = false; await Promise.all(loops) }
  return load
}

/** Resolves once `condition` holds, polling; fails past `ms`. */
async function until (condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('admin mutations answer 2xx while 16 connections send 1000-event batches', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await g.user({ quota_usd: 1_000_000 })
  const keys = [await g.userKey(user.id), await g.standaloneKey()]
  const standalone = await g.standaloneKey()
  const load = startLoad(g, keys.map((k) => k.id))
  // the mutations start once every sender has a batch in flight or behind it
  await until(() => load.acknowledged >= SENDERS, 120_000, 'a first round of batches')

  const call = (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    g.app.inject({ method, url, headers: g.admin.headers, ...(payload !== undefined && { payload }) })
  const mutations: Array<[string, () => ReturnType<typeof call>]> = [
    ['create a user', () => call('POST', '/api/admin/users', { username: 'under-load', password: 'correct-horse-battery' })],
    ['update a user', () => call('PUT', `/api/admin/users/${user.id}`, { quota_usd: 2_000_000 })],
    ['create a key', () => call('POST', `/api/admin/users/${user.id}/api-keys`, { name: 'made under load' })],
    ['update the key in use', () => call('PUT', `/api/admin/api-keys/${keys[0]!.id}`, { rate_limit: 100_000 })],
    ['toggle a key', () => call('PATCH', `/api/admin/api-keys/${standalone.id}`)],
    ['top up the standalone key in use', () => call('PATCH', `/api/admin/api-keys/${keys[1]!.id}/balance`, { amount_usd: 5 })],
    ['create a provider', () => call('POST', '/api/admin/providers', { name: 'under-load', billing_type: 'pay_as_you_go' })],
    ['create a price', () => call('POST', '/api/admin/model-prices', { model: 'other', tiers: [{ up_to: null, input: 1, output: 2 }] })],
    ['update the standalone key in use', () => call('PUT', `/api/admin/api-keys/${keys[1]!.id}`, { name: 'renamed under load' })],
    ['disable a key', () => call('DELETE', `/api/admin/api-keys/${standalone.id}?hard=false`)]
  ]
  const answers: string[] = []
  for (const [what, mutation] of mutations) {
    const res = await mutation()
    answers.push(`${what}: ${res.statusCode}${res.statusCode >= 300 ? ` ${res.body}` : ''}`)
  }
  const during = load.acknowledged
  await load.stop()
  t.ok(during > SENDERS, `the load ran throughout (${during} batches acknowledged by the last mutation)`)
  t.same(answers.filter((a) => !/: 2\d\d$/.test(a)), [], 'every mutation answered 2xx')
  t.equal(answers.length, mutations.length)
  t.same(load.failures, [], 'no batch answered other than 200 or 503')
  t.comment(`${load.acknowledged} batches acknowledged, ${load.retried} resent after a 503`)
  await assertConsistent(t, g.app)
})

t.test('a hard delete of a key under continuous usage answers 2xx; its later events are rejected one by one', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await g.user({ quota_usd: 1_000_000 })
  const doomed = await g.userKey(user.id)
  const kept = await g.userKey(user.id)
  const load = startLoad(g, [doomed.id, kept.id])
  await until(() => load.acknowledged >= SENDERS, 120_000, 'a first round of batches')

  const started = Date.now()
  const res = await g.app.inject({ method: 'DELETE', url: `/api/admin/api-keys/${doomed.id}?hard=true`, headers: g.admin.headers })
  const took = Date.now() - started
  t.equal(res.statusCode, 200, `the hard delete answers 200 (${res.body})`)
  t.comment(`hard delete under load took ${took} ms`)
  // every sender acknowledges at least one more batch, all sent after the delete committed
  const after = load.acknowledged
  await until(() => load.acknowledged >= after + 2 * SENDERS, 120_000, 'batches after the delete')
  await load.stop()

  t.same(load.failures, [], 'no batch answered other than 200 or 503')
  t.equal(await g.app.prisma.apiKey.count({ where: { id: doomed.id } }), 0, 'the key is gone')
  t.equal(await g.app.prisma.usage.count({ where: { apiKeyId: doomed.id } }), 0, 'no usage row names it')
  t.ok((load.outcomes.get(doomed.id)?.get('rejected') ?? 0) >= BATCH, 'events naming the deleted key were rejected')
  t.equal(load.outcomes.get(kept.id)?.get('rejected') ?? 0, 0, 'no event of the other key was rejected')
  const recorded = [...load.outcomes.values()].reduce((sum, counts) => sum + (counts.get('recorded') ?? 0), 0)
  t.equal(await g.app.prisma.usage.count(), recorded, 'one row per recorded event')
  await assertConsistent(t, g.app)
})

t.test('a pool wait that times out answers 503 database_busy with Retry-After, never 500', async (t) => {
  const g = await gateway(t, { DB_POOL_INGEST: '1', DB_POOL_ADMIN: '1', DB_POOL_WAIT_MS: '200' })
  const user = await g.user()
  const key = await g.userKey(user.id)
  // every connection of the ingestion pool and of the admin pool is taken
  const ingest = await g.app.ingestPg.connect()
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  const admin = g.app.prisma.$transaction(async () => { await held }, { timeout: 60_000 })
  let freed = false
  const free = () => { if (!freed) { freed = true; ingest.release(); release() } }
  t.teardown(free)

  const usage = await g.usage([{ type: 'start', request_id: 'busy-1', api_key_id: key.id, model: 'm' }])
  t.equal(usage.statusCode, 503, 'a usage batch waiting past DB_POOL_WAIT_MS answers 503')
  t.equal(usage.headers['retry-after'], '1')
  t.match(usage.json(), { error: { type: 'database_busy', message: String }, request_id: String })
  const mutation = await g.app.inject({ method: 'PUT', url: `/api/admin/users/${user.id as string}`, headers: g.admin.headers, payload: { quota_usd: 5 } })
  t.equal(mutation.statusCode, 503, 'an admin mutation that cannot start its transaction in time answers 503')
  t.equal(mutation.headers['retry-after'], '1')
  t.match(mutation.json(), { error: { type: 'database_busy' } })

  free()
  await admin
  t.same(await g.send([{ type: 'start', request_id: 'busy-1', api_key_id: key.id, model: 'm' }]), [{ request_id: 'busy-1', type: 'start', outcome: 'recorded' }], 'the resent batch is recorded once the pool has room')
  t.equal((await g.app.inject({ method: 'PUT', url: `/api/admin/users/${user.id as string}`, headers: g.admin.headers, payload: { quota_usd: 5 } })).statusCode, 200)
})
