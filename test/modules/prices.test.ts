import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { pickPrice, priceVersionsFor, type PriceVersion } from '../../src/modules/prices/service.js'
import { buildTestApp, signIn } from '../helper.js'

const UNKNOWN = '00000000-0000-4000-8000-000000000000'
const flat = (input: number, output: number) => [{ up_to: null, input, output }]

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string, field?: string) {
  t.equal(res.statusCode, status, `${status} ${type}${field === undefined ? '' : ` ${field}`}`)
  t.match(res.json(), { error: { type, message: String }, request_id: String })
  if (field !== undefined) t.equal(res.json().error.field, field)
}

t.test('pickPrice', async (t) => {
  const version = (id: string, model: string, providerId: string | null, effectiveFrom: string): PriceVersion =>
    ({ id, model, providerId, tiers: [], pricePerRequest: null, effectiveFrom: new Date(effectiveFrom) })
  const versions = [
    version('global-old', 'm', null, '2026-01-01T00:00:00Z'),
    version('global-new', 'm', null, '2026-02-01T00:00:00Z'),
    version('global-future', 'm', null, '2026-12-01T00:00:00Z'),
    version('p-own', 'm', 'p', '2026-03-01T00:00:00Z'),
    version('other-model', 'n', null, '2025-01-01T00:00:00Z')
  ]
  const at = (iso: string) => new Date(iso)
  t.equal(pickPrice(versions, 'm', 'p', at('2026-06-01T00:00:00Z'))?.id, 'p-own', 'the provider\'s own price beats the global one')
  t.equal(pickPrice(versions, 'm', 'p', at('2026-02-15T00:00:00Z'))?.id, 'global-new', 'before the provider\'s price starts, the global one applies')
  t.equal(pickPrice(versions, 'm', 'q', at('2026-06-01T00:00:00Z'))?.id, 'global-new', 'a provider without its own price gets the global one')
  t.equal(pickPrice(versions, 'm', null, at('2026-01-15T00:00:00Z'))?.id, 'global-old', 'the latest version that has started wins')
  t.equal(pickPrice(versions, 'm', null, at('2026-02-01T00:00:00Z'))?.id, 'global-new', 'a version applies from its effective_from on')
  t.equal(pickPrice(versions, 'm', null, at('2026-06-01T00:00:00Z'))?.id, 'global-new', 'a future version is ignored')
  t.equal(pickPrice(versions, 'm', null, at('2025-06-01T00:00:00Z')), null, 'before the first version: unpriced')
  t.equal(pickPrice(versions, 'unknown', 'p', at('2026-06-01T00:00:00Z')), null, 'an unknown model is unpriced')
})

t.test('model prices: create with defaults, get, list, history, update as a new version, delete', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url: `/api/admin/model-prices${url}`, headers: admin.headers, ...(payload !== undefined && { payload }) })
  const provider = (await app.inject({ method: 'POST', url: '/api/admin/providers', headers: admin.headers, payload: { name: 'anthropic' } })).json()

  const created = await call('POST', '', {
    model: 'claude-sonnet-4',
    tiers: [{ up_to: 200_000, input: 3, output: 15 }, { up_to: null, input: 6, output: 22.5, cache_write_5m: 7, cache_write_1h: 11, cache_read: 0.5 }],
    price_per_request_usd: 0.01,
    effective_from: '2026-01-01T00:00:00Z'
  })
  t.equal(created.statusCode, 201)
  const global = created.json()
  t.match(global, { model: 'claude-sonnet-4', provider_id: null, provider_name: null, price_per_request_usd: 0.01, effective_from: '2026-01-01T00:00:00.000Z' })
  t.same(global.tiers, [
    { up_to: 200_000, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 },
    { up_to: null, input: 6, output: 22.5, cache_write_5m: 7, cache_write_1h: 11, cache_read: 0.5 }
  ], 'missing cache prices default to input × 1.25 / × 2 / × 0.1; given ones are kept')
  const row = await app.prisma.modelPrice.findUniqueOrThrow({ where: { id: global.id } })
  t.same(row.tiers, [
    { up_to: 200_000, input: 3e9, output: 15e9, cache_write_5m: 3.75e9, cache_write_1h: 6e9, cache_read: 0.3e9 },
    { up_to: null, input: 6e9, output: 22.5e9, cache_write_5m: 7e9, cache_write_1h: 11e9, cache_read: 0.5e9 }
  ], 'stored in nano-USD per 1M tokens')
  t.equal(row.pricePerRequest, 10_000_000n)
  t.same((await call('GET', `/${global.id}`)).json(), global)

  const own = await call('POST', '', { model: 'claude-sonnet-4', provider_id: provider.id, tiers: flat(2.5, 12) })
  t.equal(own.statusCode, 201)
  t.match(own.json(), { provider_id: provider.id, provider_name: 'anthropic', price_per_request_usd: null })
  t.ok(Math.abs(new Date(own.json().effective_from).getTime() - Date.now()) < 10_000, 'effective now by default')

  // a second version of the global price, and one that starts next year
  const newer = (await call('POST', '', { model: 'claude-sonnet-4', tiers: flat(4, 20), effective_from: '2026-02-01T00:00:00+01:00' })).json()
  const future = (await call('POST', '', { model: 'claude-sonnet-4', tiers: flat(9, 9), effective_from: new Date(Date.now() + 365 * 86_400_000).toISOString() })).json()
  await call('POST', '', { model: 'gpt-4o', tiers: flat(2.5, 10) })

  const list = await call('GET', '')
  t.equal(list.statusCode, 200)
  t.match(list.json(), { total: 3, skip: 0, limit: 100 })
  t.same(list.json().prices.map((p: { id: string }) => p.id), [newer.id, own.json().id, (await call('GET', '?model=gpt-4o')).json().prices[0].id],
    'the version in effect per (model, provider): the newer global one, not the future one; global first within a model')
  t.same((await call('GET', `?provider_id=${provider.id}`)).json().prices.map((p: { id: string }) => p.id), [own.json().id])
  t.match((await call('GET', '?model=claude-sonnet-4&skip=1&limit=1')).json(), { total: 2, skip: 1, limit: 1, prices: [{ id: own.json().id }] })

  const history = await call('GET', '/claude-sonnet-4/history')
  t.equal(history.statusCode, 200)
  t.equal(history.json().model, 'claude-sonnet-4')
  t.same(history.json().prices.map((p: { id: string }) => p.id), [future.id, own.json().id, newer.id, global.id], 'every version, newest effective first')
  t.same((await call('GET', `/claude-sonnet-4/history?provider_id=${provider.id}`)).json().prices.map((p: { id: string }) => p.id), [own.json().id])
  t.same((await call('GET', '/no-such-model/history')).json(), { model: 'no-such-model', prices: [] }, 'an unknown model has an empty history')

  // PUT inserts a new version, copying what it does not change; the old row is untouched
  const put = await call('PUT', `/${global.id}`, { price_per_request_usd: null })
  t.equal(put.statusCode, 200)
  const changed = put.json()
  t.not(changed.id, global.id)
  t.same(changed.tiers, global.tiers, 'tiers copied')
  t.match(changed, { model: 'claude-sonnet-4', provider_id: null, price_per_request_usd: null })
  t.ok(Math.abs(new Date(changed.effective_from).getTime() - Date.now()) < 10_000, 'effective now')
  t.equal((await app.prisma.modelPrice.findUniqueOrThrow({ where: { id: global.id } })).pricePerRequest, 10_000_000n, 'the old version is unchanged')
  t.equal((await call('GET', '?model=claude-sonnet-4')).json().prices[0].id, changed.id, 'the new version is in effect')
  const dated = await call('PUT', `/${own.json().id}`, { tiers: flat(1, 2), effective_from: '2027-01-01T00:00:00Z' })
  t.match(dated.json(), { provider_id: provider.id, provider_name: 'anthropic', effective_from: '2027-01-01T00:00:00.000Z', tiers: [{ input: 1, output: 2, cache_read: 0.1 }] })

  const del = await call('DELETE', `/${changed.id}`)
  t.same(del.json(), { message: 'price version deleted' })
  t.equal(await app.prisma.modelPrice.count({ where: { id: changed.id } }), 0)
  t.equal((await call('GET', '?model=claude-sonnet-4')).json().prices[0].id, newer.id, 'the version before it is in effect again')

  const audit = await app.prisma.auditLog.findFirstOrThrow({ where: { action: 'model_prices.update', success: true } })
  t.match(audit.metadata, { price_id: changed.id, previous_price_id: global.id, model: 'claude-sonnet-4' })

  // what the ingestion code reads
  const versions = await priceVersionsFor(app.prisma, ['claude-sonnet-4'])
  t.equal(versions.length, 5)
  t.equal(pickPrice(versions, 'claude-sonnet-4', provider.id, new Date())?.id, own.json().id)
  t.equal(pickPrice(versions, 'claude-sonnet-4', null, new Date('2026-01-15T00:00:00Z'))?.tiers[0]?.cache_write_5m, 3_750_000_000)
})

t.test('model names with slashes, dots and colons work in the history path', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const model = 'accounts/fireworks/models/llama-v3.1:70b'
  const made = await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { model, tiers: flat(0.9, 0.9) } })
  t.equal(made.statusCode, 201)
  const history = await app.inject({ method: 'GET', url: `/api/admin/model-prices/${encodeURIComponent(model)}/history`, headers: admin.headers })
  t.equal(history.statusCode, 200)
  t.match(history.json(), { model, prices: [{ id: made.json().id, model }] })
})

t.test('model prices: refusals', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const user = await signIn(app, 'user')
  const made = (await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { model: 'm', tiers: flat(1, 2), effective_from: '2026-01-01T00:00:00Z' } })).json()
  const tier = (upTo: number | null) => ({ up_to: upTo, input: 1, output: 2 })
  const cases: Array<[string, 'GET' | 'POST' | 'PUT' | 'DELETE', string, object | undefined, number, string, string?]> = [
    ['no tiers', 'POST', '', { model: 'x', tiers: [] }, 400, 'validation_error', 'body.tiers'],
    ['11 tiers', 'POST', '', { model: 'x', tiers: [...Array.from({ length: 10 }, (_, i) => tier(i + 1)), tier(null)] }, 400, 'validation_error', 'body.tiers'],
    ['last tier bounded', 'POST', '', { model: 'x', tiers: [tier(1000)] }, 400, 'invalid_input', 'body.tiers'],
    ['open tier before the last', 'POST', '', { model: 'x', tiers: [tier(null), tier(null)] }, 400, 'invalid_input', 'body.tiers'],
    ['up_to not rising', 'POST', '', { model: 'x', tiers: [tier(1000), tier(1000), tier(null)] }, 400, 'invalid_input', 'body.tiers'],
    ['negative price', 'POST', '', { model: 'x', tiers: [{ up_to: null, input: -1, output: 2 }] }, 400, 'validation_error', 'body.tiers.0.input'],
    ['missing output', 'POST', '', { model: 'x', tiers: [{ up_to: null, input: 1 }] }, 400, 'validation_error', 'body.tiers.0.output'],
    ['unknown tier field', 'POST', '', { model: 'x', tiers: [{ up_to: null, input: 1, output: 2, cache_write: 1 }] }, 400, 'validation_error', 'body.tiers.0.cache_write'],
    ['fractional up_to', 'POST', '', { model: 'x', tiers: [tier(1.5), tier(null)] }, 400, 'validation_error', 'body.tiers.0.up_to'],
    ['bad tiers in an update', 'PUT', `/${made.id}`, { tiers: [tier(5)] }, 400, 'invalid_input', 'body.tiers'],
    ['empty model', 'POST', '', { model: '', tiers: flat(1, 2) }, 400, 'validation_error', 'body.model'],
    ['negative per-request price', 'POST', '', { model: 'x', tiers: flat(1, 2), price_per_request_usd: -0.01 }, 400, 'validation_error', 'body.price_per_request_usd'],
    ['effective_from without offset', 'POST', '', { model: 'x', tiers: flat(1, 2), effective_from: '2026-01-01T00:00:00' }, 400, 'validation_error', 'body.effective_from'],
    ['model is not updatable', 'PUT', `/${made.id}`, { model: 'y' }, 400, 'validation_error', 'body.model'],
    ['empty update', 'PUT', `/${made.id}`, {}, 400, 'validation_error', 'body'],
    ['provider_id not a uuid', 'POST', '', { model: 'x', provider_id: 'anthropic', tiers: flat(1, 2) }, 400, 'validation_error', 'body.provider_id'],
    ['unknown provider', 'POST', '', { model: 'x', provider_id: UNKNOWN, tiers: flat(1, 2) }, 404, 'not_found'],
    ['same model and start twice', 'POST', '', { model: 'm', tiers: flat(5, 5), effective_from: '2026-01-01T01:00:00+01:00' }, 409, 'conflict'],
    ['id not a uuid', 'GET', '/m', undefined, 400, 'validation_error', 'params.id'],
    ['unknown id (get)', 'GET', `/${UNKNOWN}`, undefined, 404, 'not_found'],
    ['unknown id (put)', 'PUT', `/${UNKNOWN}`, { price_per_request_usd: 1 }, 404, 'not_found'],
    ['unknown id (delete)', 'DELETE', `/${UNKNOWN}`, undefined, 404, 'not_found'],
    ['history provider_id not a uuid', 'GET', '/m/history?provider_id=x', undefined, 400, 'validation_error', 'querystring.provider_id'],
    ['list limit over 500', 'GET', '?limit=501', undefined, 400, 'validation_error', 'querystring.limit']
  ]
  for (const [what, method, url, payload, status, type, field] of cases) {
    t.test(what, async (t) => {
      const res = await app.inject({ method, url: `/api/admin/model-prices${url}`, headers: admin.headers, ...(payload !== undefined && { payload }) })
      refused(t, res, status, type, field)
    })
  }
  t.test('tier problems are named', async (t) => {
    const res = await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: admin.headers, payload: { model: 'x', tiers: [tier(1000)] } })
    t.equal(res.json().error.message, 'body.tiers the last tier must have up_to null (no upper bound)')
  })
  t.test('a non-admin is refused', async (t) => {
    refused(t, await app.inject({ method: 'GET', url: '/api/admin/model-prices', headers: user.headers }), 403, 'forbidden')
    refused(t, await app.inject({ method: 'POST', url: '/api/admin/model-prices', headers: user.headers, payload: { model: 'x', tiers: flat(1, 2) } }), 403, 'forbidden')
    refused(t, await app.inject({ method: 'GET', url: '/api/admin/model-prices/m/history', headers: user.headers }), 403, 'forbidden')
  })
  t.test('nothing was written by the refusals', async (t) => {
    t.equal(await app.prisma.modelPrice.count(), 1)
  })
})
