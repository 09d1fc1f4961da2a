// Provider allow-lists are normalised on write (src/modules/providers/allowlist.ts): every
// entry, a provider's id or exact name, is stored and read back as the provider's id; an
// unknown entry is a 400 that writes nothing. Migration 20261202100000 converts the lists
// stored before, and a renamed provider stays allowed at verify.
import { readFile } from 'node:fs/promises'
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { signIn } from '../helper.js'
import { gateway, type Json } from './gateway/fixtures.js'

const MIGRATION = new URL('../../prisma/migrations/20261202100000_allowed_providers_ids/migration.sql', import.meta.url)

async function setup (t: Test) {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const call = (method: 'POST' | 'PUT', url: string, payload: object, headers: Record<string, string> = g.admin.headers) =>
    g.app.inject({ method, url, headers, payload })
  const stored = async (table: 'api_keys' | 'users', id: string) =>
    (await g.app.pg.query<{ list: unknown }>(`SELECT allowed_providers AS list FROM ${table} WHERE id = $1`, [id])).rows[0]?.list
  return { g, alpha: alpha.id as string, beta: beta.id as string, call, stored }
}

function refusedUnknown (t: Test, res: LightMyRequestResponse, entry: string) {
  t.equal(res.statusCode, 400, `${entry}: 400`)
  t.match(res.json(), { error: { type: 'invalid_input', field: 'body.allowed_providers', message: new RegExp(`"${entry}"`) } }, `the message names ${entry}`)
}

t.test('keys: a name or an id (any case) is stored and read as the provider\'s id, duplicates collapse, order kept', async (t) => {
  const { g, alpha, beta, call, stored } = await setup(t)

  const byName = await call('POST', '/api/admin/api-keys', { name: 'by-name', allowed_providers: ['beta', 'alpha'] })
  t.equal(byName.statusCode, 201)
  t.same(byName.json().allowed_providers, [beta, alpha], 'the answer holds the ids, in the order sent')
  t.same(await stored('api_keys', byName.json().id), [beta, alpha], 'stored as ids')
  t.same((await call('POST', '/api/admin/api-keys', { name: 'by-id', allowed_providers: [alpha.toUpperCase(), beta] })).json().allowed_providers, [alpha, beta], 'ids in any case: the canonical id')
  const twice = await call('POST', '/api/admin/api-keys', { name: 'twice', allowed_providers: ['beta', alpha, beta.toUpperCase(), 'alpha'] })
  t.same(twice.json().allowed_providers, [beta, alpha], 'one provider named twice is kept once, at its first place')

  // the admin's door to a user's keys, create and update, and any key's update
  const user = await g.user()
  const own = await call('POST', `/api/admin/users/${user.id as string}/api-keys`, { name: 'k', allowed_providers: ['alpha'] })
  t.same(own.json().allowed_providers, [alpha])
  const updated = await call('PUT', `/api/admin/users/${user.id as string}/api-keys/${own.json().id as string}`, { allowed_providers: ['beta'] })
  t.equal(updated.statusCode, 200)
  t.same(updated.json().allowed_providers, [beta])
  t.same(await stored('api_keys', own.json().id), [beta])
  const anyKey = await call('PUT', `/api/admin/api-keys/${byName.json().id as string}`, { allowed_providers: ['alpha'] })
  t.same(anyKey.json().allowed_providers, [alpha])
  const read = await g.app.inject({ method: 'GET', url: `/api/admin/api-keys/${byName.json().id as string}`, headers: g.admin.headers })
  t.same(read.json().allowed_providers, [alpha], 'a read answers the ids')
  const list = await g.app.inject({ method: 'GET', url: `/api/admin/users/${user.id as string}/api-keys`, headers: g.admin.headers })
  t.same(list.json().api_keys.map((k: Json) => k.allowed_providers), [[beta]])

  // the holder's own read shows the same ids
  const holder = await signIn(g.app, 'user', 'holder')
  const mine = await call('POST', `/api/admin/users/${holder.id}/api-keys`, { name: 'mine', allowed_providers: ['beta'] })
  const ownRead = await g.app.inject({ method: 'GET', url: `/api/users/me/api-keys/${mine.json().id as string}`, headers: holder.headers })
  t.same(ownRead.json().allowed_providers, [beta])
  // [] and null still mean "all"
  t.same((await call('PUT', `/api/admin/api-keys/${byName.json().id as string}`, { allowed_providers: [] })).json().allowed_providers, null)
  t.same(await stored('api_keys', byName.json().id), null)
})

t.test('keys: an unknown entry is a 400 naming it, and nothing is written', async (t) => {
  const { g, alpha, call, stored } = await setup(t)
  const before = await g.app.prisma.apiKey.count()
  refusedUnknown(t, await call('POST', '/api/admin/api-keys', { name: 'k', allowed_providers: ['alpha', 'gamma'] }), 'gamma')
  const user = await g.user()
  refusedUnknown(t, await call('POST', `/api/admin/users/${user.id as string}/api-keys`, { name: 'k', allowed_providers: ['Alpha'] }), 'Alpha')
  const missingId = '00000000-0000-4000-8000-000000000000'
  refusedUnknown(t, await call('POST', '/api/admin/api-keys', { name: 'k', allowed_providers: [missingId] }), missingId)
  t.equal(await g.app.prisma.apiKey.count(), before, 'no key created')

  const key = await g.standaloneKey({ name: 'keep', allowed_providers: ['alpha'], rate_limit: 5 })
  refusedUnknown(t, await call('PUT', `/api/admin/api-keys/${key.id as string}`, { name: 'renamed', rate_limit: 9, allowed_providers: ['alpha', 'nope'] }), 'nope')
  refusedUnknown(t, await call('PUT', `/api/admin/users/${key.user_id as string}/api-keys/${key.id as string}`, { allowed_providers: ['nope'] }), 'nope')
  const row = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.match(row, { name: 'keep', rateLimit: 5 }, 'the other fields of the refused update are not written either')
  t.same(await stored('api_keys', key.id), [alpha], 'the list is unchanged')
})

t.test('users: Aether\'s form (ids) and keymeter\'s API (names) store the same ids; unknown is a 400 with nothing written', async (t) => {
  const { g, alpha, beta, call, stored } = await setup(t)
  const aether = await call('POST', '/api/admin/users', { username: 'ada', password: 'analytical', allowed_providers: [alpha], allowed_endpoints: null, allowed_models: null })
  t.equal(aether.statusCode, 201)
  t.same(aether.json().allowed_providers, [alpha])
  const named = await call('POST', '/api/admin/users', { username: 'grace', password: 'correct-horse-battery', allowed_providers: ['beta', 'alpha', alpha] })
  t.same(named.json().allowed_providers, [beta, alpha])
  t.same(await stored('users', named.json().id), [beta, alpha])
  const updated = await call('PUT', `/api/admin/users/${aether.json().id as string}`, { allowed_providers: ['beta'] })
  t.same(updated.json().allowed_providers, [beta])
  const read = await g.app.inject({ method: 'GET', url: `/api/admin/users/${aether.json().id as string}`, headers: g.admin.headers })
  t.same(read.json().allowed_providers, [beta], 'the edit form prefills ids')

  const before = await g.app.prisma.user.count()
  refusedUnknown(t, await call('POST', '/api/admin/users', { username: 'bob', password: 'correct-horse-battery', allowed_providers: ['gamma'] }), 'gamma')
  t.equal(await g.app.prisma.user.count(), before, 'no user created')
  refusedUnknown(t, await call('PUT', `/api/admin/users/${aether.json().id as string}`, { username: 'ada2', allowed_providers: ['alpha', 'gamma'] }), 'gamma')
  const row = await g.app.prisma.user.findUniqueOrThrow({ where: { id: aether.json().id } })
  t.equal(row.username, 'ada', 'the refused update wrote nothing')
  t.same(await stored('users', aether.json().id), [beta])
})

t.test('the allow-list routes\' refusals: 401 without a token, 403 for a user on the admin paths, 400 on bad input', async (t) => {
  const { g, alpha, call, stored } = await setup(t)
  const user = await signIn(g.app, 'user', 'plain')
  const body = { name: 'k', allowed_providers: ['alpha'] }
  t.equal((await g.app.inject({ method: 'POST', url: '/api/admin/api-keys', payload: body })).statusCode, 401)
  t.equal((await call('POST', '/api/admin/api-keys', body, user.headers)).statusCode, 403)
  t.equal((await call('POST', '/api/admin/users', { username: 'x', password: 'correct-horse-battery', allowed_providers: ['alpha'] }, user.headers)).statusCode, 403)
  // one's own key takes an allow-list too, normalised the same way (it can only narrow the owner's)
  const own = await call('POST', '/api/users/me/api-keys', { name: 'own', allowed_providers: ['alpha'] }, user.headers)
  t.equal(own.statusCode, 201, 'one\'s own key takes an allow-list')
  t.same(await stored('api_keys', own.json().id), [alpha], 'stored as the provider\'s id')
  t.equal((await call('POST', '/api/users/me/api-keys', { name: 'k', allowed_providers: ['nobody'] }, user.headers)).statusCode, 400, 'an unknown provider on one\'s own key')
  for (const bad of [['alpha', 'alpha'], [''], 'alpha', [1]]) {
    t.equal((await call('POST', '/api/admin/api-keys', { name: 'k', allowed_providers: bad })).statusCode, 400, `allowed_providers ${JSON.stringify(bad)}`)
  }
  t.equal(await g.app.prisma.apiKey.count({ where: { name: 'k' } }), 0, 'nothing created')
})

t.test('a renamed provider stays allowed at verify: the list holds its id', async (t) => {
  const { g, alpha, call } = await setup(t)
  const key = await g.standaloneKey({ allowed_providers: ['alpha'] })
  const user = await g.user({ allowed_providers: ['alpha', 'beta'] })
  const userKey = await g.userKey(user.id)
  t.equal((await g.verify({ key: key.key, provider: 'alpha' })).statusCode, 200, 'before the rename')
  t.equal((await call('PUT', `/api/admin/providers/${alpha}`, { name: 'alpha-renamed' })).statusCode, 200)

  for (const k of [key, userKey]) {
    t.equal((await g.verify({ key: k.key, provider: 'alpha-renamed' })).statusCode, 200, 'the new name is allowed')
    t.equal((await g.verify({ key: k.key, provider: alpha })).statusCode, 200, 'and the id')
  }
  const keyRead = await g.app.inject({ method: 'GET', url: `/api/admin/api-keys/${key.id as string}`, headers: g.admin.headers })
  t.match(keyRead.json(), { allowed_providers: [alpha], allowed_provider_names: ['alpha-renamed'] }, 'the key record names the provider by its new name')
  const userRead = await g.app.inject({ method: 'GET', url: `/api/admin/users/${user.id as string}`, headers: g.admin.headers })
  t.same(userRead.json().allowed_provider_names, ['alpha-renamed', 'beta'], 'so does the user record')
  const refusals: Array<[LightMyRequestResponse, string]> = [
    [await g.verify({ key: key.key, provider: 'beta' }), 'another provider'],
    [await g.verify({ key: key.key, provider: 'alpha' }), 'the old name, which no provider has now'],
    [await g.verify({ key: userKey.key, provider: 'gamma' }), 'a provider outside the user\'s list']
  ]
  for (const [res, what] of refusals) {
    t.equal(res.statusCode, 403, what)
    t.match(res.json(), { error: { type: 'provider_not_allowed' } }, what)
  }
})

t.test('migration 20261202100000 converts stored names to ids and keeps what matches nothing', async (t) => {
  const { g, alpha, beta, stored } = await setup(t)
  const keys = await Promise.all([1, 2, 3, 4].map(() => g.standaloneKey()))
  const user = await g.user()
  const other = await g.user()
  const set = (table: string, id: string, list: unknown) => g.app.pg.query(`UPDATE ${table} SET allowed_providers = $2::jsonb WHERE id = $1`, [id, list === null ? null : JSON.stringify(list)])
  await set('api_keys', keys[0]!.id, ['beta', 'ghost', alpha.toUpperCase(), 'alpha', beta])
  await set('api_keys', keys[1]!.id, [])
  await set('api_keys', keys[2]!.id, null)
  await set('api_keys', keys[3]!.id, [alpha])
  await set('users', user.id, ['alpha', 'Beta'])
  await set('users', other.id, ['beta'])
  const stamps = async () => (await g.app.pg.query<{ id: string, updated_at: Date }>('SELECT id, updated_at FROM api_keys UNION ALL SELECT id, updated_at FROM users ORDER BY id')).rows

  const before = await stamps()
  const migration = await readFile(MIGRATION, 'utf8')
  await g.app.pg.query(migration)
  t.same(await stored('api_keys', keys[0]!.id), [beta, 'ghost', alpha], 'names and ids to ids in order, the unknown kept in its place, duplicates once')
  t.same(await stored('api_keys', keys[1]!.id), [], 'an empty list stays')
  t.same(await stored('api_keys', keys[2]!.id), null, 'no list stays')
  t.same(await stored('api_keys', keys[3]!.id), [alpha])
  t.same(await stored('users', user.id), [alpha, 'Beta'], 'names are exact: Beta is no provider\'s name')
  t.same(await stored('users', other.id), [beta])
  t.same(await stamps(), before, 'updated_at untouched')

  await g.app.pg.query(migration)
  t.same(await stored('api_keys', keys[0]!.id), [beta, 'ghost', alpha], 'a second run changes nothing')

  // the records answer the names beside the ids: a kept entry as it is, a deleted provider null
  await g.adminCall('DELETE', `/api/admin/providers/${alpha}`)
  const list = (await g.app.inject({ method: 'GET', url: '/api/admin/api-keys?limit=10', headers: g.admin.headers })).json().api_keys as Json[]
  const names = Object.fromEntries(list.map((k) => [k.id, k.allowed_provider_names]))
  t.same([names[keys[0]!.id], names[keys[1]!.id], names[keys[2]!.id], names[keys[3]!.id]], [['beta', 'ghost', null], null, null, [null]])
  const users = (await g.app.inject({ method: 'GET', url: '/api/admin/users', headers: g.admin.headers })).json() as Json[]
  t.same(users.find((u) => u.id === user.id)?.allowed_provider_names, [null, 'Beta'])
  t.same(users.find((u) => u.id === g.admin.id)?.allowed_provider_names, null, 'no list, no names')
})
