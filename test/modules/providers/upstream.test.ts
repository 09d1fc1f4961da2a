// Upstream accounting through the HTTP API: what each provider key served over a range,
// the provider's month of spend kept by ingestion (reset by the month, not by a job), the
// quota-usage statistics, and the provider-key rollup equal to a GROUP BY over the raw
// rows after ingestion and after each correction. Expected figures are worked out by hand.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { waitUntil } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'
import { gateway, UNKNOWN_UUID, type Gateway, type Json } from '../gateway/fixtures.js'

const HOUR = 3_600_000
const now = Date.now()
const MONTH_START = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)
const iso = (ms: number) => new Date(ms).toISOString()
/** this month's requests: a second into it (in the past unless the test runs in the month's first second) */
const THIS_MONTH = iso(MONTH_START + 1000)

/** USD 1 per 1M input tokens, 2 per 1M output: 1,000 / 2,000 nano-USD a token */
const TIERS = [{ up_to: null, input: 1, output: 2 }]

async function catalogue (g: Gateway) {
  const provider = await g.adminCall('POST', '/api/admin/providers', {
    name: 'bedrock', billing_type: 'monthly_quota', monthly_quota_usd: 10, quota_expires_at: '2027-06-30T00:00'
  })
  const endpoint = await g.endpoint(provider.id, 'claude:messages')
  const k1 = await g.providerKey(provider.id, { rate_multiplier: 1 })
  const k2 = await g.providerKey(provider.id, { rate_multiplier: 2 })
  const k3 = await g.providerKey(provider.id)
  await g.price({ model: 'm', tiers: TIERS })
  const key = await g.standaloneKey()
  const other = await g.provider('open')
  return { provider, endpoint, k1, k2, k3, key, other }
}

type Catalogue = Awaited<ReturnType<typeof catalogue>>

const done = (c: Catalogue, id: string, providerKey: Json | null, createdAt: string, extra: object) => ({
  type: 'complete', request_id: id, api_key_id: c.key.id, model: 'm', api_format: 'claude:messages', provider_id: c.provider.id,
  provider_endpoint_id: c.endpoint.id, provider_api_key_id: providerKey?.id ?? null, created_at: createdAt, status: 'completed', input_tokens: 0, output_tokens: 0, ...extra
})

/** The provider-key rollup and the same sums grouped from the finished raw rows (every measure, as text). */
async function rollupAndRaw (g: Gateway) {
  const measures = `requests, errors, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_tokens, total_cost, actual_total_cost,
    response_time_sum_ms, response_time_count, cache_creation_cost, cache_read_cost, cache_hit_requests`
  const rollup = await g.app.prisma.$queryRawUnsafe(`
    SELECT provider_api_key_id::text AS id, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS hour, ${measures.split(',').map((m) => `${m.trim()}::text`).join(', ')}
      FROM usage_hourly_provider_key
     WHERE NOT (requests = 0 AND errors = 0 AND total_tokens = 0 AND total_cost = 0 AND actual_total_cost = 0 AND response_time_count = 0)
     ORDER BY 1, 2`)
  const raw = await g.app.prisma.$queryRawUnsafe(`
    SELECT COALESCE(provider_api_key_id, '00000000-0000-0000-0000-000000000000')::text AS id, to_char(date_trunc('hour', created_at, 'UTC') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS hour,
           count(*)::text AS requests, count(*) FILTER (WHERE status = 'failed')::text AS errors, sum(input_tokens)::text AS input_tokens,
           sum(output_tokens)::text AS output_tokens, sum(cache_creation_input_tokens)::text AS cache_creation_tokens,
           sum(cache_read_input_tokens)::text AS cache_read_tokens, sum(total_tokens)::text AS total_tokens, sum(total_cost)::text AS total_cost,
           sum(actual_total_cost)::text AS actual_total_cost, COALESCE(sum(response_time_ms), 0)::text AS response_time_sum_ms,
           count(response_time_ms)::text AS response_time_count, sum(cache_creation_cost)::text AS cache_creation_cost,
           sum(cache_read_cost)::text AS cache_read_cost, count(*) FILTER (WHERE cache_read_input_tokens > 0)::text AS cache_hit_requests
      FROM usage WHERE status IN ('completed', 'failed', 'cancelled')
     GROUP BY 1, 2 ORDER BY 1, 2`)
  const values = (rows: unknown) => (rows as Array<Record<string, string>>).map((row) => Object.values(row))
  return { rollup: values(rollup), raw: values(raw) }
}

t.test('per provider key usage over a ragged range, the month\'s spend, the quota-usage statistics', async (t) => {
  const g = await gateway(t)
  const c = await catalogue(g)
  await g.send([
    // this month: k1 1M in + 0.5M out = USD 1 + 1 = 2 (× 1); k2 1M in = USD 1, actual × 2 = 2; k2 failed, nothing
    done(c, 'r1', c.k1, THIS_MONTH, { input_tokens: 1_000_000, output_tokens: 500_000, response_time_ms: 100 }),
    done(c, 'r2', c.k2, THIS_MONTH, { input_tokens: 1_000_000 }),
    done(c, 'r3', c.k2, THIS_MONTH, { status: 'failed', status_code: 529 }),
    // last month, in the range: 80 min before the month (the range's raw edge) and 30 min before (a whole hour)
    done(c, 'r4', c.k1, iso(MONTH_START - 80 * 60_000), { input_tokens: 1_000 }),
    done(c, 'r5', c.k1, iso(MONTH_START - 30 * 60_000), { input_tokens: 2_000, response_time_ms: 300 }),
    // before the range; and a request sent without a provider key
    done(c, 'r6', c.k1, iso(MONTH_START - 3 * HOUR), { input_tokens: 5_000 }),
    done(c, 'r7', null, THIS_MONTH, { input_tokens: 7_000 })
  ])

  const res = await g.app.inject({
    method: 'GET',
    url: `/api/admin/providers/${c.provider.id}/keys/usage?start_date=${encodeURIComponent(iso(MONTH_START - 90 * 60_000))}&end_date=${encodeURIComponent(iso(now + 30 * 60_000))}`,
    headers: g.admin.headers
  })
  t.equal(res.statusCode, 200, res.body)
  const byName = Object.fromEntries(res.json().items.map((item: Json) => [item.name, item]))
  t.same(res.json().items.map((item: Json) => item.id).sort(), [c.k1.id, c.k2.id, c.k3.id].sort(), 'every key of the provider, the idle one included')
  // k1: r1 + r4 + r5 = 1,003,000 in, 500,000 out; USD 2 + 0.001 + 0.002; response times 100 and 300
  t.match(byName[c.k1.name], {
    requests: 3, errors: 0, error_rate: 0, input_tokens: 1_003_000, output_tokens: 500_000, total_tokens: 1_503_000,
    total_cost_usd: 2.003, actual_cost_usd: 2.003, avg_response_time_ms: 200, is_active: true
  })
  // k2: r2 + r3; actual at rate 2
  t.match(byName[c.k2.name], { requests: 2, errors: 1, error_rate: 0.5, input_tokens: 1_000_000, output_tokens: 0, total_cost_usd: 1, actual_cost_usd: 2, avg_response_time_ms: null })
  t.match(byName[c.k3.name], { requests: 0, errors: 0, error_rate: 0, total_tokens: 0, total_cost_usd: 0, actual_cost_usd: 0, avg_response_time_ms: null })

  // the month: r1 (2) + r2 (2) + r7 (0.007, no key but the provider's) of actual cost; r4–r6 were last month
  const provider = await g.adminCall('GET', `/api/admin/providers/${c.provider.id}`)
  t.match(provider, {
    monthly_quota_usd: 10, monthly_used_usd: 4.007, monthly_remaining_usd: 5.993, monthly_usage_percent: 40.07,
    monthly_period_start: iso(MONTH_START)
  })
  const summary = (await g.adminCall('GET', '/api/admin/providers/summary') as unknown as Json[]).find((row) => row.id === c.provider.id)
  t.equal(summary?.monthly_used_usd, 4.007, 'Aether\'s summary row reads the same month')

  const quota = await g.adminCall('GET', '/api/admin/stats/providers/quota-usage')
  t.equal(quota.providers.length, 1, 'only providers with a monthly quota')
  t.match(quota.providers[0], {
    id: c.provider.id, name: 'bedrock', quota_usd: 10, used_usd: 4.007, remaining_usd: 5.993, usage_percent: 40.07,
    quota_expires_at: '2027-06-30T00:00', billing_type: 'monthly_quota', monthly_period_start: iso(MONTH_START)
  })
  const exhaust = quota.providers[0].estimated_exhaust_at
  t.ok(exhaust === null || (Date.parse(exhaust) > now - 60_000 && Date.parse(exhaust) <= MONTH_START + 40 * 24 * HOUR), `a projection within the month, or none (${String(exhaust)})`)

  await waitUntil('both reads audited', async () => g.app.prisma.auditLog.count({ where: { action: { in: ['provider_keys.usage', 'stats.providers_quota_usage'] } } }), (n) => n === 2)
  t.pass('both reads audited')
})

t.test('the month resets at the boundary without a job; concurrent batches lose no increment', async (t) => {
  const g = await gateway(t)
  const c = await catalogue(g)
  // a row last charged in an older month: read as nothing spent
  await g.app.prisma.$executeRawUnsafe(`UPDATE providers SET monthly_used = 99000000000, monthly_used_month = '2020-01-01' WHERE id = '${c.provider.id as string}'`)
  t.match(await g.adminCall('GET', `/api/admin/providers/${c.provider.id}`), { monthly_used_usd: 0, monthly_remaining_usd: 10, monthly_usage_percent: 0, monthly_estimated_exhaust_at: null })
  // eight batches at once, each USD 0.5 of actual cost on k2 (250,000 input tokens × 1,000 × 2): the month starts from them alone
  await Promise.all(Array.from({ length: 8 }, async (_v, i) => g.send([done(c, `c${i}`, c.k2, THIS_MONTH, { input_tokens: 250_000 })])))
  const [row] = await g.app.prisma.$queryRawUnsafe<Json[]>(`SELECT monthly_used::text AS used, monthly_used_month::text AS month FROM providers WHERE id = '${c.provider.id as string}'`)
  t.same(row, { used: '4000000000', month: iso(MONTH_START).slice(0, 10) })
  // a late row of an older month leaves this month alone
  await g.send([done(c, 'old', c.k2, iso(MONTH_START - 24 * HOUR), { input_tokens: 250_000 })])
  t.match(await g.adminCall('GET', `/api/admin/providers/${c.provider.id}`), { monthly_used_usd: 4, monthly_usage_percent: 40 })
  t.match(await g.adminCall('GET', `/api/admin/providers/${c.other.id}`), { monthly_used_usd: 0, monthly_remaining_usd: null, monthly_usage_percent: null, monthly_estimated_exhaust_at: null })
})

t.test('the provider-key rollup equals the raw rows\' GROUP BY after ingestion, a replacement, and each deletion', async (t) => {
  const g = await gateway(t)
  const c = await catalogue(g)
  await g.send([
    { type: 'start', request_id: 's1', api_key_id: c.key.id, model: 'm', api_format: 'claude:messages', provider_id: c.provider.id, provider_api_key_id: c.k1.id, created_at: THIS_MONTH },
    done(c, 'a', c.k1, THIS_MONTH, { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 3, response_time_ms: 50 }),
    done(c, 'b', c.k2, iso(MONTH_START - 2 * HOUR), { input_tokens: 20, cache_creation_input_tokens: 7 }),
    done(c, 'c', c.k3, THIS_MONTH, { status: 'failed' }),
    done(c, 'd', null, THIS_MONTH, { input_tokens: 1 })
  ])
  // the in-flight request completes on another key than it started with
  await g.send([{ type: 'complete', request_id: 's1', status: 'completed', provider_api_key_id: c.k2.id, input_tokens: 40, output_tokens: 2, response_time_ms: 70 }])
  let { rollup, raw } = await rollupAndRaw(g)
  t.ok(rollup.length >= 4, `rows for every key and the nil key (${rollup.length})`)
  t.same(rollup, raw, 'after ingestion')

  // the migration's back-fill, on these rows, gives the same rollup and month
  const month = await g.app.prisma.$queryRawUnsafe<Json[]>('SELECT id::text, monthly_used::text, monthly_used_month::text FROM providers ORDER BY id')
  t.not(month.find((p) => p.id === c.provider.id)?.monthly_used, '0', 'the month as ingestion kept it')
  await g.app.prisma.$executeRawUnsafe('DELETE FROM usage_hourly_provider_key')
  await g.app.prisma.$executeRawUnsafe('UPDATE providers SET monthly_used = 0, monthly_used_month = NULL')
  const migration = readFileSync(new URL('../../../prisma/migrations/20261203120000_upstream_accounting/migration.sql', import.meta.url), 'utf8')
  const backfill = migration.slice(migration.indexOf('-- Back-fill'))
  for (const statement of backfill.split(';').map((text) => text.split('\n').filter((line) => !line.startsWith('--')).join('\n').trim()).filter((text) => text !== '')) {
    await g.app.prisma.$executeRawUnsafe(statement)
  }
  t.same((await rollupAndRaw(g)).rollup, raw, 'the migration\'s back-fill of the rollup')
  t.same(await g.app.prisma.$queryRawUnsafe('SELECT id::text, monthly_used::text, monthly_used_month::text FROM providers ORDER BY id'),
    month.map((p) => p.id === c.provider.id ? p : { ...p, monthly_used: '0', monthly_used_month: null }), 'the migration\'s back-fill of the month')

  const refused = await g.app.inject({ method: 'DELETE', url: `/api/admin/providers/${c.other.id}/keys/${c.k2.id}`, headers: g.admin.headers })
  t.equal(refused.statusCode, 404, 'another provider\'s key: nothing deleted')
  await g.adminCall('DELETE', `/api/admin/providers/${c.provider.id}/keys/${c.k2.id}`);
  ({ rollup, raw } = await rollupAndRaw(g))
  t.same(rollup, raw, 'after a provider key\'s delete: its part is on the nil key')
  t.ok(rollup.every((row) => row[0] !== c.k2.id), 'no row of the deleted key')

  await g.adminCall('DELETE', `/api/admin/providers/${c.provider.id}`);
  ({ rollup, raw } = await rollupAndRaw(g))
  t.same(rollup, raw, 'after the provider\'s delete with its keys')
  t.same(rollup.map((row) => row[0]), rollup.map(() => '00000000-0000-0000-0000-000000000000'), 'everything on the nil key')
})

t.test('refusals: unknown provider, bad ranges, strangers and users', async (t) => {
  const g = await gateway(t)
  const c = await catalogue(g)
  const get = async (url: string, headers: Record<string, string> = g.admin.headers) => g.app.inject({ method: 'GET', url, headers })
  const usage = `/api/admin/providers/${c.provider.id}/keys/usage`

  const unknown = await get(`/api/admin/providers/${UNKNOWN_UUID}/keys/usage`)
  t.equal(unknown.statusCode, 404)
  t.match(unknown.json(), { error: { type: 'not_found', message: 'provider not found' } })
  const notUuid = await get('/api/admin/providers/nope/keys/usage')
  t.equal(notUuid.statusCode, 400)
  const reversed = await get(`${usage}?start_date=2026-01-02T00:00:00Z&end_date=2026-01-01T00:00:00Z`)
  t.equal(reversed.statusCode, 400)
  t.match(reversed.json(), { error: { message: 'start_date must be before end_date' } })
  const wide = await get(`${usage}?start_date=2024-01-01T00:00:00Z&end_date=2026-01-01T00:00:00Z`)
  t.equal(wide.statusCode, 400)
  t.match(wide.json(), { error: { message: 'the range may span at most 366 days' } })
  const zoneless = await get(`${usage}?start_date=2026-01-01T00:00:00`)
  t.equal(zoneless.statusCode, 400, 'an instant without its offset')
  const extra = await get(`${usage}?bogus=1`)
  t.equal(extra.statusCode, 400, 'an unknown parameter')

  const user = await (await import('../../helper.js')).signIn(g.app, 'user')
  for (const url of [usage, '/api/admin/stats/providers/quota-usage']) {
    t.equal((await get(url, {})).statusCode, 401, `${url}: no credentials`)
    t.equal((await get(url, user.headers)).statusCode, 403, `${url}: not an admin`)
  }
  await waitUntil('refusals audited', async () => g.app.prisma.auditLog.count({ where: { action: 'provider_keys.usage', success: false } }), (n) => n >= 7)
  t.pass('refusals audited')
})

t.test('random traffic: the provider-key rollup and each provider\'s month equal the raw rows, batch by batch', async (t) => {
  const random = mulberry32(testSeed(t))
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
  const g = await gateway(t)
  const c = await catalogue(g)
  const otherEndpoint = await g.endpoint(c.other.id, 'claude:messages')
  const otherKey = await g.providerKey(c.other.id, { rate_multiplier: 3 })
  const routes = [
    ...[c.k1, c.k2, c.k3, null].map((key) => ({ provider_id: c.provider.id, provider_endpoint_id: c.endpoint.id, provider_api_key_id: key?.id ?? null })),
    { provider_id: c.other.id, provider_endpoint_id: otherEndpoint.id, provider_api_key_id: otherKey.id }
  ]
  // this month, and the last hours of the previous one
  const instants = [THIS_MONTH, iso(MONTH_START - 1), iso(MONTH_START - 5 * HOUR), iso(Math.min(now - 1000, MONTH_START + 26 * HOUR))]
  const open: string[] = []
  for (let batch = 0; batch < 12; batch++) {
    const events: object[] = []
    for (let i = 0; i < 6; i++) {
      const id = `p${batch}-${i}`
      const route = pick(routes)
      const createdAt = pick(instants)
      const tokens = { input_tokens: Math.floor(random() * 5_000), output_tokens: Math.floor(random() * 2_000), response_time_ms: pick([null, 120, 900]) }
      if (random() < 0.3) {
        events.push({ type: 'start', request_id: id, api_key_id: c.key.id, model: 'm', api_format: 'claude:messages', ...route, created_at: createdAt })
        open.push(id)
      } else {
        events.push({ ...done(c, id, null, createdAt, tokens), ...route, status: pick(['completed', 'completed', 'failed', 'cancelled']) })
      }
    }
    // an earlier start completes, on the key (and provider) the gateway finally used
    const finishing = open.splice(0, Math.floor(random() * 3))
    for (const id of finishing) {
      events.push({ type: 'complete', request_id: id, status: 'completed', ...pick(routes), input_tokens: Math.floor(random() * 3_000), output_tokens: 10 })
    }
    await g.send(events)
  }
  const { rollup, raw } = await rollupAndRaw(g)
  t.ok(rollup.length > 5, `${rollup.length} rollup rows`)
  t.same(rollup, raw, 'provider-key rollup = GROUP BY of the finished rows')
  const months = await g.app.prisma.$queryRawUnsafe<Json[]>(`
    SELECT p.id::text, COALESCE((SELECT sum(u.actual_total_cost) FROM usage u WHERE u.provider_id = p.id AND u.status IN ('completed', 'failed', 'cancelled')
             AND u.created_at >= date_trunc('month', now(), 'UTC')), 0)::text AS spent
      FROM providers p ORDER BY p.name`)
  for (const { id, spent } of months) {
    const record = await g.adminCall('GET', `/api/admin/providers/${id as string}`)
    t.equal(Math.round(record.monthly_used_usd * 1e9), Number(spent), `${record.name as string}: this month's actual cost`)
  }
})
