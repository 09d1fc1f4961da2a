// The Prisma client, created from the config inside a named plugin (never at module
// level) and proven reachable at boot: the pg adapter connects lazily.
import { PrismaPg } from '@prisma/adapter-pg'
import fp from 'fastify-plugin'
import { PrismaClient, type Prisma } from '../generated/prisma/client.js'

export type Db = PrismaClient | Prisma.TransactionClient

declare module 'fastify' {
  interface FastifyInstance { prisma: PrismaClient }
}

export function createPrisma (databaseUrl: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: 10 }) })
}

export default fp<{ databaseUrl: string }>(async (app, opts) => {
  const prisma = createPrisma(opts.databaseUrl)
  await prisma.$queryRaw`SELECT 1`
  app.decorate('prisma', prisma)
  app.addHook('onClose', async () => { await prisma.$disconnect() })
}, { name: 'prisma' })
