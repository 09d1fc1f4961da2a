// Deleting a provider, an endpoint or a provider key at 100,000 usage rows: the delete
// triggers (usage_clear_reference) and the provider's rollup correction find the rows
// by index, so each admin call commits within a short DB_TRANSACTION_TIMEOUT_MS, and
// the trigger's own UPDATE (seen through auto_explain) uses the partial index.
import pg from 'pg'
import t from 'tap'
import sql from 'sql-template-tag'
import { buildTestApp, signIn } from '../helper.js'
import { usagePartitions } from '../plans.js'

const USAGE_ROWS = 100_000
/** usage rows per 100 that reference provider 0 (half through each of its two endpoint/key pairs); the rest reference three others */
const TARGET_PER_100 = 2
const TRANSACTION_TIMEOUT_MS = 1500

/** a provider's endpoint and key, as usage rows reference them */
interface Slot { providerId: string, endpointId: string, keyId: string }

t.test('deleting an endpoint, a provider key and a provider at 100,000 usage rows', async (t) => {
  const { app, url } = await buildTestApp(t, { env: { DB_TRANSACTION_TIMEOUT_MS: String(TRANSACTION_TIMEOUT_MS) } })
  const admin = await signIn(app, 'admin')
  // slots 0 and 1: provider 0's two endpoint/key pairs; slots 2 to 4: one pair each of providers 1 to 3
  const slots: Slot[] = []
  for (let i = 0; i < 4; i++) {
    const provider = await app.prisma.provider.create({ data: { name: `provider-${i}` } })
    for (let pair = 0; pair < (i === 0 ? 2 : 1); pair++) {
      const endpoint = await app.prisma.providerEndpoint.create({ data: { providerId: provider.id, apiFormat: pair === 0 ? 'openai' : 'claude', baseUrl: `https://p${i}.example.com` } })
      const key = await app.prisma.providerApiKey.create({ data: { providerId: provider.id, name: `key-${i}-${pair}`, secretEncrypted: 'sealed', secretDisplay: 'sk-…' } })
      slots.push({ providerId: provider.id, endpointId: endpoint.id, keyId: key.id })
    }
  }
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  t.teardown(() => db.end())
  const column = (pick: (slot: Slot) => string) => slots.map(pick)
  // row n's slot (1-based for SQL arrays): n % 100 = 0 slot 1, = 50 slot 2, else one of slots 3 to 5
  const slot = sql`CASE n % 100 WHEN 0 THEN 1 WHEN 50 THEN 2 ELSE 3 + n % 3 END`
  await db.query(sql`
    INSERT INTO usage (request_id, model, status, provider_id, provider_endpoint_id, provider_api_key_id, created_at)
    SELECT 'req-' || n, 'model-' || n % 7, 'completed', (${column((s) => s.providerId)}::uuid[])[${slot}],
           (${column((s) => s.endpointId)}::uuid[])[${slot}], (${column((s) => s.keyId)}::uuid[])[${slot}],
           now() - make_interval(secs => n)
      FROM generate_series(1, ${USAGE_ROWS}) AS n`)
  await db.query(sql`
    INSERT INTO usage_hourly (bucket, user_id, api_key_id, provider_id, model, api_format, requests)
    SELECT date_trunc('hour', now()) - make_interval(hours => n / 10), gen_random_uuid(), gen_random_uuid(),
           (${column((s) => s.providerId)}::uuid[])[${slot}], 'model-' || n % 10, 'openai', 1
      FROM generate_series(1, ${USAGE_ROWS}) AS n`)
  await db.query('ANALYZE usage')
  await db.query('ANALYZE usage_hourly')
  const [first, second] = [slots[0]!, slots[1]!]
  const perSlot = USAGE_ROWS / 100

  const count = async (name: string, id: string) =>
    Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM usage WHERE ${name} = $1`, [id])).rows[0]!.n)
  t.equal(await count('provider_endpoint_id', first.endpointId), perSlot, 'the first endpoint\'s rows')
  t.equal(await count('provider_id', first.providerId), perSlot * TARGET_PER_100, 'provider 0\'s rows')

  t.test('the trigger\'s UPDATE finds the rows by the partial index', async (t) => {
    // the trigger's statement is nested, so auto_explain shows its real plan; the DELETEs are rolled back
    const plans: string[] = []
    const onNotice = (notice: { message?: string }) => { plans.push(notice.message ?? '') }
    db.on('notice', onNotice)
    t.teardown(() => { db.off('notice', onNotice) })
    await db.query('BEGIN')
    try {
      await db.query("LOAD 'auto_explain'")
      await db.query('SET LOCAL auto_explain.log_min_duration = 0')
      await db.query('SET LOCAL auto_explain.log_nested_statements = on')
      await db.query('SET LOCAL auto_explain.log_level = notice')
      await db.query('DELETE FROM provider_endpoints WHERE id = $1', [first.endpointId])
      await db.query('DELETE FROM provider_api_keys WHERE id = $1', [first.keyId])
    } finally {
      await db.query('ROLLBACK')
    }
    // usage's monthly partitions holding rows (an empty one, a month ahead, is read whole at no cost); each scanned through its copy of the index
    const { filled } = await usagePartitions(db)
    t.ok(filled.length > 0, `rows in ${filled.join(', ')}`)
    for (const name of ['provider_endpoint_id', 'provider_api_key_id']) {
      const plan = plans.find((p) => p.includes(`UPDATE usage SET ${name} = NULL`))
      t.ok(plan, `auto_explain showed the trigger's UPDATE of ${name}`)
      for (const partition of filled) {
        t.match(plan, new RegExp(`(Index Scan using|Bitmap Index Scan on) ${partition}_${name}_idx`), `${name}: ${partition} through the partial index`)
      }
      const scanned = [...(plan ?? '').matchAll(/Seq Scan on (\S+)/g)].map((m) => m[1])
      t.same(scanned.filter((relation) => filled.includes(relation!)), [], `${name}: no sequential scan of usage's rows`)
    }
  })

  t.test('through the admin API, each within the transaction time limit', async (t) => {
    const call = (path: string) => app.inject({ method: 'DELETE', url: `/api/admin/providers/${path}`, headers: admin.headers })
    const endpoint = await call(`${first.providerId}/endpoints/${first.endpointId}`)
    t.equal(endpoint.statusCode, 200, `endpoint deleted: ${endpoint.body}`)
    t.equal(await count('provider_endpoint_id', first.endpointId), 0, 'its usage rows no longer reference it')
    const key = await call(`${first.providerId}/keys/${first.keyId}`)
    t.equal(key.statusCode, 200, `provider key deleted: ${key.body}`)
    t.equal(await count('provider_api_key_id', first.keyId), 0, 'its usage rows no longer reference it')

    // the provider itself: its delete cascades to its second endpoint and key, whose triggers run too
    const provider = await call(first.providerId)
    t.equal(provider.statusCode, 200, `provider deleted: ${provider.body}`)
    t.equal(await count('provider_id', first.providerId), 0, 'its usage rows no longer reference it')
    t.equal(await count('provider_endpoint_id', second.endpointId), 0, 'nor its second endpoint')
    t.equal(await count('provider_api_key_id', second.keyId), 0, 'nor its second key')
    const others = Number((await db.query<{ n: string }>(
      'SELECT count(*) AS n FROM usage WHERE provider_id = ANY($1) AND provider_endpoint_id IS NOT NULL AND provider_api_key_id IS NOT NULL',
      [column((s) => s.providerId).slice(2)])).rows[0]!.n)
    t.equal(others, USAGE_ROWS - perSlot * TARGET_PER_100, 'the other providers\' rows keep their references')
    t.equal(await app.prisma.usage.count(), USAGE_ROWS, 'no usage row lost')
  })
})
