// Prisma CLI configuration. keymeter applies its migrations itself (src/db/migrate.ts);
// with the schema engine available, `prisma migrate deploy` works on the same folders.
import { defineConfig } from 'prisma/config'

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost:5432/keymeter' }
})
