// Migration 20261215090000_provider_attempts_quarter_hourly on a database holding usage rows,
// their candidates and quarter-hour rollups: each quarter-hour × provider gets the attempts
// ingestion would have written (executed candidates; a finished request without one as one
// implicit attempt; a request with two or more executed candidates as one fallback on the nil
// provider), an unfinished request counts nowhere, and the schema is what Prisma models.
import { readdir } from 'node:fs/promises'
import t from 'tap'
import { schemaDrift } from '../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.js'
import { month, poolBefore } from './migrated-before.js'

const ATTEMPTS = '20261215090000_provider_attempts_quarter_hourly'
const NIL = '00000000-0000-0000-0000-000000000000'

t.test(`${ATTEMPTS}: each quarter-hour's attempts as ingestion counts them, no drift`, async (t) => {
  const { url, pool } = await poolBefore(t, ATTEMPTS)
  const provider = (await pool.query(`INSERT INTO providers (name, updated_at) VALUES ('p', now()) RETURNING id`)).rows[0].id as string
  const other = (await pool.query(`INSERT INTO providers (name, updated_at) VALUES ('q', now()) RETURNING id`)).rows[0].id as string
  // 10:00 UTC on the second day of this month (the partitions made ahead hold it)
  const at = (minute: number, second = 0) => new Date(month(0).getTime() + 86_400_000 + 36_000_000 + minute * 60_000 + second * 1000)
  const rows: Array<[string, Date, string, number | null]> = [
    // request, created, status, response time
    ['r0', at(3), 'completed', 100],
    ['r1', at(14, 59), 'failed', null],
    ['r2', at(20), 'completed', 130],
    ['r3', at(21), 'pending', null]
  ]
  for (const [id, created, status, ms] of rows) {
    await pool.query(`INSERT INTO usage (request_id, model, status, provider_id, response_time_ms, created_at, finished_at) VALUES ($1, 'm', $2, $3, $4, $5, $6)`,
      [id, status, provider, ms, created, status === 'pending' ? null : created])
  }
  // r2 fell back: a failure on the other provider, then a success; a skipped candidate is no attempt
  for (const [index, p, status, latency] of [[0, other, 'failed', 50], [1, provider, 'success', 70], [2, other, 'skipped', null]] as const) {
    await pool.query(`INSERT INTO request_candidates (request_id, candidate_index, provider_id, status, latency_ms, created_at) VALUES ('r2', $1, $2, $3, $4, $5)`,
      [index, p, status, latency, at(20)])
  }
  // the quarter-hour rollup rows ingestion kept for the finished requests
  await pool.query(`INSERT INTO usage_quarter_hourly_model (bucket, provider_id, model, api_format, requests, errors, response_time_sum_ms, response_time_count)
    VALUES ($1, $3, 'm', '', 2, 1, 100, 1), ($2, $3, 'm', '', 1, 0, 130, 1)`, [at(0), at(15), provider])

  t.same(await applyMigrations(url), [ATTEMPTS, ...(await readdir(MIGRATIONS_DIR)).filter((name) => /^\d{14}_/.test(name) && name > ATTEMPTS).sort()], 'the migration applied')
  t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [], 'the schema Prisma models')
  t.same((await pool.query(`SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS at, provider_id, attempts, successes, failures, latency_sum_ms::int AS latency, latency_count, fallbacks
      FROM provider_attempts_quarter_hourly ORDER BY bucket, provider_id = $1, provider_id = $2`, [NIL, provider])).rows, [
    { at: '10:00', provider_id: provider, attempts: 2, successes: 1, failures: 1, latency: 100, latency_count: 1, fallbacks: 0 },
    { at: '10:15', provider_id: other, attempts: 1, successes: 0, failures: 1, latency: 50, latency_count: 1, fallbacks: 0 },
    { at: '10:15', provider_id: provider, attempts: 1, successes: 1, failures: 0, latency: 70, latency_count: 1, fallbacks: 0 },
    { at: '10:15', provider_id: NIL, attempts: 0, successes: 0, failures: 0, latency: 0, latency_count: 0, fallbacks: 1 }
  ], 'r0 and r1 implicit attempts at 10:00; r2 its two executed candidates and one fallback at 10:15; r3 nowhere')
})
