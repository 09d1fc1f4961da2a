// The latency histograms of usage_hourly_model and usage_hourly_provider beside the raw
// finished rows counted per bucket (latency_bucket, itself checked against TypeScript):
// the rows of (rollup EXCEPT ALL raw) and (raw EXCEPT ALL rollup), none when they agree.
import type pg from 'pg'

const NIL = `'00000000-0000-0000-0000-000000000000'::uuid`
const FINISHED = `status IN ('completed', 'failed', 'cancelled')`

const histogramPairs = (table: string, keys: string) => ['response_time_hist', 'first_byte_time_hist'].map((h) => `
  SELECT ${keys}, '${h}' AS k, x.o - 1 AS i, x.v AS n FROM ${table} CROSS JOIN LATERAL unnest(${h}) WITH ORDINALITY x(v, o) WHERE x.v <> 0`).join(' UNION ALL ')

/** `keys`: four key expressions */
const rawPairs = (keys: string) => [['response_time_hist', 'response_time_ms'], ['first_byte_time_hist', 'first_byte_time_ms']].map(([h, column]) => `
  SELECT ${keys}, '${h}' AS k, latency_bucket(${column}) AS i, count(*) AS n FROM usage WHERE ${FINISHED} AND ${column} IS NOT NULL
   GROUP BY 1, 2, 3, 4, 5, 6`).join(' UNION ALL ')

export async function histogramDifferences (db: pg.Pool | pg.Client): Promise<{ model: unknown[], provider: unknown[], pairs: number }> {
  const hour = `date_trunc('hour', created_at, 'UTC')`
  const model = `(${histogramPairs('usage_hourly_model', 'bucket, provider_id, model, api_format')}) EXCEPT ALL (${rawPairs(`${hour}, coalesce(provider_id, ${NIL}), model, coalesce(api_format, '')`)})`
  const modelBack = `(${rawPairs(`${hour}, coalesce(provider_id, ${NIL}), model, coalesce(api_format, '')`)}) EXCEPT ALL (${histogramPairs('usage_hourly_model', 'bucket, provider_id, model, api_format')})`
  const provider = `(${histogramPairs('usage_hourly_provider', 'bucket, provider_id, 0, 0')}) EXCEPT ALL (${rawPairs(`${hour}, coalesce(provider_id, ${NIL}), 0, 0`)})`
  const providerBack = `(${rawPairs(`${hour}, coalesce(provider_id, ${NIL}), 0, 0`)}) EXCEPT ALL (${histogramPairs('usage_hourly_provider', 'bucket, provider_id, 0, 0')})`
  const pairs = await db.query(`SELECT count(*)::int AS n FROM (${histogramPairs('usage_hourly_model', 'bucket')}) p`)
  return {
    model: [...(await db.query(model)).rows, ...(await db.query(modelBack)).rows],
    provider: [...(await db.query(provider)).rows, ...(await db.query(providerBack)).rows],
    pairs: pairs.rows[0].n
  }
}
