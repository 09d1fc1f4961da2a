// The latency buckets, written twice (model.ts latencyBucket in TypeScript, the
// migration's latency_bucket in SQL), agree on every bound and on random values; every
// latency below the top is reported within the stated relative error; and the SQL
// histogram functions add, negate, sum and count as elementwise arithmetic does.
import pg from 'pg'
import t from 'tap'
import { LATENCY_BOUNDS, LATENCY_BUCKETS, LATENCY_RELATIVE_ERROR, LATENCY_TOP_MS, latencyBucket, latencyOfBucket, rollup, summedColumns } from '../../../src/modules/accounting/model.js'
import { seed } from '../../../src/modules/seed/service.js'
import { createDatabase, testConfig } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'
import { histogramDifferences } from './percentiles-fixtures.js'

t.test('TypeScript and SQL put every latency in the same bucket', async (t) => {
  const url = await createDatabase(t)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const random = mulberry32(testSeed(t, 20261205))
  const values = [-5, 0, 1, LATENCY_TOP_MS * 3, 2_147_483_647]
  for (const b of LATENCY_BOUNDS) values.push(b - 1, b, b + 1)
  for (let i = 0; i < 5_000; i++) values.push(Math.floor(random() ** 3 * LATENCY_TOP_MS * 1.2))
  const { rows } = await client.query<{ ms: number, i: number }>('SELECT ms, latency_bucket(ms) AS i FROM unnest($1::int[]) ms', [values])
  const differ = rows.filter((r) => r.i !== latencyBucket(r.ms))
  t.same(differ.slice(0, 5), [], `${values.length} values, none in another bucket`)
  t.equal(latencyBucket(0), 0, 'below 1 ms: bucket 0')
  t.equal(latencyBucket(LATENCY_TOP_MS * 9), LATENCY_BUCKETS - 1, 'past the top: the last bucket')
  t.equal((await client.query('SELECT latency_bucket(NULL) AS i')).rows[0].i, null, 'no latency, no bucket')
})

t.test('every latency below the top is reported within the stated relative error', async (t) => {
  let worst = 0
  for (let ms = 1; ms < LATENCY_TOP_MS; ms++) {
    const error = Math.abs(latencyOfBucket(latencyBucket(ms)) - ms) / ms
    if (error > worst) worst = error
  }
  t.comment(`worst relative error ${(worst * 100).toFixed(3)} % over 1 … ${LATENCY_TOP_MS - 1} ms`)
  t.ok(worst <= LATENCY_RELATIVE_ERROR, `${worst} ≤ ${LATENCY_RELATIVE_ERROR}`)
  t.equal(latencyOfBucket(0), 0)
  t.equal(latencyOfBucket(LATENCY_BUCKETS - 1), LATENCY_TOP_MS, 'the top bucket reports its lower bound')
  t.ok(LATENCY_BUCKETS < 160, `${LATENCY_BUCKETS} buckets`)
})

t.test('the histogram functions', async (t) => {
  const url = await createDatabase(t)
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const one = async (text: string) => (await client.query(text)).rows[0].h.map(Number)
  t.same(await one(`SELECT latency_hist_add('{1,2,3}', '{10}') AS h`), [11, 2, 3], 'a shorter one adds its elements')
  t.same(await one(`SELECT latency_hist_add(NULL, '{0,4}') AS h`), [0, 4], 'NULL is empty')
  t.same(await one(`SELECT latency_hist_add('{}', '{}') AS h`), [], 'empty')
  t.same(await one(`SELECT latency_hist_negate('{1,0,-2}') AS h`), [-1, 0, 2])
  t.same(await one(`SELECT latency_hist_sum(h) AS h FROM (VALUES ('{1}'::bigint[]), ('{0,0,5}'), (NULL), ('{2,1}')) v(h)`), [3, 1, 5])
  t.same(await one(`SELECT latency_hist_of(ARRAY[3, 0, 3, 1]) AS h`), [1, 1, 0, 2], 'bucket i counted at element i + 1')
  t.same(await one(`SELECT latency_hist_of(NULL) AS h`), [], 'no sample')
  // the rollup model's per-column rules, as the corrections and the bulk load use them
  const [rt] = summedColumns(rollup('usage_hourly_model')).filter((c) => c.name === 'response_time_hist')
  t.same(await one(`SELECT ${rt!.subtract(`'{5,3}'::bigint[]`, `'{1,1,1}'::bigint[]`)} AS h`), [4, 2, -1], 'subtract')
  t.same(await one(`SELECT ${rt!.add(`'{5,3}'::bigint[]`, `'{1}'::bigint[]`)} AS h`), [6, 3], 'add')
  t.same(await one(`SELECT ${rt!.sum('h')} AS h FROM (VALUES ('{1}'::bigint[]), ('{0,2}')) v(h)`), [1, 2], 'sum')
})

t.test('the seed\'s bulk load counts the raw rows into the histograms', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  t.teardown(() => pool.end())
  await seed(pool, { rows: 2000, days: 10, seed: 15, now: new Date('2026-03-04T05:06:07.089Z'), encryptionKey: testConfig(url).ENCRYPTION_KEY, chunk: 700 })
  const differences = await histogramDifferences(pool)
  t.ok(differences.pairs > 500, `${differences.pairs} counts`)
  t.same([differences.model, differences.provider], [[], []], 'usage_hourly_model counted from the raw rows, usage_hourly_provider summed from it')
})
