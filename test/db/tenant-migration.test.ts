// Migration 20261214090000_tenant_in_keys on a database holding the rate window's seconds,
// histograms and timeline tails: each row gains its tenant (a user's key: the owner; a
// standalone key: itself; a user scope: the user), a deleted key's leftover seconds go,
// every other column is unchanged, and the schema is what Prisma models.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { poolBefore } from './migrated-before.js'

const TENANT = '20261214090000_tenant_in_keys'
const GONE = '00000000-0000-4000-8000-0000000000d1'

t.test(`${TENANT}: every row keyed by its tenant, nothing else changed, no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, TENANT)
  const [alice, admin] = (await pool.query(`INSERT INTO users (username, password_hash, updated_at) VALUES ('alice', 'x', now()), ('admin', 'x', now()) RETURNING id`)).rows.map((r) => r.id as string)
  const [own, solo] = (await pool.query(`INSERT INTO api_keys (user_id, key_hash, key_prefix, key_encrypted, name, is_standalone, updated_at)
      VALUES ($1, 'h1', 'sk', 'e', 'own', false, now()), ($2, 'h2', 'sk', 'e', 'solo', true, now()) RETURNING id`, [alice, admin])).rows.map((r) => r.id as string)
  const second = '2026-12-04T10:00:00Z'
  await pool.query(`INSERT INTO usage_key_seconds (api_key_id, second, requests, tokens) VALUES ($1, $4, 2, 300), ($2, $4, 1, 150), ($3, $4, 5, 900)`, [own, solo, GONE, second])
  const bins = '\\xffff000000010000000000000000'
  for (const [scope, id] of [['api_key', own], ['api_key', solo], ['user', alice], ['user', admin]] as const) {
    await pool.query(`INSERT INTO cache_interval_hourly (scope, scope_id, bucket, bins) VALUES ($1, $2, $3, $4::bytea)`, [scope, id, second, bins])
    await pool.query(`INSERT INTO cache_timeline_tail (scope, scope_id, last_at, last_request_id, user_id, api_key_id, model, provider_id)
      VALUES ($1, $2, $3, 'r1', $4, $5, 'm', '00000000-0000-0000-0000-000000000000')`, [scope, id, second, id === solo || id === admin ? admin : alice, id === alice ? own : solo])
  }
  const before = async (table: string, order: string) => (await pool.query(`SELECT * FROM ${table} ORDER BY ${order}`)).rows
  const oldIntervals = await before('cache_interval_hourly', 'scope, scope_id')
  const oldTails = await before('cache_timeline_tail', 'scope, scope_id')

  t.same(await applyMigrations(url), [TENANT, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > TENANT).sort()], 'the migration applied')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')

  t.same((await pool.query('SELECT api_key_id, tenant_id, requests, tokens::int AS tokens FROM usage_key_seconds ORDER BY requests')).rows, [
    { api_key_id: solo, tenant_id: solo, requests: 1, tokens: 150 },
    { api_key_id: own, tenant_id: alice, requests: 2, tokens: 300 }
  ], "the seconds: alice's key under alice, the standalone key under itself; the deleted key's gone")
  const tenants = new Map([[own, alice], [solo, solo], [alice, alice], [admin, admin]])
  for (const [table, old] of [['cache_interval_hourly', oldIntervals], ['cache_timeline_tail', oldTails]] as const) {
    const rows = await before(table, 'scope, scope_id')
    t.same(rows.map(({ tenant_id: _, ...rest }) => rest), old, `${table}: every other column as it was`)
    t.same(rows.map((r) => r.tenant_id), old.map((r) => tenants.get(r.scope_id)), `${table}: each scope's tenant`)
  }
  t.same((await pool.query(`SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE contype = 'p' AND conrelid::regclass::text IN ('usage_key_seconds', 'cache_interval_hourly', 'cache_timeline_tail') ORDER BY 1`)).rows, [
    { t: 'cache_interval_hourly', def: 'PRIMARY KEY (scope, scope_id, bucket, tenant_id)' },
    { t: 'cache_timeline_tail', def: 'PRIMARY KEY (scope, scope_id, tenant_id)' },
    { t: 'usage_key_seconds', def: 'PRIMARY KEY (api_key_id, second, tenant_id)' }
  ], 'the tenant in each primary key')
})
