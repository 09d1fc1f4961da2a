// provider_attempts_hourly.fallbacks: a request with more than one executed candidate
// counts once, in its hour, on the nil provider; ingestion keeps it, a replay adds
// nothing, and migration 20261202060000's backfill writes the same rows from the
// candidates alone.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'

const HOUR = 3_600_000
const NIL = '00000000-0000-0000-0000-000000000000'
const MIGRATION = new URL('../../../prisma/migrations/20261202060000_fallback_requests/migration.sql', import.meta.url)

t.test('fallbacks are counted by ingestion and by the migration\'s backfill alike', async (t) => {
  const g = await gateway(t)
  const alpha = await g.provider('alpha')
  const beta = await g.provider('beta')
  const key = await g.standaloneKey()
  const h1 = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR
  const h2 = h1 - 24 * HOUR
  const sent = (i: number, provider: string, status = 'failed') => ({ candidate_index: i, provider_id: provider, status, ...(status === 'failed' && { status_code: 500 }) })
  const skipped = (i: number, provider: string) => ({ candidate_index: i, provider_id: provider, status: 'skipped', skip_reason: 'rate limited' })
  const request = (id: string, at: number, candidates: object[]) => ({
    type: 'complete', request_id: id, api_key_id: key.id, model: 'm', provider_id: alpha.id, created_at: new Date(at).toISOString(),
    status: 'completed', status_code: 200, input_tokens: 10, output_tokens: 5, ...(candidates.length > 0 && { candidates })
  })
  const batch = [
    request('f1', h1 + 60_000, [sent(0, beta.id), sent(1, alpha.id, 'success')]),
    request('f2', h1 + 120_000, [skipped(0, beta.id), sent(1, beta.id), sent(2, beta.id), sent(3, alpha.id, 'success')]),
    request('n1', h1 + 180_000, [skipped(0, beta.id), sent(1, alpha.id, 'success')]),
    request('n2', h1 + 240_000, []),
    request('f3', h2 + 1, [sent(0, alpha.id), sent(1, alpha.id, 'success')])
  ]
  await g.send(batch)
  const fallbacks = async () => (await g.app.pg.query(`
    SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS bucket, provider_id, fallbacks
      FROM provider_attempts_hourly WHERE fallbacks <> 0 ORDER BY bucket, provider_id`)).rows
  const hour = (ms: number) => new Date(ms).toISOString().slice(0, 19) + 'Z'
  const expected = [{ bucket: hour(h2), provider_id: NIL, fallbacks: 1 }, { bucket: hour(h1), provider_id: NIL, fallbacks: 2 }]
  t.same(await fallbacks(), expected, 'f1 and f2 in their hour, f3 in its own; n1 (one sent) and n2 (none) are no fallbacks')

  const replay = await g.send(batch)
  t.ok(replay.every((r) => r.outcome === 'duplicate'))
  t.same(await fallbacks(), expected, 'a replay adds nothing')

  // the backfill, on the data ingestion wrote, after the column's values are taken away
  await g.app.pg.query('UPDATE provider_attempts_hourly SET fallbacks = 0')
  await g.app.pg.query('DELETE FROM provider_attempts_hourly WHERE attempts = 0 AND latency_count = 0 AND latency_sum_ms = 0')
  const text = await readFile(MIGRATION, 'utf8')
  const backfill = text.slice(text.indexOf(';') + 1)
  t.match(backfill, /INSERT INTO "provider_attempts_hourly"/)
  await g.app.pg.query(backfill)
  t.same(await fallbacks(), expected, 'the migration writes what ingestion wrote')
})
