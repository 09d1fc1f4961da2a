// cache_savings_hourly_global (the whole scope's savings and wasted writes by hour) stays
// the sum of cache_savings_hourly through ingestion and a key's hard delete: each equal to
// the table rebuilt from the raw rows, and the admin's savings answer, by hand.
import t from 'tap'
import { cacheTablesAndRebuilt, gateway, type Json } from '../gateway/fixtures.js'

const MINUTE = 60_000
const HOUR = 3_600_000

t.test('the whole scope\'s savings hours: ingestion and a hard delete keep them equal to the rebuilt table', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  // $3 input, $3.75 a 5-minute write, $0.30 a read, per 1M tokens
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15, cache_write_5m: 3.75, cache_read: 0.3 }] })
  const alice = await g.user()
  const bob = await g.user()
  const keys = [await g.userKey(alice.id), await g.userKey(bob.id)]
  const start = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR
  let n = 0
  const done = (key: Json, at: number, write: number, read: number) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: write, cache_creation_5m_input_tokens: write, cache_read_input_tokens: read
  })
  // each key: a write of 1,000 tokens read 2 minutes later (a hit), then a write of 2,000 whose next request comes 20 minutes later (wasted)
  await g.send(keys.flatMap((key, k) => [
    done(key, start + k * 7 * MINUTE, 1000, 0), done(key, start + (k * 7 + 2) * MINUTE, 2000, 1000), done(key, start + (k * 7 + 22) * MINUTE, 0, 0)
  ]))

  const equalToRebuilt = async (when: string) => {
    const { cache_savings_hourly_global: global } = await cacheTablesAndRebuilt(g.app)
    t.ok(global!.kept.length > 0, `${when}: rows to compare`)
    t.same(global!.kept, global!.rebuilt, `${when}: cache_savings_hourly_global = the table rebuilt from the raw rows`)
  }
  const wasted = async () => (await g.adminCall('GET', `/api/admin/stats/cost/savings?start_date=${new Date(start - HOUR).toISOString()}&end_date=${new Date(start + 2 * HOUR).toISOString()}`))
  await equalToRebuilt('after ingestion')
  // two keys' 2,000 wasted tokens at $3.75 a 1M: $0.0075 each
  const before = await wasted()
  t.same([before.wasted_write_5m_tokens, before.wasted_write_cost], [4000, 0.015], 'both keys\' wasted writes')

  await g.adminCall('DELETE', `/api/admin/api-keys/${keys[1]!.id}`)
  await equalToRebuilt('after bob\'s key was deleted')
  const after = await wasted()
  t.same([after.wasted_write_5m_tokens, after.wasted_write_cost], [2000, 0.0075], 'alice\'s key\'s wasted writes are left')
})
