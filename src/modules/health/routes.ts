// Liveness and readiness for load balancers and orchestrators.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { pendingMigrations, readMigrations } from '../../db/migrate.js'

const Health = Type.Object({ status: Type.Literal('ok') })
const Ready = Type.Object({ status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]), reason: Type.Optional(Type.String()) })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const migrations = await readMigrations()

  app.get('/health', { schema: { tags: ['operations'], summary: 'Liveness', description: 'Answers 200 while the process runs; it does not touch the database. For a liveness probe.', response: { 200: Health } } }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    schema: { tags: ['operations'], summary: 'Readiness: database reachable and every migration applied', description: '503 with the reason while the database is unreachable or a migration is pending. For a readiness probe or a load balancer.', response: { 200: Ready, 503: Ready } }
  }, async (_request, reply) => {
    // the migration bookkeeping queries are constants of src/db/migrate.ts, never built from input
    const db = { query: async <T>(sql: string) => ({ rows: await app.prisma.$queryRawUnsafe<T[]>(sql) }) }
    try {
      const pending = await pendingMigrations(db, migrations)
      if (pending.length > 0) return reply.code(503).send({ status: 'not_ready' as const, reason: `pending migrations: ${pending.map((m) => m.name).join(', ')}` })
      return { status: 'ready' as const }
    } catch (error) {
      app.log.warn({ err: error }, 'readiness check failed')
      return reply.code(503).send({ status: 'not_ready' as const, reason: 'database unreachable or migrations invalid' })
    }
  })
}

export default routes
