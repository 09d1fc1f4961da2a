import t from 'tap'
import { buildTestApp } from './helper.js'

t.test('health and readiness', async (t) => {
  const { app } = await buildTestApp(t)
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
})

t.test('readiness is 503 while a migration is pending', async (t) => {
  const { app } = await buildTestApp(t)
  await app.prisma.$executeRaw`DELETE FROM "_prisma_migrations"`
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json(), { status: 'not_ready', reason: /pending migrations: \d+_init/ })
})
