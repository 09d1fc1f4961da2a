// Migration 20261210100000_wasted_by_model on a database holding usage rows and the cache
// tables of the old form: afterwards the savings tables (per key, by model, global) and the
// timelines' tails equal the ones rebuilt from the raw rows, as ingestion would keep them.
import { readdir } from 'node:fs/promises'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { buildTestApp } from '../helper.js'
import { migratedBefore } from './migrated-before.js'
import { cacheTablesAndRebuilt } from '../modules/gateway/fixtures.js'

const WASTED = '20261210100000_wasted_by_model'
const PROVIDER = '00000000-0000-4000-8000-0000000000a1'
const OTHER = '00000000-0000-4000-8000-0000000000a2'
const MINUTE = 60_000
// nano-USD per 1M tokens: input, output, 5-minute write, 1-hour write, read
const PRICES: Record<string, { id: string, units: number[] }> = {
  mx: { id: '00000000-0000-4000-8000-0000000000b1', units: [3_000_000_000, 15_000_000_000, 3_750_000_000, 6_000_000_000, 300_000_000] },
  my: { id: '00000000-0000-4000-8000-0000000000b2', units: [1_000_000_001, 5_000_000_000, 1_250_000_003, 2_000_000_007, 100_000_000] }
}

t.test(`${WASTED}: the savings tables and tails of an existing database equal the rebuilt ones after it`, async (t) => {
  const url = await migratedBefore(t, WASTED)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())

  await client.query(`INSERT INTO providers (id, name, updated_at) VALUES ($1, 'alpha', now()), ($2, 'beta', now())`, [PROVIDER, OTHER])
  const users = (await client.query(`INSERT INTO users (username, password_hash, updated_at) SELECT 'u' || i, 'x', now() FROM generate_series(1, 2) i RETURNING id`)).rows.map((r) => r.id as string)
  const keys = (await client.query(`INSERT INTO api_keys (user_id, key_hash, key_prefix, key_encrypted, name, updated_at)
      SELECT u, 'h' || i, 'sk', 'e', 'k' || i, now() FROM unnest($1::uuid[]) WITH ORDINALITY AS x(u, i) RETURNING id, user_id`, [[users[0], users[0], users[1]]])).rows
  // each key's requests at gaps of 2 to 100 minutes, in two models, on two providers or none (a deleted one's rows: NULL); some failed; two prices
  const base = Date.UTC(2026, 10, 20, 9, 7)
  const values: unknown[][] = []
  keys.forEach((key, k) => {
    let at = base + k * 11 * MINUTE
    for (let i = 0; i < 14; i++) {
      at += [2, 7, 100, 3, 61, 45][(i + k) % 6]! * MINUTE
      const model = (i + k) % 3 === 0 ? 'mx' : 'my'
      const provider = [PROVIDER, null, OTHER, PROVIDER][(i + k) % 4]
      const status = (i + 2 * k) % 7 === 0 ? 'failed' : 'completed'
      const [w5, w1, read] = [(i * 137 + k * 41) % 900, (i * 53 + k) % 3 === 0 ? 0 : (i * 71) % 500, (i * 29) % 700]
      const priced = i !== 5
      const prices = priced ? PRICES[model]!.units : [null, null, null, null, null]
      values.push([`r-${k}-${i}`, key.user_id, key.id, provider, model, status, new Date(at).toISOString(), w5, w1, read, ...prices,
        priced ? PRICES[model]!.id : null, priced ? 'model_price' : 'unpriced'])
    }
  })
  // the two price versions the rows were priced with (one tier each), as ingestion left them: the version and its unit prices on each row
  for (const [model, { id, units: [input, output, write5m, write1h, cacheRead] }] of Object.entries(PRICES)) {
    await client.query(`INSERT INTO model_prices (id, model, tiers, effective_from) VALUES ($1, $2, $3, '2020-01-01T00:00:00Z')`,
      [id, model, JSON.stringify([{ up_to: null, input, output, cache_write_5m: write5m, cache_write_1h: write1h, cache_read: cacheRead }])])
  }
  for (const v of values) {
    await client.query(`INSERT INTO usage (request_id, user_id, api_key_id, provider_id, model, status, created_at, input_tokens, cache_creation_input_tokens,
        cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, cache_read_input_tokens, input_price_per_1m, output_price_per_1m,
        cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m, model_price_id, pricing_source, finished_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, 100, $8::int + $9::int, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $7)`, v)
  }
  // the old tails (the old rebuild's query) and a stale savings row of the old form: the migration recomputes the savings tables
  for (const [scope, owners, column] of [['api_key', 'api_keys', 'api_key_id'], ['user', 'users', 'user_id']]) {
    await client.query(`
      INSERT INTO cache_timeline_tail (scope, scope_id, last_at, last_request_id, user_id, api_key_id, cache_write_5m_tokens, cache_write_1h_tokens,
        cache_write_5m_price_per_1m, cache_write_1h_price_per_1m)
      SELECT $1, o.id, l.created_at, l.request_id, l.user_id, l.api_key_id, l.cache_creation_5m_input_tokens, l.cache_creation_1h_input_tokens,
             l.cache_write_5m_price_per_1m, l.cache_write_1h_price_per_1m
        FROM ${owners} o CROSS JOIN LATERAL (
          SELECT * FROM usage u WHERE u.${column} = o.id AND u.status = 'completed' AND u.api_key_id IS NOT NULL
           ORDER BY created_at DESC, request_id DESC LIMIT 1) l`, [scope])
  }
  await client.query(`INSERT INTO cache_savings_hourly (bucket, user_id, api_key_id, wasted_5m_tokens) VALUES ($1, $2, $3, 12345)`, [new Date(base), users[0], keys[0].id])
  await client.query(`INSERT INTO cache_savings_hourly_global (bucket, wasted_5m_tokens) VALUES ($1, 12345)`, [new Date(base)])

  t.same(await applyMigrations(url), [WASTED, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > WASTED).sort()], 'the migration applied')
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models')

  const { app } = await buildTestApp(t, { url })
  const tables = await cacheTablesAndRebuilt(app)
  for (const name of ['cache_savings_hourly', 'cache_savings_hourly_model', 'cache_savings_hourly_global', 'cache_timeline_tail']) {
    t.ok(tables[name]!.kept.length > 0, `${name} has rows`)
    t.same(tables[name]!.kept, tables[name]!.rebuilt, `${name} = the table rebuilt from the raw rows`)
  }
  const wasted = await client.query(`SELECT count(DISTINCT model)::int AS models, count(DISTINCT provider_id)::int AS providers
      FROM cache_savings_hourly_model WHERE wasted_5m_tokens > 0 OR wasted_1h_tokens > 0`)
  const kinds = await client.query(`SELECT sum(wasted_5m_tokens) > 0 AS w5, sum(wasted_1h_tokens) > 0 AS w1 FROM cache_savings_hourly_model`)
  t.same([wasted.rows[0], kinds.rows[0]], [{ models: 2, providers: 3 }, { w5: true, w1: true }], 'wasted writes of both kinds, in two models and three providers (none among them)')
})
