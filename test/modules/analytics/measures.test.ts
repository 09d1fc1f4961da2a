// The time series' rollup measures (time to first byte, cache writes by TTL) after
// ingestion equal plain sums over the raw usage rows, in every table that keeps them.
import t from 'tap'
import { testSeed } from '../../prng.js'
import { dataSet, HOUR } from '../stats/fixtures.js'

const FINISHED = `status IN ('completed', 'failed', 'cancelled')`
const NIL = `'00000000-0000-0000-0000-000000000000'::uuid`
const SUMS = `coalesce(sum(first_byte_time_ms), 0)::text AS fb_sum, count(first_byte_time_ms)::text AS fb_count,
  sum(cache_creation_5m_input_tokens)::text AS w5, sum(cache_creation_1h_input_tokens)::text AS w1`
const STORED = `sum(first_byte_time_sum_ms)::text AS fb_sum, sum(first_byte_time_count)::text AS fb_count,
  sum(cache_creation_5m_tokens)::text AS w5, sum(cache_creation_1h_tokens)::text AS w1`

t.test('after ingestion: each table\'s new measures are the raw rows\' sums', async (t) => {
  const { g, base, keys } = await dataSet(t, { seed: testSeed(t, 20261204), count: 300, hours: 24 })
  // completions with a first byte (the data set's own have none), some with a null one
  const events = Array.from({ length: 60 }, (_v, i) => ({
    type: 'complete',
    request_id: `fb-${i}`,
    api_key_id: keys[i % keys.length]!.id,
    model: 'claude-x',
    created_at: new Date(base + (i * 37 % 24) * HOUR + i * 1000).toISOString(),
    status: i % 5 === 0 ? 'failed' : 'completed',
    input_tokens: 10,
    output_tokens: 5,
    cache_creation_input_tokens: i % 3 === 0 ? 0 : 30,
    cache_creation_5m_input_tokens: i % 3 === 0 ? 0 : 10,
    cache_creation_1h_input_tokens: i % 3 === 0 ? 0 : 20,
    response_time_ms: 1000 + i,
    first_byte_time_ms: i % 4 === 0 ? null : 100 + i
  }))
  await g.send(events)
  const sql = async (text: string) => (await g.app.pg.query(text)).rows.map((r) => JSON.stringify(r)).sort()
  const fb = await sql(`SELECT count(*) FILTER (WHERE first_byte_time_ms IS NOT NULL) AS n FROM usage WHERE ${FINISHED}`)
  t.ok(JSON.parse(fb[0]!).n > 30, 'finished rows with a first byte')

  // a deleted provider's rows lost their provider_id in usage, not in the rollups: compared without the provider
  const cases: Array<[string, string, string]> = [
    ['usage_hourly', `bucket, user_id, api_key_id, model, api_format`,
      `date_trunc('hour', created_at, 'UTC') AS bucket, coalesce(user_id, ${NIL}) AS user_id, coalesce(api_key_id, ${NIL}) AS api_key_id, model, coalesce(api_format, '') AS api_format`],
    ['usage_hourly_model', 'bucket, model, api_format', `date_trunc('hour', created_at, 'UTC') AS bucket, model, coalesce(api_format, '') AS api_format`],
    ['usage_daily_model', 'day, model, api_format', `(created_at AT TIME ZONE 'UTC')::date AS day, model, coalesce(api_format, '') AS api_format`],
    ['usage_hourly_provider', 'bucket', `date_trunc('hour', created_at, 'UTC') AS bucket`],
    ['usage_hourly_provider_key', 'bucket, provider_api_key_id', `date_trunc('hour', created_at, 'UTC') AS bucket, coalesce(provider_api_key_id, ${NIL}) AS provider_api_key_id`]
  ]
  for (const [table, keyColumns, rawKeys] of cases) {
    const stored = await sql(`SELECT ${keyColumns}, ${STORED} FROM ${table} GROUP BY ${keyColumns} HAVING sum(requests) <> 0`)
    const raw = await sql(`SELECT ${keyColumns}, fb_sum, fb_count, w5, w1 FROM (SELECT ${rawKeys}, ${SUMS} FROM usage WHERE ${FINISHED} GROUP BY ${keyColumns}) r`)
    t.ok(stored.length > 10, `${table} has rows`)
    t.same(stored, raw, `${table}: first byte sum and count, 5m and 1h writes`)
  }
})
