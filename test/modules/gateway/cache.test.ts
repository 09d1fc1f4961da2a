// The verify cache (VERIFY_CACHE_TTL_MS): whatever changes through this process is
// answered at once — admin and user mutations, ingested usage — while a change made
// elsewhere (SQL, another instance on the same database) is answered within the TTL.
// Long TTLs below make "at once" mean invalidation, never expiry; VerifyCache's own TTL
// arithmetic is tested on an injected clock.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { VerifyCache } from '../../../src/modules/gateway/cache.js'
import { buildTestApp, waitUntil } from '../../helper.js'
import { gateway, GATEWAY, type Gateway, type Json } from './fixtures.js'

const HOUR_TTL = { VERIFY_CACHE_TTL_MS: '60000' }

function answers (t: Test, res: LightMyRequestResponse, status: number, type?: string, message = `${status} ${type ?? ''}`) {
  t.equal(res.statusCode, status, message)
  if (type !== undefined) t.equal(res.json().error.type, type, `${message}: error.type`)
}

const sql = (g: Gateway, text: string, values: unknown[]) => g.app.pg.query(text, values)

/** The first answer other than `status`, verifying until the cache lets the change through (bounded well past the TTL). */
const changed = (ttl: number, status: number, verify: () => Promise<LightMyRequestResponse>) =>
  waitUntil(`an answer other than ${status}`, verify, (res) => res.statusCode !== status, { timeoutMs: ttl + 10_000 })

t.test('through this process: a key disabled, limited or topped up through the admin API is answered at once', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  answers(t, await g.verify({ key: key.key }), 200) // read, and cached for a minute
  // the cache is in use: a change made behind the app's back is not seen yet (it would be within the TTL)
  await sql(g, 'UPDATE api_keys SET allowed_models = $2 WHERE id = $1', [key.id, JSON.stringify(['only-this'])])
  answers(t, await g.verify({ key: key.key, model: 'other' }), 200, undefined, 'a change made elsewhere waits for the TTL')

  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}`)
  answers(t, await g.verify({ key: key.key }), 401, 'key_disabled', 'disabled through the admin API: refused on the next request')
  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}`)
  answers(t, await g.verify({ key: key.key, model: 'other' }), 403, 'model_not_allowed', 'enabled again, and the SQL change is read with it')
  await g.adminCall('PUT', `/api/admin/api-keys/${key.id as string}`, { allowed_models: null, expires_at: '2020-01-01T00:00:00Z' })
  answers(t, await g.verify({ key: key.key }), 401, 'key_expired', 'expired through the admin API')
  await g.adminCall('PUT', `/api/admin/api-keys/${key.id as string}`, { expires_at: null, rate_limit: 1 })
  answers(t, await g.verify({ key: key.key }), 200)
  await g.adminCall('PATCH', `/api/admin/api-keys/${key.id as string}/balance`, { amount_usd: -1 })
  answers(t, await g.verify({ key: key.key }), 402, 'balance_exhausted', 'the balance deducted through the admin API')
  await g.adminCall('DELETE', `/api/admin/api-keys/${key.id as string}?hard=true`)
  answers(t, await g.verify({ key: key.key }), 401, 'key_invalid', 'deleted through the admin API')
})

t.test('through this process: an owner disabled or deleted through the admin API is answered at once', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  const user = await g.user()
  const key = await g.userKey(user.id)
  answers(t, await g.verify({ key: key.key }), 200)
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { is_active: false })
  answers(t, await g.verify({ key: key.key }), 401, 'user_disabled')
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { is_active: true, quota_usd: 0 })
  answers(t, await g.verify({ key: key.key }), 402, 'balance_exhausted', 'a zero quota set through the admin API')
  await g.adminCall('PUT', `/api/admin/users/${user.id as string}`, { quota_usd: null })
  answers(t, await g.verify({ key: key.key }), 200)
  await g.adminCall('DELETE', `/api/admin/users/${user.id as string}`)
  answers(t, await g.verify({ key: key.key }), 401, 'key_disabled', 'a deleted owner\'s keys are disabled')
})

t.test('through this process: a key holder disabling their own key is answered at once', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  const own = await g.adminCall('POST', '/api/users/me/api-keys', { name: 'mine' })
  answers(t, await g.verify({ key: own.key }), 200)
  await g.adminCall('PATCH', `/api/users/me/api-keys/${own.id as string}`)
  answers(t, await g.verify({ key: own.key }), 401, 'key_disabled')
})

t.test('through this process: ingested usage moves the counters at once, also for events that do not name their key', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await g.user({ quota_usd: 0.004 })
  const key = await g.userKey(user.id, { concurrent_limit: 1 })
  const sibling = await g.userKey(user.id)
  answers(t, await g.verify({ key: key.key }), 200)
  answers(t, await g.verify({ key: sibling.key }), 200)
  await g.send([{ type: 'start', request_id: 'c1', api_key_id: key.id, model: 'm' }])
  answers(t, await g.verify({ key: key.key }), 429, 'concurrency_limited', 'a start: one in flight')
  // the completion carries no key id; it frees the slot and charges the owner 0.003 of 0.004
  await g.send([{ type: 'complete', request_id: 'c1', status: 'completed', input_tokens: 1000, output_tokens: 0 }])
  answers(t, await g.verify({ key: key.key }), 200, undefined, 'completed: free again')
  answers(t, await g.verify({ key: sibling.key }), 200, undefined, 'the sibling key: 0.001 of the quota left')
  await g.send([{ type: 'complete', request_id: 'c2', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1000, output_tokens: 0 }])
  answers(t, await g.verify({ key: sibling.key }), 402, 'balance_exhausted', 'the owner\'s quota, used up by the other key')
  const duplicate = await g.send([{ type: 'complete', request_id: 'c2', status: 'completed', input_tokens: 1000, output_tokens: 0 }])
  t.equal(duplicate[0]?.outcome, 'duplicate')
})

t.test('through this process: usage forgets only the states of the keys and owners its rows name', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  // owners apart: a batch forgets every key of an owner it names (the owner's quota and budgets are in each)
  const busy = await g.userKey((await g.user()).id as string, { concurrent_limit: 1 })
  const other = await g.userKey((await g.user()).id as string)
  answers(t, await g.verify({ key: busy.key }), 200)
  answers(t, await g.verify({ key: other.key }), 200) // read, and cached for a minute
  // a change behind the app's back shows whether other's state is read again
  await sql(g, 'UPDATE api_keys SET is_active = false WHERE id = $1', [other.id])
  await g.send([{ type: 'start', request_id: 'f1', api_key_id: busy.id, model: 'm' }])
  answers(t, await g.verify({ key: busy.key }), 429, 'concurrency_limited', 'the batch\'s key: read again at once')
  answers(t, await g.verify({ key: other.key }), 200, undefined, 'a key the batch does not name keeps its cached state (the SQL change waits for the TTL)')
  await g.send([{ type: 'complete', request_id: 'f2', api_key_id: other.id, model: 'm', status: 'completed', input_tokens: 10, output_tokens: 0 }])
  answers(t, await g.verify({ key: other.key }), 401, 'key_disabled', 'named by a later batch: read again, with the SQL change')
})

t.test('changed elsewhere: a direct SQL update is answered within the TTL', async (t) => {
  const ttl = 300
  const g = await gateway(t, { VERIFY_CACHE_TTL_MS: String(ttl) })
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  answers(t, await g.verify({ key: key.key }), 200)
  await sql(g, 'UPDATE api_keys SET is_active = false WHERE id = $1', [key.id])
  answers(t, await changed(ttl, 200, () => g.verify({ key: key.key })), 401, 'key_disabled', 'disabled by SQL: refused once the TTL has passed')
  await sql(g, 'UPDATE api_keys SET is_active = true, balance_used = current_balance WHERE id = $1', [key.id])
  answers(t, await changed(ttl, 401, () => g.verify({ key: key.key })), 402, 'balance_exhausted', 'a balance used up elsewhere: refused once the TTL has passed')
})

t.test('changed elsewhere: another instance on the same database disables a key, this one refuses it within the TTL', async (t) => {
  const ttl = 300
  const { app: here, url } = await buildTestApp(t, { env: { VERIFY_CACHE_TTL_MS: String(ttl) } })
  const { app: there } = await buildTestApp(t, { url, env: HOUR_TTL })
  const owner = await there.prisma.user.create({ data: { username: 'owner', email: 'owner@example.com', passwordHash: 'x' } })
  const { createKey } = await import('../../../src/modules/keys/service.js')
  const key = await createKey(there.prisma, there.keyring, owner.id, { name: 'shared' }, false)
  const verify = (app: typeof here) => app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: GATEWAY, payload: { key: key.key } })
  answers(t, await verify(here), 200)
  answers(t, await verify(there), 200)
  await there.prisma.apiKey.update({ where: { id: key.id }, data: { isActive: false } })
  answers(t, await changed(ttl, 200, () => verify(here)), 401, 'key_disabled', 'this instance, once the TTL has passed')
})

t.test('VERIFY_CACHE_TTL_MS=0: nothing is cached, a SQL change is answered at once', async (t) => {
  const g = await gateway(t, { VERIFY_CACHE_TTL_MS: '0' })
  const key = await g.standaloneKey()
  answers(t, await g.verify({ key: key.key }), 200)
  await sql(g, 'UPDATE api_keys SET is_active = false WHERE id = $1', [key.id])
  answers(t, await g.verify({ key: key.key }), 401, 'key_disabled')
})

t.test('VerifyCache: shared reads, unknown keys not kept, reads in flight when cleared or forgotten not kept', async (t) => {
  const cache = new VerifyCache<Json>(60_000)
  let reads = 0
  const read = (value: Json | undefined) => async () => { reads++; return value }

  const [a, b] = await Promise.all([cache.get('h1', read({ v: 1 })), cache.get('h1', read({ v: 2 }))])
  t.same([a, b, reads], [{ v: 1 }, { v: 1 }, 1], 'concurrent verifies of one key share one read')
  t.same(await cache.get('h1', read({ v: 3 })), { v: 1 }, 'then answered from the cache')
  t.equal(reads, 1)

  t.equal(await cache.get('unknown', read(undefined)), undefined)
  t.equal(await cache.get('unknown', read(undefined)), undefined)
  t.equal(reads, 3, 'an unknown key is read every time')

  // a read that started before a change must not be kept after the change cleared the cache
  let release!: (value: Json) => void
  const slow = cache.get('h2', async () => { reads++; return new Promise<Json>((resolve) => { release = resolve }) })
  cache.clear()
  const after = cache.get('h2', read({ v: 'new' }))
  release({ v: 'old' })
  t.same(await slow, { v: 'old' }, 'the caller that started it gets its answer')
  t.same(await after, { v: 'new' }, 'a verify after the change does not join the old read')
  t.same(await cache.get('h2', read({ v: 'newer' })), { v: 'new' }, 'and only the new read is kept')

  // forget: only the matching states go, and a read in flight is not kept if its state matches
  const byId = new VerifyCache<{ id: string }>(60_000)
  let idReads = 0
  const readId = (id: string) => async () => { idReads++; return { id } }
  await byId.get('ha', readId('a'))
  await byId.get('hb', readId('b'))
  let releaseA!: (value: { id: string }) => void
  let releaseC!: (value: { id: string }) => void
  const inFlightA = byId.get('hc', async () => { idReads++; return new Promise<{ id: string }>((resolve) => { releaseA = resolve }) })
  const inFlightC = byId.get('hd', async () => { idReads++; return new Promise<{ id: string }>((resolve) => { releaseC = resolve }) })
  byId.forget((state) => state.id === 'a')
  const joined = byId.get('hc', readId('a'))
  releaseA({ id: 'a' })
  releaseC({ id: 'c' })
  await Promise.all([inFlightA, inFlightC, joined])
  t.equal(idReads, 5, 'a verify after forget does not join a read sent before it')
  await byId.get('hb', readId('b'))
  t.equal(idReads, 5, 'a state forget did not match stays cached')
  await byId.get('hd', readId('c'))
  t.equal(idReads, 5, 'a read in flight whose state did not match is kept')
  await byId.get('ha', readId('a'))
  t.equal(idReads, 6, 'a matching state is read again')
  await byId.get('hc', readId('a'))
  t.equal(idReads, 6, 'the read sent after forget was kept, the one from before it was not (it would have been read again)')

  const off = new VerifyCache<Json>(0)
  await off.get('h', read({ v: 1 }))
  t.same(await off.get('h', read({ v: 2 })), { v: 2 }, 'TTL 0: every call reads')

  let clock = 5000
  const short = new VerifyCache<Json>(2000, { now: () => clock })
  await short.get('h', read({ v: 1 }))
  const before = reads
  clock += 999
  t.same(await short.get('h', read({ v: 9 })), { v: 1 }, 'before half the TTL: answered from the cache…')
  t.equal(reads, before, '…without a read')
  clock += 1
  let renewal: Promise<Json | undefined> | undefined
  t.same(await short.get('h', () => (renewal = read({ v: 2 })())), { v: 1 }, 'past half the TTL: still answered from the cache…')
  t.equal(reads, before + 1, '…while one read renews it')
  await renewal
  t.same(await short.get('h', read({ v: 3 })), { v: 2 }, 'then the renewed state is answered')
  clock += 2000 // the TTL counts from when the renewing read was sent
  t.same(await short.get('h', read({ v: 4 })), { v: 4 }, 'past the TTL: the caller waits for a read')
})

t.test('the cache errs toward refusal: a cached state counts the requests it admitted until their usage arrives', async (t) => {
  const g = await gateway(t, HOUR_TTL)
  const key = await g.standaloneKey({ rate_limit: 3, concurrent_limit: 10 })
  for (let i = 1; i <= 3; i++) answers(t, await g.verify({ key: key.key }), 200, undefined, `verify ${i} of 3`)
  // nothing reported yet: a fresh read would see an empty window, the cache has admitted three
  answers(t, await g.verify({ key: key.key }), 429, 'rate_limited', 'the fourth within the window is refused from the cache')
  // their usage arrives (one of the three): the cache is cleared, and the window is what was reported
  await g.send([{ type: 'start', request_id: 'cached-1', api_key_id: key.id, model: 'm' }])
  answers(t, await g.verify({ key: key.key }), 200, undefined, 'one reported: room for two more')
  answers(t, await g.verify({ key: key.key }), 200)
  answers(t, await g.verify({ key: key.key }), 429, 'rate_limited', 'and the cache has counted both')

  // without the cache, an advisory verify reads only what was reported (README: advisory)
  const plain = await gateway(t, { VERIFY_CACHE_TTL_MS: '0' })
  const uncached = await plain.standaloneKey({ rate_limit: 3 })
  for (let i = 1; i <= 5; i++) answers(t, await plain.verify({ key: uncached.key }), 200, undefined, `uncached verify ${i}: nothing reported`)
})
