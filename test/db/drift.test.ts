// schemaDrift: the migrations build exactly what prisma/schema.prisma models, and each
// kind of difference (column, index, foreign key, nullability) is reported by name.
import pg from 'pg'
import t, { type Test } from 'tap'
import { EXTRA_INDEXES, schemaDrift } from '../../src/db/drift.js'
import { applyMigrations } from '../../src/db/migrate.js'
import { ensureMonth, monthlyTable, monthStart, partitionsOf } from '../../src/db/partitions.js'
import { createDatabase } from '../helper.js'

const SCHEMA = 'prisma/schema.prisma'

/** An empty database migrated by applyMigrations, and a client on it. */
async function migratedClient (t: Test): Promise<pg.Client> {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  return client
}

t.test('a database built by applyMigrations has no drift from the schema', async (t) => {
  const client = await migratedClient(t)
  t.same(await schemaDrift(client, SCHEMA), [])
})

t.test('a dropped column is reported as missing', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE usage DROP COLUMN input_tokens')
  t.same(await schemaDrift(client, SCHEMA), ['table usage: column "input_tokens" missing'])
})

t.test('an extra column is reported as not in the schema', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE users ADD COLUMN nickname text')
  t.same(await schemaDrift(client, SCHEMA), ['table users: column "nickname" not in schema'])
})

t.test('a dropped index is reported by its table and columns', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX api_keys_user_id_idx')
  t.same(await schemaDrift(client, SCHEMA), ['table api_keys: index (user_id) missing'])
})

t.test('a unique index turned into a plain one is reported both ways', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX users_username_key')
  await client.query('CREATE INDEX users_username_idx ON users (username)')
  t.same(await schemaDrift(client, SCHEMA), [
    'table users: unique index (username) missing',
    'table users: index (username) not in schema'
  ])
})

t.test('a dropped foreign key is reported with its columns and target', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey')
  t.same(await schemaDrift(client, SCHEMA), ['table api_keys: foreign key (user_id) references users (id) on delete CASCADE missing'])
})

t.test('a foreign key with the wrong ON DELETE is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey')
  await client.query('ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT')
  t.same(await schemaDrift(client, SCHEMA), [
    'table api_keys: foreign key (user_id) references users (id) on delete CASCADE missing',
    'table api_keys: foreign key (user_id) references users (id) on delete RESTRICT not in schema'
  ])
})

t.test('a column whose nullability changed is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE users ALTER COLUMN username DROP NOT NULL')
  t.same(await schemaDrift(client, SCHEMA), ['table users: column "username" is nullable, expected NOT NULL'])
})

t.test('an optional column made NOT NULL is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE users ALTER COLUMN email SET NOT NULL')
  t.same(await schemaDrift(client, SCHEMA), ['table users: column "email" is NOT NULL, expected nullable'])
})

t.test('a column whose type changed is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE api_keys ALTER COLUMN rate_limit TYPE bigint')
  t.same(await schemaDrift(client, SCHEMA), ['table api_keys: column "rate_limit" is bigint, expected integer'])
})

t.test('a dropped table is reported as missing', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP TABLE usage_bodies')
  t.same(await schemaDrift(client, SCHEMA), ['table usage_bodies missing'])
})

t.test('the extra (partial) indexes are known: each is in the database as declared', async (t) => {
  const client = await migratedClient(t)
  const { rows } = await client.query<{ name: string, definition: string }>(
    "SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = 'public' AND indexname = ANY($1)", [EXTRA_INDEXES.map((i) => i.name)])
  t.same(rows.map((r) => r.name).sort(), EXTRA_INDEXES.map((i) => i.name).sort(), 'every declared extra index exists')
  t.match(rows.find((r) => r.name === 'usage_provider_endpoint_id_idx')?.definition, /ON ONLY public\.usage USING btree \(provider_endpoint_id\) WHERE \(provider_endpoint_id IS NOT NULL\)$/)
  t.match(rows.find((r) => r.name === 'usage_provider_api_key_id_idx')?.definition, /ON ONLY public\.usage USING btree \(provider_api_key_id\) WHERE \(provider_api_key_id IS NOT NULL\)$/)
  t.match(rows.find((r) => r.name === 'usage_hourly_provider_id_idx')?.definition, /ON public\.usage_hourly USING btree \(provider_id\)$/)
  t.match(rows.find((r) => r.name === 'cache_timeline_points_created_at_request_id_idx')?.definition, /ON public\.cache_timeline_points USING btree \(created_at, request_id\) INCLUDE \(user_id, model, gap_ms\)$/)
})

t.test('a partial index that lost its predicate is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX usage_provider_endpoint_id_idx')
  await client.query('CREATE INDEX usage_provider_endpoint_id_idx ON usage (provider_endpoint_id)')
  t.same(await schemaDrift(client, SCHEMA), [
    'table usage: index usage_provider_endpoint_id_idx (provider_endpoint_id) where provider_endpoint_id IS NOT NULL missing',
    'table usage: index usage_provider_endpoint_id_idx (provider_endpoint_id) not in schema'
  ])
})

t.test('a partial index with the wrong predicate is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX usage_provider_api_key_id_idx')
  await client.query('CREATE INDEX usage_provider_api_key_id_idx ON usage (provider_api_key_id) WHERE provider_api_key_id IS NULL')
  t.same(await schemaDrift(client, SCHEMA), [
    'table usage: index usage_provider_api_key_id_idx (provider_api_key_id) where provider_api_key_id IS NOT NULL missing',
    'table usage: index usage_provider_api_key_id_idx (provider_api_key_id) where provider_api_key_id IS NULL not in schema'
  ])
})

t.test('a covering index that lost its included columns is reported, and an unknown one with them', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX cache_timeline_points_created_at_request_id_idx')
  await client.query('CREATE INDEX cache_timeline_points_created_at_request_id_idx ON cache_timeline_points (created_at, request_id)')
  await client.query('CREATE INDEX usage_stray_covering_idx ON usage (model) INCLUDE (total_cost)')
  t.same(await schemaDrift(client, SCHEMA), [
    'table usage: index usage_stray_covering_idx (model) include (total_cost) not in schema',
    'table cache_timeline_points: index cache_timeline_points_created_at_request_id_idx (created_at, request_id) include (user_id, model, gap_ms) missing',
    'table cache_timeline_points: index cache_timeline_points_created_at_request_id_idx (created_at, request_id) not in schema'
  ])
})

t.test('a dropped extra index is reported by name', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX usage_hourly_provider_id_idx')
  t.same(await schemaDrift(client, SCHEMA), ['table usage_hourly: index usage_hourly_provider_id_idx (provider_id) missing'])
})

t.test('an unknown partial index is reported with its predicate', async (t) => {
  const client = await migratedClient(t)
  await client.query('CREATE INDEX usage_stray_idx ON usage (model) WHERE status = \'failed\'')
  t.same(await schemaDrift(client, SCHEMA), ["table usage: index usage_stray_idx (model) where status = 'failed'::usage_status not in schema"])
})

t.test('a partitioned table\'s partitions are its storage, not tables: months ahead, old months and the default, with their indexes, are no drift', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  await applyMigrations(url)
  const client = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => client.end())
  const now = monthStart(new Date())
  const old = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 20, 1))
  await client.query("INSERT INTO audit_logs (event_type, action, principal_type, success, created_at) VALUES ('system', 'x', 'system', true, $1)", [old])
  t.equal(await ensureMonth(client, monthlyTable('audit_logs'), old), `audit_logs_p${old.getUTCFullYear()}_${String(old.getUTCMonth() + 1).padStart(2, '0')}`)
  t.ok((await partitionsOf(client, 'audit_logs')).length >= 6, 'the migration\'s, the old month\'s and the default')
  t.same(await schemaDrift(client, SCHEMA), [])
})

t.test('a partitioned table\'s index dropped is reported, as an unpartitioned one\'s', async (t) => {
  const client = await migratedClient(t)
  await client.query('DROP INDEX audit_logs_action_created_at_idx')
  t.same(await schemaDrift(client, SCHEMA), ['table audit_logs: index (action, created_at) missing'])
})

t.test('a partitioned table without its default partition is reported, and the detached table as not in the schema', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE audit_logs DETACH PARTITION audit_logs_default')
  t.same(await schemaDrift(client, SCHEMA), ['table audit_logs_default not in schema', 'table audit_logs: default partition missing'])
})

t.test('a table partitioned though MONTHLY_TABLES does not name it is reported', async (t) => {
  const client = await migratedClient(t)
  await client.query('ALTER TABLE usage_key_seconds RENAME TO usage_key_seconds_old')
  await client.query('CREATE TABLE usage_key_seconds (LIKE usage_key_seconds_old INCLUDING ALL) PARTITION BY RANGE (second)')
  await client.query('DROP TABLE usage_key_seconds_old')
  t.same(await schemaDrift(client, SCHEMA), ['table usage_key_seconds: partitioned by range (second) not in schema'])
})
