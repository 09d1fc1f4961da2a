// Instances started at once on a new database each create the first admin if none exists:
// one of them does, the others find it made, and none fails its start over it.
import t from 'tap'
import { ensureFirstAdmin } from '../src/modules/users/service.js'
import { buildTestApp } from './helper.js'

t.test('three first-admin creations at once: one admin, every start goes on', async (t) => {
  const { app } = await buildTestApp(t)
  t.equal(await app.prisma.user.count({ where: { role: 'admin' } }), 0, 'a new database: no admin yet')
  const settings = { email: 'admin@keymeter.local', username: 'admin', password: 'first-admin-password' }
  const outcomes = await Promise.all([0, 1, 2].map(() => ensureFirstAdmin(app.prisma, settings)))
  t.same(outcomes.map((o) => o.created).sort(), [false, false, true], 'one created it')
  t.equal(await app.prisma.user.count({ where: { role: 'admin' } }), 1)
  const generated = await Promise.all([0, 1].map(() => ensureFirstAdmin(app.prisma, { email: 'x@keymeter.local', username: 'x' })))
  t.same(generated, [{ created: false }, { created: false }], 'an admin exists: nothing made, no password generated')
})

t.test('a name taken by someone who is not an admin still stops the start', async (t) => {
  const { app } = await buildTestApp(t)
  await app.prisma.user.create({ data: { username: 'admin', email: 'someone@example.com', role: 'user', passwordHash: 'x' } })
  await t.rejects(ensureFirstAdmin(app.prisma, { email: 'admin@keymeter.local', username: 'admin', password: 'first-admin-password' }), { code: 'P2002' })
})
