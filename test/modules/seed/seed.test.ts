// The seed, on small data sets: deterministic, the requested row count, every rollup
// row and every key and user total exactly what ingestion would have written for the
// same rows (checked with the gateway's own RollupDeltas and priceRequest, not with
// the seed's SQL), candidates for the fallbacks, and a refusal to seed twice.
import { isDeepStrictEqual } from 'node:util'
import pg from 'pg'
import t, { type Test } from 'tap'
import { pickPrice, type PriceVersion } from '../../../src/modules/prices/service.js'
import type { StoredTier } from '../../../src/modules/accounting/tiers.js'
import { schemaDrift } from '../../../src/db/drift.js'
import { seed, type SeedOptions } from '../../../src/modules/seed/service.js'
import { multiplierMicros, priceRequest, pricingSourceSql, storedActualCostsSql, tierPricesJoinSql } from '../../../src/modules/accounting/pricing.js'
import { RollupDeltas, type RollupSource } from '../../../src/modules/accounting/rollups.js'
import { monthStart, partitionName } from '../../../src/db/partitions.js'
import { createDatabase, testConfig } from '../../helper.js'

const ROWS = 5000
const NOW = new Date('2026-03-04T05:06:07.089Z')
const FINISHED = ['completed', 'failed', 'cancelled']

type Row = Record<string, any>

async function seeded (t: Test, overrides: Partial<SeedOptions> = {}) {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 3 })
  pool.on('error', () => {}) // the database is dropped WITH (FORCE) at teardown
  t.teardown(() => pool.end())
  // small chunks, so several connections load several chunks
  const options: SeedOptions = { rows: ROWS, days: 30, seed: 42, now: NOW, encryptionKey: testConfig(url).ENCRYPTION_KEY, chunk: 1500, ...overrides }
  const summary = await seed(pool, options)
  return { pool, options, summary, query: async (sql: string, params: unknown[] = []) => (await pool.query<Row>(sql, params)).rows }
}

/** Everything the seed writes, as one digest (key_encrypted aside: AES-GCM draws a fresh IV). */
async function fingerprint (pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ digest: string }>(`SELECT md5(concat_ws('/',
    (SELECT string_agg(u::text, ',' ORDER BY id) FROM usage u),
    (SELECT string_agg(c::text, ',' ORDER BY request_id, candidate_index) FROM (SELECT request_id, candidate_index, provider_id, status, status_code, latency_ms, started_at FROM request_candidates) c),
    (SELECT string_agg(h::text, ',' ORDER BY h) FROM usage_hourly h),
    (SELECT string_agg(d::text, ',' ORDER BY d) FROM usage_daily_key d),
    (SELECT string_agg(concat_ws(':', id, key_hash, total_requests, total_tokens, total_cost, balance_used, current_balance, last_used_at), ',' ORDER BY id) FROM api_keys),
    (SELECT string_agg(concat_ws(':', id, username, used, quota), ',' ORDER BY id) FROM users))) AS digest`)
  return rows[0]!.digest
}

t.test('the requested rows, deterministically: same seed → same data, another seed → other data', async (t) => {
  const a = await seeded(t)
  t.equal(a.summary.rows, ROWS)
  t.equal(Number((await a.query('SELECT count(*) FROM usage'))[0]!.count), ROWS)
  t.equal(a.summary.fastLoad, true, 'the test role may skip per-row foreign-key checks')
  const b = await seeded(t)
  t.equal(await fingerprint(b.pool), await fingerprint(a.pool), 'a second database from the same seed is identical')
  const c = await seeded(t, { seed: 7 })
  t.not(await fingerprint(c.pool), await fingerprint(a.pool), 'another seed gives another data set')
})

t.test('one data set, checked against what ingestion would have written', async (t) => {
  const { pool, options, query } = await seeded(t)
  // rows copy no unit prices nor actual cost components: their tier's prices, joined as every SQL reader does, the pricing source
  // and the actual components as SQL derives them, all checked against priceRequest below
  const rows = await query(`SELECT u.*, pt.input_price_per_1m, pt.output_price_per_1m, pt.cache_write_5m_price_per_1m, pt.cache_write_1h_price_per_1m,
      pt.cache_read_price_per_1m, pt.price_per_request, ${pricingSourceSql('u')} AS pricing_source, ${storedActualCostsSql('u')}
    FROM usage u ${tierPricesJoinSql('u')} ORDER BY u.id`)

  t.test('shape: failures, in-flight rows, streaming, caching, heavy-tailed keys, weekly rhythm', async (t) => {
    const count = (predicate: (r: Row) => boolean) => rows.filter(predicate).length
    const finished = count((r) => FINISHED.includes(r.status))
    const failed = count((r) => r.status === 'failed')
    t.ok(failed / finished > 0.015 && failed / finished < 0.06, `~3% failures (${failed})`)
    t.ok(rows.filter((r) => r.status === 'failed').every((r) => r.status_code >= 400 && r.error_message !== null), 'failures carry a status code and a message')
    const inFlight = rows.filter((r) => !FINISHED.includes(r.status))
    t.ok(inFlight.length > 0 && inFlight.some((r) => r.status === 'pending') && inFlight.some((r) => r.status === 'streaming'), 'some pending and streaming rows')
    t.ok(inFlight.every((r) => NOW.getTime() - r.created_at.getTime() < 10 * 60_000 && r.total_cost === '0' && r.finished_at === null), 'in flight: the last minutes, unpriced')
    const stream = count((r) => r.is_stream) / rows.length
    t.ok(stream > 0.4 && stream < 0.9, `a streaming share (${stream.toFixed(2)})`)
    t.ok(count((r) => r.cache_read_input_tokens > 0) > finished * 0.2, 'cache reads')
    t.ok(count((r) => r.cache_creation_5m_input_tokens > 0) > 0 && count((r) => r.cache_creation_1h_input_tokens > 0) > 0, 'cache writes, 5m and 1h')
    const perKey = new Map<string, number>()
    for (const r of rows) perKey.set(r.api_key_id, (perKey.get(r.api_key_id) ?? 0) + 1)
    const top = Math.max(...perKey.values())
    t.ok(top / rows.length > 0.03 && perKey.size > 200, `heavy-tailed keys: the busiest has ${top} rows, ${perKey.size} keys have some`)
    const weekday = count((r) => ![0, 6].includes(r.created_at.getUTCDay())) / 5
    const weekend = count((r) => [0, 6].includes(r.created_at.getUTCDay())) / 2
    t.ok(weekday > 1.4 * weekend, 'weekdays busier than weekends')
    t.ok(rows.every((r) => r.created_at <= NOW && r.created_at.getTime() > NOW.getTime() - 31 * 86_400_000), 'within the last --days days')
  })

  t.test('costs: every row priced exactly as priceRequest prices it', async (t) => {
    const versions: PriceVersion[] = (await query('SELECT id, model, provider_id, tiers, price_per_request::text, effective_from FROM model_prices')).map((p) => ({
      id: p.id, model: p.model, providerId: p.provider_id, tiers: p.tiers as StoredTier[],
      pricePerRequest: p.price_per_request === null ? null : BigInt(p.price_per_request), effectiveFrom: p.effective_from
    }))
    // what a row's model_price_id references for its tier facts (the rows keep no copy)
    const snapshots = new Map((await query('SELECT id, provider_id, tiers FROM price_snapshots')).map((s) => [s.id, { providerId: s.provider_id, tiers: s.tiers }]))
    const providerKeys = new Map((await query('SELECT id, rate_multiplier::text, cache_ttl_minutes FROM provider_api_keys')).map((k) => [k.id, k]))
    const freeTier = new Set((await query(`SELECT id FROM providers WHERE billing_type = 'free_tier'`)).map((p) => p.id))
    const seen = new Set<string>()
    let mismatches = 0
    let splits = 0
    for (const row of rows.filter((r) => FINISHED.includes(r.status))) {
      const key = providerKeys.get(row.provider_api_key_id)!
      // the split is what the provider key's TTL implies (as when the gateway reports no split)
      if ((key.cache_ttl_minutes === 60 ? row.cache_creation_5m_input_tokens : row.cache_creation_1h_input_tokens) !== 0) splits++
      const price = pickPrice(versions, row.model, row.provider_id, row.created_at)
      const priced = priceRequest(
        { input: row.input_tokens, output: row.output_tokens, cacheWrite5m: row.cache_creation_5m_input_tokens, cacheWrite1h: row.cache_creation_1h_input_tokens, cacheRead: row.cache_read_input_tokens },
        price, { success: row.status === 'completed', multiplierMicros: multiplierMicros(key.rate_multiplier), freeTier: freeTier.has(row.provider_id) })
      const expected = {
        costs: [priced.costs.input, priced.costs.output, priced.costs.cacheCreation, priced.costs.cacheRead, priced.costs.request, priced.costs.total].map(String),
        actual: [priced.actual.input, priced.actual.output, priced.actual.cacheCreation, priced.actual.cacheRead, priced.actual.request, priced.actual.total].map(String),
        snapshot: priced.snapshot === null ? null : [priced.snapshot.input, priced.snapshot.output, priced.snapshot.cacheWrite5m, priced.snapshot.cacheWrite1h, priced.snapshot.cacheRead, priced.snapshot.perRequest].map((v) => v === null ? null : String(v)),
        source: priced.source,
        modelPriceId: priced.tieredPricing?.model_price_id ?? null,
        priceSnapshot: price === null || priced.source === 'unpriced' ? null : { providerId: price.providerId, tiers: price.tiers },
        multiplier: freeTier.has(row.provider_id) ? 0n : multiplierMicros(key.rate_multiplier),
        total: row.input_tokens + row.output_tokens + row.cache_creation_input_tokens + row.cache_read_input_tokens
      }
      const actual = {
        costs: [row.input_cost, row.output_cost, row.cache_creation_cost, row.cache_read_cost, row.request_cost, row.total_cost],
        actual: [row.actual_input_cost, row.actual_output_cost, row.actual_cache_creation_cost, row.actual_cache_read_cost, row.actual_request_cost, row.actual_total_cost],
        snapshot: row.input_price_per_1m === null ? null : [row.input_price_per_1m, row.output_price_per_1m, row.cache_write_5m_price_per_1m, row.cache_write_1h_price_per_1m, row.cache_read_price_per_1m, row.price_per_request],
        source: row.pricing_source,
        modelPriceId: row.model_price_id,
        priceSnapshot: row.model_price_id === null ? null : snapshots.get(row.model_price_id) ?? 'missing',
        multiplier: multiplierMicros(row.rate_multiplier),
        total: row.total_tokens
      }
      if (!isDeepStrictEqual(actual, expected) && mismatches++ < 3) t.same(actual, expected, `row ${row.request_id}`)
      // which branches of the pricing the sample covered
      if (priced.tieredPricing?.tier_index === 1) seen.add('second tier')
      if (priced.source === 'unpriced') seen.add('unpriced')
      if (priced.costs.request > 0n) seen.add('per-request price')
      if (priced.tieredPricing?.source === 'provider') seen.add("a provider's own price")
      if (freeTier.has(row.provider_id) && priced.costs.total > 0n) seen.add('free tier')
      if (key.rate_multiplier !== '1.000000' && priced.costs.total > 0n) seen.add('rate multiplier')
      if (row.status === 'failed') seen.add('failed')
      if (row.status === 'cancelled' && priced.costs.total > 0n) seen.add('cancelled')
      if (row.cache_creation_5m_input_tokens > 0) seen.add('5m writes')
      if (row.cache_creation_1h_input_tokens > 0) seen.add('1h writes')
      if (row.cache_read_input_tokens > 0) seen.add('cache reads')
    }
    t.equal(mismatches, 0, 'no row differs from priceRequest')
    t.equal(splits, 0, 'cache writes split as the provider key\'s TTL implies')
    t.same([...seen].sort(), ['1h writes', '5m writes', "a provider's own price", 'cache reads', 'cancelled', 'failed', 'free tier', 'per-request price', 'rate multiplier', 'second tier', 'unpriced'],
      'the rows cover every pricing branch')
  })

  t.test('rollups: exactly what ingestion (RollupDeltas) would have written for these rows', async (t) => {
    const deltas = new RollupDeltas()
    const candidates = await query(`SELECT request_id, provider_id, status::text AS status, latency_ms, created_at FROM request_candidates
      WHERE status NOT IN ('skipped', 'available')`)
    deltas.sent(candidates.map((c) => ({ request_id: c.request_id, provider_id: c.provider_id, status: c.status, latency_ms: c.latency_ms, created_at: c.created_at })))
    for (const r of rows) {
      const source: RollupSource = {
        requestId: r.request_id, status: r.status, createdAt: r.created_at, userId: r.user_id, apiKeyId: r.api_key_id, providerId: r.provider_id, providerApiKeyId: r.provider_api_key_id, model: r.model, apiFormat: r.api_format,
        inputTokens: r.input_tokens, outputTokens: r.output_tokens, cacheCreationTokens: r.cache_creation_input_tokens, cacheReadTokens: r.cache_read_input_tokens,
        totalTokens: r.total_tokens, cacheCreationCost: BigInt(r.cache_creation_cost), cacheReadCost: BigInt(r.cache_read_cost), totalCost: BigInt(r.total_cost),
        actualTotalCost: BigInt(r.actual_total_cost), responseTimeMs: r.response_time_ms,
        cacheCreation5m: r.cache_creation_5m_input_tokens, cacheCreation1h: r.cache_creation_1h_input_tokens, firstByteTimeMs: r.first_byte_time_ms,
        snapshot: r.input_price_per_1m === null
          ? null
          : { input: BigInt(r.input_price_per_1m), cacheWrite5m: BigInt(r.cache_write_5m_price_per_1m), cacheWrite1h: BigInt(r.cache_write_1h_price_per_1m), cacheRead: BigInt(r.cache_read_price_per_1m) }
      }
      deltas.change(null, source)
    }
    const tables = {
      usage_hourly: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, user_id, api_key_id, provider_id, model, api_format`,
      usage_hourly_model: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, provider_id, model, api_format`,
      usage_daily_key: `to_char(day, 'YYYY-MM-DD') AS day, user_id, api_key_id, model`,
      usage_daily_api_key: `to_char(day, 'YYYY-MM-DD') AS day, api_key_id`,
      usage_hourly_api_key: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, api_key_id`,
      usage_daily_model: `to_char(day, 'YYYY-MM-DD') AS day, provider_id, model, api_format`,
      provider_attempts_hourly: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, provider_id`,
      provider_attempts_quarter_hourly: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, provider_id`,
      usage_quarter_hourly_global: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket`,
      usage_daily_user: `to_char(day, 'YYYY-MM-DD') AS day, user_id`,
      usage_hourly_user: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, user_id`,
      usage_quarter_hourly_user: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, user_id, provider_id`,
      usage_quarter_hourly_api_key: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, api_key_id`,
      usage_hourly_provider: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket, provider_id`,
      usage_hourly_global: `to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket`,
      usage_hourly_provider_key: `provider_api_key_id, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS bucket`
    } as const
    for (const [table, keys] of Object.entries(tables) as Array<[keyof typeof tables, string]>) {
      const measures = (await query(`SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND data_type IN ('integer', 'bigint') ORDER BY ordinal_position`, [table])).map((c) => c.column_name as string)
      const stored = await query(`SELECT ${keys}, ${measures.map((m) => `${m}::text`).join(', ')} FROM ${table}`)
      const expected = (table === 'provider_attempts_hourly' ? deltas.attemptRows('hour') : table === 'provider_attempts_quarter_hourly' ? deltas.attemptRows('quarter') : deltas.rowsOf(table)).map((row) => Object.fromEntries(Object.keys(stored[0]!).map((column) => [column, row[column]])))
      const sort = (list: Row[]) => list.map((r) => JSON.stringify(r)).sort()
      t.ok(stored.length > 0, `${table} has rows`)
      t.same(sort(stored), sort(expected), `${table}: ${stored.length} rows, every one as ingestion would have it`)
    }
    t.same(await query('SELECT * FROM usage_key_seconds'), [], 'no per-second counts for a data set that ended long ago: no window reads them')
  })

  t.test('the time series\' measures are the raw rows\' sums, per hour', async (t) => {
    const expected = new Map<string, { fbSum: number, fbCount: number, w5: number, w1: number }>()
    for (const r of rows.filter((r) => FINISHED.includes(r.status))) {
      const hour = new Date(Math.floor(r.created_at.getTime() / 3_600_000) * 3_600_000).toISOString()
      const e = expected.get(hour) ?? { fbSum: 0, fbCount: 0, w5: 0, w1: 0 }
      if (r.first_byte_time_ms !== null) { e.fbSum += r.first_byte_time_ms; e.fbCount++ }
      e.w5 += r.cache_creation_5m_input_tokens
      e.w1 += r.cache_creation_1h_input_tokens
      expected.set(hour, e)
    }
    t.ok([...expected.values()].some((e) => e.fbCount > 0), 'the seed writes first bytes')
    for (const table of ['usage_hourly', 'usage_hourly_provider', 'usage_hourly_provider_key']) {
      const stored = await query(`SELECT bucket, sum(first_byte_time_sum_ms)::int AS fb_sum, sum(first_byte_time_count)::int AS fb_count,
        sum(cache_creation_5m_tokens)::int AS w5, sum(cache_creation_1h_tokens)::int AS w1 FROM ${table} GROUP BY bucket`)
      const got = new Map(stored.map((s) => [s.bucket.toISOString(), { fbSum: s.fb_sum, fbCount: s.fb_count, w5: s.w5, w1: s.w1 }]))
      t.same(Object.fromEntries(got), Object.fromEntries(expected), table)
    }
  })

  t.test('key and user totals are the sums over their finished rows', async (t) => {
    const keys = new Map<string, { requests: number, tokens: number, cost: bigint }>()
    const users = new Map<string, bigint>()
    for (const r of rows.filter((r) => FINISHED.includes(r.status))) {
      const k = keys.get(r.api_key_id) ?? { requests: 0, tokens: 0, cost: 0n }
      keys.set(r.api_key_id, { requests: k.requests + 1, tokens: k.tokens + r.total_tokens, cost: k.cost + BigInt(r.total_cost) })
      users.set(r.user_id, (users.get(r.user_id) ?? 0n) + BigInt(r.total_cost))
    }
    const storedKeys = await query('SELECT id, total_requests, total_tokens, total_cost, balance_used, current_balance, is_standalone FROM api_keys')
    t.ok(storedKeys.length > 900 && storedKeys.length < 1100, `~1000 keys (${storedKeys.length})`)
    const wrongKeys = storedKeys.filter((k) => {
      const sum = keys.get(k.id) ?? { requests: 0, tokens: 0, cost: 0n }
      return Number(k.total_requests) !== sum.requests || Number(k.total_tokens) !== sum.tokens || BigInt(k.total_cost) !== sum.cost || BigInt(k.balance_used) !== sum.cost
    })
    t.same(wrongKeys, [], 'every key: total_requests, total_tokens, total_cost and balance_used')
    const storedUsers = await query('SELECT id, used FROM users')
    t.same(storedUsers.filter((u) => BigInt(u.used) !== (users.get(u.id) ?? 0n)), [], 'every user: used')
    const standalone = storedKeys.filter((k) => k.is_standalone)
    t.ok(standalone.length >= 40 && standalone.every((k) => k.current_balance === null || BigInt(k.current_balance) >= BigInt(k.balance_used)), 'standalone keys: balances cover what they used')
    t.ok(standalone.some((k) => k.current_balance !== null && k.current_balance === k.balance_used && k.balance_used !== '0'), 'a used-up standalone key')
  })

  t.test('fallbacks: 2–3 candidates, earlier ones failed on another route, the last is the outcome', async (t) => {
    const candidates = await query('SELECT * FROM request_candidates ORDER BY request_id, candidate_index')
    const byRequest = new Map<string, Row[]>()
    for (const c of candidates) byRequest.set(c.request_id, [...(byRequest.get(c.request_id) ?? []), c])
    const finished = rows.filter((r) => FINISHED.includes(r.status)).length
    t.ok(byRequest.size > finished * 0.01 && byRequest.size < finished * 0.035, `~2% of requests fell back (${byRequest.size})`)
    const usage = new Map(rows.map((r) => [r.request_id, r]))
    const problems: string[] = []
    for (const [requestId, list] of byRequest) {
      const row = usage.get(requestId)
      const last = list.at(-1)!
      if (row === undefined) problems.push(`${requestId}: no usage row`)
      else if (list.length < 2 || list.length > 3 || list.some((c, i) => c.candidate_index !== i)) problems.push(`${requestId}: indexes ${list.map((c) => c.candidate_index)}`)
      else if (last.provider_id !== row.provider_id || last.status !== (row.status === 'failed' ? 'failed' : 'success') || last.status_code !== row.status_code) problems.push(`${requestId}: last attempt`)
      else if (list.slice(0, -1).some((c) => c.status !== 'failed' || c.error_type === null || c.status_code < 400)) problems.push(`${requestId}: earlier attempts`)
      else if (list.reduce((sum, c) => sum + c.latency_ms, 0) !== row.response_time_ms) problems.push(`${requestId}: latencies`)
      else if (list.some((c) => c.user_id !== row.user_id || c.api_key_id !== row.api_key_id || c.created_at.getTime() !== row.created_at.getTime())) problems.push(`${requestId}: owner`)
    }
    t.same(problems, [])
    t.ok([...byRequest.values()].some((list) => list.length === 3), 'some requests tried three times')
    t.ok([...byRequest.values()].some((list) => list[0]!.provider_id !== list.at(-1)!.provider_id), 'some fell back to another provider')
    // the seeded months have their partitions, as a server running through them would have made: none in the default
    const placed = await query('SELECT created_at, tableoid::regclass::text AS p FROM request_candidates')
    t.same(placed.filter((c) => c.p !== partitionName('request_candidates', monthStart(c.created_at))).length, 0, 'every candidate in its month\'s partition')
  })

  t.test('the tables are whole again: indexes rebuilt, no lookup tables left, every reference valid', async (t) => {
    const indexes = await query(`SELECT indexname FROM pg_indexes WHERE tablename = 'usage' ORDER BY 1`)
    t.same(indexes.map((i) => i.indexname), ['usage_api_key_id_created_at_idx', 'usage_created_at_idx', 'usage_failed_user_idx', 'usage_in_flight_key_idx', 'usage_model_created_at_idx', 'usage_pkey',
      'usage_provider_api_key_id_idx', 'usage_provider_endpoint_id_idx', 'usage_provider_id_created_at_idx',
      'usage_user_id_created_at_idx'])
    // every table as the schema has it (the cache rebuild also drops and rebuilds an index)
    t.same(await schemaDrift(pool, 'prisma/schema.prisma'), [])
    t.same(await query(`SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_seed%'`), [])
    // rebuilt on every monthly partition, not only on the parent
    t.same(await query(`SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid`), [], 'every index valid')
    // the rows were loaded as a replica, without usage's triggers: each still named by usage_requests, and nothing else is
    const unmatched = await query(`SELECT count(*)::int AS n FROM usage u FULL JOIN usage_requests q ON q.request_id = u.request_id AND q.usage_id = u.id AND q.created_at = u.created_at
      WHERE u.id IS NULL OR q.request_id IS NULL`)
    t.same([unmatched[0]!.n, (await query('SELECT count(*)::int AS n FROM usage_requests'))[0]!.n > 0], [0, true], 'usage_requests names every row')
    // rows were loaded without per-row foreign-key checks: check every reference once
    const dangling = await query(`SELECT count(*)::int AS n FROM usage u WHERE
      NOT EXISTS (SELECT 1 FROM users x WHERE x.id = u.user_id) OR NOT EXISTS (SELECT 1 FROM api_keys x WHERE x.id = u.api_key_id)
      OR NOT EXISTS (SELECT 1 FROM providers x WHERE x.id = u.provider_id) OR NOT EXISTS (SELECT 1 FROM provider_endpoints x WHERE x.id = u.provider_endpoint_id AND x.provider_id = u.provider_id)
      OR NOT EXISTS (SELECT 1 FROM provider_api_keys x WHERE x.id = u.provider_api_key_id AND x.provider_id = u.provider_id)`)
    t.equal(dangling[0]!.n, 0)
  })

  t.test('a second run is refused; --reset replaces the data with the same data set', async (t) => {
    const before = await fingerprint(pool)
    await t.rejects(seed(pool, options), { name: 'SeedRefused' })
    t.equal(await fingerprint(pool), before, 'the refusal changed nothing')
    const again = await seed(pool, { ...options, reset: true })
    t.equal(again.rows, ROWS)
    t.equal(await fingerprint(pool), before)
  })
})

t.test('a data set that ends now: the rate window\'s seconds of its last two days, as ingestion would have them', async (t) => {
  const { query } = await seeded(t, { rows: 3000, days: 3, now: new Date() })
  const rows = await query('SELECT request_id, status::text AS status, created_at, api_key_id, total_tokens FROM usage')
  const expected = new Map<string, { requests: number, tokens: number }>()
  const since = Date.now() - 2 * 86_400_000 + 60_000 // a minute's margin for the time the seed took
  for (const r of rows) {
    const second = Math.floor(r.created_at.getTime() / 1000)
    if (r.api_key_id === null || second * 1000 <= since) continue
    const id = `${r.api_key_id as string}|${second}`
    const entry = expected.get(id) ?? { requests: 0, tokens: 0 }
    entry.requests += 1
    entry.tokens += r.total_tokens as number
    expected.set(id, entry)
  }
  const stored = await query(`SELECT api_key_id || '|' || extract(epoch FROM second)::bigint AS id, requests, tokens::int AS tokens
    FROM usage_key_seconds WHERE second > to_timestamp($1 / 1000.0)`, [since])
  t.ok(expected.size > 100, `${expected.size} seconds with requests in the last two days`)
  t.same(new Map(stored.map((r) => [r.id as string, { requests: r.requests as number, tokens: r.tokens as number }])), expected, 'each second: its requests, any status, and their tokens')
})

t.test('an interrupted seed: the indexes it dropped come back with the next run, even a refused one', async (t) => {
  const { pool, options, query } = await seeded(t, { rows: 100 })
  // as step 1 leaves it: the list of dropped indexes, and the indexes gone
  await pool.query(`CREATE UNLOGGED TABLE _seed_indexes AS SELECT indexname AS name, indexdef AS def FROM pg_indexes WHERE tablename = 'usage' AND indexname IN ('usage_in_flight_key_idx', 'usage_model_created_at_idx')`)
  await pool.query('DROP INDEX usage_in_flight_key_idx, usage_model_created_at_idx')
  await t.rejects(seed(pool, options), { name: 'SeedRefused' })
  t.same((await query(`SELECT indexname FROM pg_indexes WHERE indexname IN ('usage_in_flight_key_idx', 'usage_model_created_at_idx') ORDER BY 1`)).map((r) => r.indexname),
    ['usage_in_flight_key_idx', 'usage_model_created_at_idx'])
  t.same(await query(`SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_seed%'`), [])
})

t.test('bad options are refused before anything is written', async (t) => {
  const { pool } = await seeded(t, { rows: 100 })
  for (const bad of [{ rows: 0 }, { rows: 1.5 }, { days: 0 }, { seed: -1 }]) {
    await t.rejects(seed(pool, { rows: 10, encryptionKey: 'x'.repeat(32), ...bad }), RangeError, JSON.stringify(bad))
  }
})
