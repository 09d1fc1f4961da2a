// Migration 20261215100000_quarter_hour_users_and_keys on a database holding usage rows: each
// quarter-hour gets every finished request's part per user × provider and per key (a missing one
// on the nil uuid), an unfinished request counts nowhere, and the schema is what Prisma models.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { month, poolBefore } from './migrated-before.js'

const MIGRATION = '20261215100000_quarter_hour_users_and_keys'
const NIL = '00000000-0000-0000-0000-000000000000'

t.test(`${MIGRATION}: the quarter-hours of users and keys from the finished rows, no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, MIGRATION)
  const provider = (await pool.query(`INSERT INTO providers (name, updated_at) VALUES ('p', now()) RETURNING id`)).rows[0].id as string
  const user = (await pool.query(`INSERT INTO users (email, username, password_hash, updated_at) VALUES ('a@x', 'a', 'x', now()) RETURNING id`)).rows[0].id as string
  const key = (await pool.query(`INSERT INTO api_keys (user_id, key_hash, key_prefix, key_encrypted, name, updated_at) VALUES ($1, 'h', 'sk-h', 'e', 'k', now()) RETURNING id`, [user])).rows[0].id as string
  // 10:00 UTC on the second day of this month (the partitions made ahead hold it)
  const at = (minute: number, second = 0) => new Date(month(0).getTime() + 86_400_000 + 36_000_000 + minute * 60_000 + second * 1000)
  const rows: Array<[Date, string | null, string | null, string | null, string, number, number, number]> = [
    // created, user, key, provider, status, tokens, cost, actual cost (nano-USD)
    [at(1), user, key, provider, 'completed', 100, 1000, 1500],
    [at(14, 59), user, key, provider, 'failed', 7, 0, 0],
    [at(2), user, key, null, 'completed', 5, 50, 50],
    [at(15), user, null, provider, 'cancelled', 3, 30, 40],
    [at(16), null, null, provider, 'completed', 2, 20, 20],
    [at(17), user, key, provider, 'pending', 999, 9999, 9999]
  ]
  for (const [i, [created, u, k, p, status, tokens, cost, actual]] of rows.entries()) {
    await pool.query(`INSERT INTO usage (request_id, model, status, user_id, api_key_id, provider_id, total_tokens, total_cost, actual_total_cost, created_at, finished_at)
      VALUES ($1, 'm', $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [`r${i}`, status, u, k, p, tokens, cost, actual, created, status === 'pending' ? null : created])
  }

  t.same(await applyMigrations(url), [MIGRATION, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > MIGRATION).sort()], 'the migration applied')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, user_id, provider_id, requests, errors, total_tokens::int AS tokens, total_cost::int AS cost, actual_total_cost::int AS actual
      FROM usage_quarter_hourly_user ORDER BY bucket, user_id = $1, provider_id = $1`, [NIL])).rows, [
    { at: '10:00', user_id: user, provider_id: provider, requests: 2, errors: 1, tokens: 107, cost: 1000, actual: 1500 },
    { at: '10:00', user_id: user, provider_id: NIL, requests: 1, errors: 0, tokens: 5, cost: 50, actual: 50 },
    { at: '10:15', user_id: user, provider_id: provider, requests: 1, errors: 0, tokens: 3, cost: 30, actual: 40 },
    { at: '10:15', user_id: NIL, provider_id: provider, requests: 1, errors: 0, tokens: 2, cost: 20, actual: 20 }
  ], 'each quarter-hour × user × provider, the pending row left out')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, api_key_id, requests, errors, total_tokens::int AS tokens, total_cost::int AS cost, actual_total_cost::int AS actual
      FROM usage_quarter_hourly_api_key ORDER BY bucket, api_key_id = $1`, [NIL])).rows, [
    { at: '10:00', api_key_id: key, requests: 3, errors: 1, tokens: 112, cost: 1050, actual: 1550 },
    { at: '10:15', api_key_id: NIL, requests: 2, errors: 0, tokens: 5, cost: 50, actual: 60 }
  ], 'each quarter-hour × key, the key-less rows on the nil key')
})
