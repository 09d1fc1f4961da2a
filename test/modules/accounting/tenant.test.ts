// The tenant column (accounting/tenant.ts) in the keys of usage_key_seconds,
// cache_interval_hourly and cache_timeline_tail: a user's key writes its owner's id, a
// standalone key its own, a user scope its user's; the rebuilds write the same tenants as
// ingestion; two requests of one key in one second still meet in one row.
import t from 'tap'
import { rollupUsageRange } from '../../../src/modules/accounting/bulk.js'
import { DERIVED_TABLES } from '../../../src/modules/accounting/model.js'
import { cacheTablesAndRebuilt, gateway, type Json } from '../gateway/fixtures.js'

const SECOND = 1000

t.test('each row carries its tenant, written alike by ingestion and by the rebuilds', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15, cache_write_5m: 3.75, cache_read: 0.3 }] })
  const alice = await g.user()
  const own = await g.userKey(alice.id)
  const solo = await g.standaloneKey()
  let n = 0
  const done = (key: Json, at: number) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: 50, cache_creation_5m_input_tokens: 50
  })
  // whole seconds a minute ago: two requests of alice's key share one, the standalone key has two of its own
  const base = Math.floor(Date.now() / SECOND) * SECOND - 60 * SECOND
  await g.send([done(own, base + 100), done(solo, base + 200), done(own, base + 700)])
  await g.send([done(solo, base + 2 * SECOND)])

  const query = async (text: string) => g.app.prisma.$queryRawUnsafe<Json[]>(text)
  const seconds = 'SELECT api_key_id, extract(epoch FROM second)::int AS second, tenant_id, requests, tokens::int AS tokens FROM usage_key_seconds ORDER BY 1, 2'
  const expectedSeconds = [
    { api_key_id: own.id, second: base / SECOND, tenant_id: alice.id, requests: 2, tokens: 320 },
    { api_key_id: solo.id, second: base / SECOND, tenant_id: solo.id, requests: 1, tokens: 160 },
    { api_key_id: solo.id, second: base / SECOND + 2, tenant_id: solo.id, requests: 1, tokens: 160 }
  ].sort((a, b) => a.api_key_id.localeCompare(b.api_key_id) || a.second - b.second)
  t.same(await query(seconds), expectedSeconds, "the rate window's seconds: alice's key under alice, the standalone key under itself; one row for one second")

  // the standalone key's requests count in its creator's user scope, under the creator's tenant
  const owners = new Map<string, string>([[`api_key:${own.id as string}`, alice.id], [`api_key:${solo.id as string}`, solo.id], [`user:${alice.id as string}`, alice.id], [`user:${g.admin.id}`, g.admin.id]])
  for (const table of ['cache_interval_hourly', 'cache_timeline_tail']) {
    const rows = await query(`SELECT DISTINCT scope, scope_id, tenant_id FROM ${table} ORDER BY 1, 2`)
    t.same(rows.map((r) => `${r.scope as string}:${r.scope_id as string}`).sort(), [...owners.keys()].sort(), `${table}: both keys and both users have rows`)
    for (const r of rows) t.equal(r.tenant_id, owners.get(`${r.scope as string}:${r.scope_id as string}`), `${table}: ${r.scope as string} ${r.scope_id as string}'s tenant`)
  }

  // the cache rebuild (cli rebuild-cache, the seed) writes every row, tenant included, as ingestion did
  for (const [name, { kept, rebuilt }] of Object.entries(await cacheTablesAndRebuilt(g.app))) t.same(rebuilt, kept, `${name}: rebuilt = as ingestion kept it`)

  // the seed's bulk rollup of the window's seconds, over every row, in a transaction rolled back
  const client = await g.app.pg.connect()
  try {
    await client.query('BEGIN')
    await client.query(`TRUNCATE ${DERIVED_TABLES.join(', ')}`)
    await rollupUsageRange(client, { from: '00000000-0000-0000-0000-000000000000', to: 'ffffffff-ffff-ffff-ffff-ffffffffffff' })
    t.same((await client.query(seconds)).rows, expectedSeconds, 'the bulk rollup writes the same seconds and tenants')
    await client.query('ROLLBACK')
  } finally {
    client.release()
  }
})
