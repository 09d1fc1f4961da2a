// The cache tables' rebuild (cli rebuild-cache, the seed) buckets its rows by UTC hour as
// ingestion does, whatever the session's time zone: in a +05:30 zone a local hour starts
// at :30 UTC, and a rebuild truncating in it put every row in another hour than ingestion.
import t from 'tap'
import { cacheTablesAndRebuilt, gateway, type Json } from '../gateway/fixtures.js'

const MINUTE = 60_000
const HOUR = 3_600_000

t.test('a rebuild in an Asia/Kolkata session gives the tables ingestion kept', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15, cache_write_5m: 3.75, cache_read: 0.3 }] })
  const alice = await g.user()
  const key = await g.userKey(alice.id)
  const start = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR
  let n = 0
  const done = (at: number, write: number, read: number) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: write, cache_creation_5m_input_tokens: write, cache_read_input_tokens: read
  })
  // on both sides of :30 and of the hour: a write, a read 20 minutes later, a wasted write 40 minutes before the last request
  await g.send([done(start + 10 * MINUTE, 1000, 0), done(start + 35 * MINUTE, 0, 1000), done(start + 50 * MINUTE, 2000, 0), done(start + 95 * MINUTE, 0, 0)])
  for (const zone of ['UTC', 'Asia/Kolkata']) {
    const tables = await cacheTablesAndRebuilt(g.app, zone)
    for (const [name, { kept, rebuilt }] of Object.entries(tables) as Array<[string, { kept: Json[], rebuilt: Json[] }]>) {
      t.same(rebuilt, kept, `${zone}: ${name} rebuilt = as ingestion kept it`)
    }
    t.ok(tables.cache_interval_hourly!.kept.length > 0 && tables.cache_savings_hourly!.kept.length > 0, `${zone}: rows to compare`)
  }
})
