// ttl-analysis over a whole scope keeps the histograms of its settled UTC days
// (accounting/read/cache.ts SettledIntervals) and stays exact: every answer equals the
// uncached one, over windows and instants that keep, extend and drop the days; a late
// write through another instance, a rebuild's count and a key's hard delete are seen at
// once; a settled row changed behind the count's back is not (proof the days are kept).
import t from 'tap'
import { buildTestApp } from '../../helper.js'
import { gateway, GATEWAY, type Json } from '../gateway/fixtures.js'
import { SettledIntervals } from '../../../src/modules/accounting/read/cache.js'
import { ttlAnalysis } from '../../../src/modules/cache/service.js'

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

t.test('settled days of the interval histograms: equal to the uncached answer, and exact after late writes from any instance', async (t) => {
  const g = await gateway(t)
  const provider = await g.provider('p')
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const alice = await g.user()
  const bob = await g.user()
  const keys = [await g.userKey(alice.id), await g.userKey(alice.id), await g.userKey(bob.id)]
  const now = Date.now()
  let n = 0
  const done = (key: Json, at: number) => ({ type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: provider.id, model: 'm', created_at: new Date(at).toISOString(), status: 'completed', input_tokens: 100, output_tokens: 10 })
  // each key: bursts on each of the last 12 days, at a different hour and rhythm (2, 9 and 40 minutes)
  const events: object[] = []
  keys.forEach((key, k) => {
    for (let day = 0; day < 12; day++) {
      const start = now - day * DAY - (3 + 5 * k) * HOUR
      for (let i = 0; i < 4; i++) events.push(done(key, start + i * [2, 9, 40][k]! * MINUTE))
    }
  })
  for (let i = 0; i < events.length; i += 50) await g.send(events.slice(i, i + 50))
  const db = g.app.statsPg

  const settled = new SettledIntervals()
  const instants = [now, now, now + HOUR, now + 2 * DAY, now + 2 * DAY + 5 * HOUR, now - DAY, now + 20 * DAY]
  for (const at of instants) {
    for (const group of ['user', 'api_key'] as const) {
      for (const hours of [24, 72, 100, 168, 720]) {
        const query = { group_by: group, hours }
        t.same(await ttlAnalysis(db, query, null, new Date(at), settled), await ttlAnalysis(db, query, null, new Date(at)),
          `${group}, ${hours} h, at now ${at >= now ? '+' : '−'} ${Math.abs(at - now) / HOUR} h: as the uncached answer`)
      }
    }
  }

  const ttl = async (group: 'user' | 'api_key') => {
    const res = await g.app.inject({ method: 'GET', url: `/api/admin/usage/cache-affinity/ttl-analysis?group_by=${group}&hours=240`, headers: g.admin.headers })
    t.equal(res.statusCode, 200)
    return Object.fromEntries((res.json().users as Json[]).map((u) => [u.group_id, u.request_count]))
  }
  // by hand: 12 days × 4 requests per key, 10 of the days in a 240-hour window (and maybe the eleventh's, by the hour)
  const first = await ttl('api_key')
  for (const key of keys) t.ok(first[key.id] >= 40 && first[key.id] <= 48, `key ${key.id}: its days' requests (${first[key.id]})`)

  // another instance writes an hour settled days ago: this one's next answer has it
  const other = await buildTestApp(t, { url: g.url })
  const fiveDaysAgo = now - 5 * DAY - 12 * HOUR
  const res = await other.app.inject({ method: 'POST', url: '/api/gateway/usage', headers: GATEWAY, payload: { events: [done(keys[0]!, fiveDaysAgo)] } })
  t.equal(res.statusCode, 200)
  const afterLate = await ttl('api_key')
  t.equal(afterLate[keys[0]!.id], first[keys[0]!.id] + 1, 'the late request through the other instance is counted')
  t.equal(afterLate[keys[2]!.id], first[keys[2]!.id], 'the other keys are unchanged')

  // a settled row changed behind the count's back is not read again: proof the days are kept…
  const settledHour = new Date(Math.floor((now - 6 * DAY) / HOUR) * HOUR).toISOString()
  await g.app.prisma.$executeRawUnsafe(`INSERT INTO cache_interval_hourly (scope, scope_id, bucket, tenant_id, bins)
    SELECT 'api_key', id, '${settledHour}', user_id, '\\xffff000000070000000000000000'::bytea FROM api_keys WHERE id = '${keys[2]!.id}'
    ON CONFLICT (scope, scope_id, bucket, tenant_id) DO UPDATE SET bins = cache_interval_hourly.bins || EXCLUDED.bins`)
  t.same(await ttl('api_key'), afterLate, 'the kept days stand while the count stands')
  // …and summed again once it moves (as a rebuild or the seed's bulk load moves it)
  await g.app.prisma.$executeRawUnsafe('UPDATE rollup_late_writes SET writes = writes + 1')
  t.equal((await ttl('api_key'))[keys[2]!.id], afterLate[keys[2]!.id] + 7, 'the count moved: the seven first requests written by hand are read')

  // a key deleted for good leaves the answer at once (its histograms go, and the count moves)
  await g.adminCall('DELETE', `/api/admin/api-keys/${keys[1]!.id}`)
  const afterDelete = await ttl('api_key')
  t.equal(afterDelete[keys[1]!.id], undefined, 'the deleted key is not listed')
  t.equal(Object.keys(afterDelete).length, 2, 'the two other keys are')
})
