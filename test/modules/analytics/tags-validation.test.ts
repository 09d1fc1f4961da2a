// A key's tags, as every write takes them: at most 20 distinct labels of 1..64 characters
// [A-Za-z0-9_.:-], on an admin's create and update of standalone and user keys; null or
// [] clears them.
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'

t.test('tags: bounded labels on create and update', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const call = async (method: 'POST' | 'PUT', url: string, payload: object) => await g.app.inject({ method, url, headers: g.admin.headers, payload })

  const good = ['team:search', 'env.prod', 'cost-centre_42', 'A'.repeat(64)]
  const created = await call('POST', '/api/admin/api-keys', { name: 'tagged', tags: good })
  t.equal(created.statusCode, 201)
  t.same(created.json().tags, good)
  const own = await call('POST', `/api/admin/users/${user.id as string}/api-keys`, { name: 'tagged', tags: ['x'] })
  t.equal(own.statusCode, 201)
  t.same(own.json().tags, ['x'])

  const bad: Array<[string, unknown]> = [
    ['empty label', ['']],
    ['65 characters', ['a'.repeat(65)]],
    ['a space', ['two words']],
    ['a comma', ['a,b']],
    ['a slash', ['a/b']],
    ['non-ASCII', ['é']],
    ['21 labels', Array.from({ length: 21 }, (_, i) => `t${i}`)],
    ['a repeat', ['a', 'a']],
    ['not strings', [1]],
    ['not an array', 'team']
  ]
  const keyId = created.json().id as string
  const ownId = own.json().id as string
  for (const [what, tags] of bad) {
    t.equal((await call('POST', '/api/admin/api-keys', { name: 'bad', tags })).statusCode, 400, `create: ${what}`)
    t.equal((await call('POST', `/api/admin/users/${user.id as string}/api-keys`, { name: 'bad', tags })).statusCode, 400, `user key create: ${what}`)
    t.equal((await call('PUT', `/api/admin/api-keys/${keyId}`, { tags })).statusCode, 400, `update: ${what}`)
    t.equal((await call('PUT', `/api/admin/users/${user.id as string}/api-keys/${ownId}`, { tags })).statusCode, 400, `user key update: ${what}`)
  }

  const twenty = Array.from({ length: 20 }, (_, i) => `t${i}`)
  const updated = await call('PUT', `/api/admin/api-keys/${keyId}`, { tags: twenty })
  t.equal(updated.statusCode, 200)
  t.same(updated.json().tags, twenty)
  t.same((await call('PUT', `/api/admin/api-keys/${keyId}`, { tags: [] })).json().tags, null, '[] clears them')
  t.same((await call('PUT', `/api/admin/users/${user.id as string}/api-keys/${ownId}`, { tags: null })).json().tags, null, 'null clears them')
})
