// Migration 20261216090000_quarter_hour_cache_economics on a database holding priced usage rows and
// their quarter-hour rollups: each model quarter-hour gains what its finished requests' cache reads
// saved against the input price and what their writes cost above it, each row at its own tier
// (priced by hand here), an unpriced or in-flight request adding nothing; and no drift.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { month, poolBefore } from './migrated-before.js'

const MIGRATION = '20261216090000_quarter_hour_cache_economics'
const NIL = '00000000-0000-0000-0000-000000000000'
const PRICE = '55555555-5555-4555-8555-555555555555'
const B = 1_000_000_000

t.test(`${MIGRATION}: the model quarter-hours' cache economics from the finished priced rows, no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, MIGRATION)
  const provider = (await pool.query(`INSERT INTO providers (name, updated_at) VALUES ('p', now()) RETURNING id`)).rows[0].id as string
  // per 1M tokens: up to 1,000 tokens of context $3 input, $0.30 read, $3.75 5-minute write, $6 1-hour write; above, twice that
  await pool.query(`INSERT INTO price_snapshots (id, model, tiers) VALUES ($1, 'm', $2)`, [PRICE, JSON.stringify([
    { up_to: 1000, input: 3 * B, output: 15 * B, cache_read: 0.3 * B, cache_write_5m: 3.75 * B, cache_write_1h: 6 * B },
    { up_to: null, input: 6 * B, output: 30 * B, cache_read: 0.6 * B, cache_write_5m: 7.5 * B, cache_write_1h: 12 * B }
  ])])
  // 10:00 UTC on the second day of this month (the partitions made ahead hold it)
  const at = (minute: number, second = 0) => new Date(month(0).getTime() + 86_400_000 + 36_000_000 + minute * 60_000 + second * 1000)
  const rows: Array<[Date, string | null, string | null, string, string | null, number, number, number, number]> = [
    // created, provider, format, status, price, input, read, 5-minute write, 1-hour write (tokens)
    [at(1), provider, 'openai:chat', 'completed', PRICE, 100, 500, 200, 0], // context 800: the first tier
    [at(14, 59), provider, 'openai:chat', 'failed', PRICE, 2000, 1000, 0, 100], // context 3,100: the second
    [at(15), provider, 'openai:chat', 'completed', PRICE, 10, 3, 0, 0],
    [at(5), null, null, 'completed', null, 10, 100, 100, 0], // unpriced: saves and costs nothing
    [at(7), provider, 'openai:chat', 'pending', PRICE, 10, 1000, 0, 0] // in flight: counts nowhere
  ]
  for (const [i, [created, p, format, status, price, input, read, w5, w1]] of rows.entries()) {
    await pool.query(`INSERT INTO usage (request_id, model, status, provider_id, api_format, model_price_id, input_tokens, cache_read_input_tokens,
        cache_creation_input_tokens, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens, created_at, finished_at)
      VALUES ($1, 'm', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, [`r${i}`, status, p, format, price, input, read, w5 + w1, w5, w1, created, status === 'pending' ? null : created])
  }
  // the rollup rows ingestion kept for them (their other measures do not matter here)
  for (const [minute, p, format] of [[0, provider, 'openai:chat'], [15, provider, 'openai:chat'], [0, NIL, '']] as const) {
    await pool.query(`INSERT INTO usage_quarter_hourly_model (bucket, provider_id, model, api_format, requests) VALUES ($1, $2, 'm', $3, 1)`, [at(minute), p, format])
  }

  t.same(await applyMigrations(url), [MIGRATION, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > MIGRATION).sort()], 'the migration applied')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, provider_id, api_format, cache_read_saving::int AS saving, cache_write_premium::int AS premium
      FROM usage_quarter_hourly_model ORDER BY bucket, provider_id = $1`, [NIL])).rows, [
    // 500 × $2.70 + 1,000 × $5.40 a 1M saved; 200 × $0.75 + 100 × $6.00 a 1M above input
    { at: '10:00', provider_id: provider, api_format: 'openai:chat', saving: 1_350_000 + 5_400_000, premium: 150_000 + 600_000 },
    { at: '10:00', provider_id: NIL, api_format: '', saving: 0, premium: 0 },
    // 3 × $2.70 a 1M
    { at: '10:15', provider_id: provider, api_format: 'openai:chat', saving: 8_100, premium: 0 }
  ], 'each quarter-hour × provider × model × format: its finished rows at their tiers, the unpriced and pending ones adding nothing')
})
