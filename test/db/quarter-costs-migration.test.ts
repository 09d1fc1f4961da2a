// Migration 20261214100000_quarter_hour_cache_costs on a database holding usage rows and their
// quarter-hour rollups: each quarter-hour row gains the cache costs of its finished requests
// (by provider, model and format; a request without a provider on the nil one), an in-flight
// request counts nowhere, and the schema is what Prisma models.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { poolBefore } from './migrated-before.js'

const COSTS = '20261214100000_quarter_hour_cache_costs'
const NIL = '00000000-0000-0000-0000-000000000000'

t.test(`${COSTS}: the quarter-hours' cache costs from the finished rows, no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, COSTS)
  const provider = (await pool.query(`INSERT INTO providers (name, updated_at) VALUES ('p', now()) RETURNING id`)).rows[0].id as string
  const rows: Array<[string, string | null, string | null, string, number, number]> = [
    // request at, provider, format, status, cache creation cost, cache read cost (nano-USD)
    ['2026-11-20T10:03:00Z', provider, 'openai:chat', 'completed', 100, 7],
    ['2026-11-20T10:14:59Z', provider, 'openai:chat', 'failed', 50, 0],
    ['2026-11-20T10:15:00Z', provider, 'openai:chat', 'completed', 0, 30],
    ['2026-11-20T10:05:00Z', null, null, 'completed', 9, 1],
    ['2026-11-20T10:07:00Z', provider, 'openai:chat', 'pending', 1000, 1000]
  ]
  for (const [i, [at, p, format, status, creation, read]] of rows.entries()) {
    await pool.query(`INSERT INTO usage (request_id, model, status, provider_id, api_format, cache_creation_cost, cache_read_cost, created_at, finished_at)
      VALUES ($1, 'm', $2, $3, $4, $5, $6, $7, $8)`, [`r${i}`, status, p, format, creation, read, at, status === 'pending' ? null : at])
  }
  // the rollup rows ingestion kept for them (their other measures do not matter here)
  for (const [bucket, p, format] of [['2026-11-20T10:00:00Z', provider, 'openai:chat'], ['2026-11-20T10:15:00Z', provider, 'openai:chat'], ['2026-11-20T10:00:00Z', NIL, '']]) {
    await pool.query(`INSERT INTO usage_quarter_hourly_model (bucket, provider_id, model, api_format, requests) VALUES ($1, $2, 'm', $3, 1)`, [bucket, p, format])
  }
  await pool.query(`INSERT INTO usage_quarter_hourly_global (bucket, requests) VALUES ('2026-11-20T10:00:00Z', 3), ('2026-11-20T10:15:00Z', 1)`)

  t.same(await applyMigrations(url), [COSTS, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > COSTS).sort()], 'the migration applied')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, provider_id, api_format, cache_creation_cost::int AS creation, cache_read_cost::int AS read
      FROM usage_quarter_hourly_model ORDER BY bucket, provider_id = $1`, [NIL])).rows, [
    { at: '10:00', provider_id: provider, api_format: 'openai:chat', creation: 150, read: 7 },
    { at: '10:00', provider_id: NIL, api_format: '', creation: 9, read: 1 },
    { at: '10:15', provider_id: provider, api_format: 'openai:chat', creation: 0, read: 30 }
  ], 'each quarter-hour × provider × model × format: its finished rows\' costs, the pending one left out')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, cache_creation_cost::int AS creation, cache_read_cost::int AS read
      FROM usage_quarter_hourly_global ORDER BY bucket`)).rows, [
    { at: '10:00', creation: 159, read: 8 },
    { at: '10:15', creation: 0, read: 30 }
  ], 'each quarter-hour: every finished row\'s costs')
})
