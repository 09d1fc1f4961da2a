// Wasted cache writes by model and by provider (the savings endpoint's by_model / by_provider):
// each group's equal to a reference computed here in SQL from the raw rows (each completed
// write against its key's next completed request, the last one against the clock, in the
// writer's model and provider), through a late request, a key's hard delete and a provider's
// deletion; and the savings tables ingestion keeps equal to the ones rebuilt from the raw rows.
import t from 'tap'
import { cacheTablesAndRebuilt, gateway, SNAPSHOT_PRICES, type Json } from '../gateway/fixtures.js'

const MINUTE = 60_000
const HOUR = 3_600_000
const NIL = '00000000-0000-0000-0000-000000000000'

type Wasted = [number, number, number, number]
type Row = Record<string, any>

t.test('wasted writes by model and provider equal the raw rows\' reference', async (t) => {
  const g = await gateway(t)
  const providers = [await g.provider('pa'), await g.provider('pb')]
  // global prices (they outlive a provider): $3 input, $3.75 a 5-minute write, $6 a 1-hour write, $0.30 a read, per 1M tokens; and a model at other prices
  await g.price({ model: 'mx', tiers: [{ up_to: null, input: 3, output: 15, cache_write_5m: 3.75, cache_write_1h: 6, cache_read: 0.3 }] })
  await g.price({ model: 'my', tiers: [{ up_to: null, input: 1, output: 5, cache_write_5m: 1.25, cache_write_1h: 2.000001, cache_read: 0.1 }] })
  const [alice, bob, carol] = [await g.user(), await g.user(), await g.user()]
  const [ka, kb, kc] = [await g.userKey(alice.id), await g.userKey(bob.id), await g.userKey(carol.id)]
  const now = Date.now()
  const start = Math.floor(now / HOUR) * HOUR - 6 * HOUR
  let n = 0
  const done = (key: Json, at: number, model: string, provider: number, w5: number, w1: number) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: key.id, provider_id: providers[provider]!.id, model, created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: w5 + w1, cache_creation_5m_input_tokens: w5,
    cache_creation_1h_input_tokens: w1, cache_read_input_tokens: 50
  })
  await g.send([
    // alice: a hit; a 5m write wasted (20 minutes) beside a 1h one read in time; a 1h write wasted (90 minutes); both kinds wasted (128 minutes);
    // her last write (4 hours after start) judged against the clock: both kinds wasted
    done(ka, start, 'mx', 0, 1000, 0), done(ka, start + 2 * MINUTE, 'my', 1, 2000, 500), done(ka, start + 22 * MINUTE, 'mx', 0, 0, 3000),
    done(ka, start + 112 * MINUTE, 'my', 0, 700, 300), done(ka, start + 240 * MINUTE, 'mx', 1, 401, 601),
    // bob: a 5m write wasted (30 minutes, until a late request comes); his last, a 1h write, judged against the clock
    done(kb, start + 60 * MINUTE, 'my', 1, 1500, 0), done(kb, start + 90 * MINUTE, 'mx', 1, 0, 800),
    // carol: a write 2 minutes old, not wasted yet
    done(kc, now - 2 * MINUTE, 'my', 0, 500, 0)
  ])

  const sql = async (text: string, params: unknown[] = []) => (await g.app.pg.query(text, params)).rows as Row[]
  // the reference: every completed row of a key with a user, its writes wasted when the key's next completed row came after
  // their TTL (or, for the last, the clock passed it); tokens × price per 1M rounded half away from zero; a provider that is gone is none
  const reference = async () => {
    const rows = await sql(`
      WITH j AS (
        SELECT model, CASE WHEN provider_id IN (SELECT id FROM providers) THEN provider_id::text END AS provider, p5, p1,
               CASE WHEN COALESCE(next_at, $1::timestamptz) - created_at > interval '5 minutes' THEN cache_creation_5m_input_tokens ELSE 0 END AS x5,
               CASE WHEN COALESCE(next_at, $1::timestamptz) - created_at > interval '1 hour' THEN cache_creation_1h_input_tokens ELSE 0 END AS x1
          FROM (SELECT u.*, tp.p5, tp.p1, lead(u.created_at) OVER (PARTITION BY u.api_key_id ORDER BY u.created_at, u.request_id) AS next_at
                  FROM usage u ${SNAPSHOT_PRICES} WHERE u.status = 'completed' AND u.api_key_id IS NOT NULL AND u.user_id IS NOT NULL) u
      )
      SELECT model, provider, sum(x5)::int AS x5, sum(x1)::int AS x1, sum(round(x5 * p5 / 1000000.0) + round(x1 * p1 / 1000000.0))::text AS cost
        FROM j GROUP BY model, provider HAVING sum(x5) + sum(x1) > 0`, [new Date()])
    const byModel = new Map<string, Wasted>()
    const byProvider = new Map<string, Wasted>()
    for (const r of rows) {
      for (const [map, key] of [[byModel, r.model], [byProvider, r.provider ?? 'none']] as Array<[Map<string, Wasted>, string]>) {
        const [a, b, , cost] = map.get(key) ?? [0, 0, 0, 0]
        map.set(key, [a + r.x5, b + r.x1, a + r.x5 + b + r.x1, cost + Number(r.cost)])
      }
    }
    const usd = (map: Map<string, Wasted>): Record<string, Wasted> =>
      Object.fromEntries([...map].sort(([a], [b]) => a < b ? -1 : 1).map(([k, w]): [string, Wasted] => [k, [w[0], w[1], w[2], w[3] / 1e9]]))
    return { byModel: usd(byModel), byProvider: usd(byProvider) }
  }
  const answered = async () => {
    const body = await g.adminCall('GET', `/api/admin/stats/cost/savings?start_date=${new Date(start - HOUR).toISOString()}&end_date=${new Date(now + HOUR).toISOString()}`)
    const wasted = (e: Json): Wasted => [e.wasted_write_5m_tokens, e.wasted_write_1h_tokens, e.wasted_write_tokens, e.wasted_write_cost]
    const groups = (entries: Json[], key: (e: Json) => string) =>
      Object.fromEntries(entries.filter((e) => e.wasted_write_tokens !== 0 || e.wasted_write_cost !== 0).map((e): [string, Wasted] => [key(e), wasted(e)])
        .sort(([a], [b]) => a < b ? -1 : 1))
    return { body, byModel: groups(body.by_model, (e) => e.model), byProvider: groups(body.by_provider, (e) => e.provider_id ?? 'none') }
  }
  const check = async (when: string, models: number, providerGroups: number) => {
    const [expected, got] = [await reference(), await answered()]
    t.equal(Object.keys(expected.byModel).length, models, `${when}: models with wasted writes`)
    t.equal(Object.keys(expected.byProvider).length, providerGroups, `${when}: providers with wasted writes`)
    t.same(got.byModel, expected.byModel, `${when}: by_model's wasted writes = the reference`)
    t.same(got.byProvider, expected.byProvider, `${when}: by_provider's wasted writes = the reference`)
    const sum = (groups: Record<string, Wasted>, i: number) => Object.values(groups).reduce((s, w) => s + w[i]!, 0)
    t.same([got.body.wasted_write_5m_tokens, got.body.wasted_write_1h_tokens], [sum(expected.byModel, 0), sum(expected.byModel, 1)], `${when}: the total is the groups' sum`)
  }
  // the savings tables as ingestion kept them against the rebuilt ones; a deleted provider's id (kept by ingestion, as the provider rollups do) read as none
  const equalToRebuilt = async (when: string) => {
    const tables = await cacheTablesAndRebuilt(g.app)
    const live = new Set((await sql('SELECT id::text FROM providers')).map((p) => p.id as string))
    const asRead = (rows: Json[]) => {
      const summed = new Map<string, Json>()
      for (const row of rows) {
        const provider = live.has(row.provider_id) ? row.provider_id : NIL
        const key = JSON.stringify(Object.entries(row).filter(([k]) => !/saving|premium|tokens|cost/.test(k)).map(([k, v]) => k === 'provider_id' ? provider : v))
        const into = summed.get(key) ?? { ...row, provider_id: provider, ...Object.fromEntries(Object.keys(row).filter((k) => /saving|premium|tokens|cost/.test(k)).map((k) => [k, '0'])) }
        for (const k of Object.keys(row).filter((k) => /saving|premium|tokens|cost/.test(k))) into[k] = String(BigInt(into[k]) + BigInt(row[k]))
        summed.set(key, into)
      }
      return [...summed.entries()].sort(([a], [b]) => a < b ? -1 : 1).map(([, row]) => row)
    }
    for (const name of ['cache_savings_hourly', 'cache_savings_hourly_model']) {
      t.ok(tables[name]!.kept.length > 0, `${when}: ${name} has rows`)
      t.same(asRead(tables[name]!.kept), asRead(tables[name]!.rebuilt), `${when}: ${name} = the table rebuilt from the raw rows`)
    }
    t.same(tables.cache_savings_hourly_global!.kept, tables.cache_savings_hourly_global!.rebuilt, `${when}: cache_savings_hourly_global = rebuilt`)
    return tables
  }

  await check('after ingestion', 2, 2)
  const first = await equalToRebuilt('after ingestion')
  // exactly equal while no provider is gone: the tails' model and provider included
  t.same(first.cache_savings_hourly_model!.kept, first.cache_savings_hourly_model!.rebuilt, 'cache_savings_hourly_model = rebuilt, row for row')
  t.same(first.cache_timeline_tail!.kept, first.cache_timeline_tail!.rebuilt, 'cache_timeline_tail = rebuilt, with each last request\'s model and provider')

  // a late request between bob's two: his first write is now read 3 minutes later; the late one's 5m write (mx on pa) wasted (27 minutes)
  await g.send([done(kb, start + 63 * MINUTE, 'mx', 0, 900, 0)])
  await check('after a late request', 2, 2)
  await equalToRebuilt('after a late request')

  await g.adminCall('DELETE', `/api/admin/api-keys/${kb.id}`)
  await check('after bob\'s key was deleted', 2, 2)
  await equalToRebuilt('after bob\'s key was deleted')

  await g.adminCall('DELETE', `/api/admin/providers/${providers[1]!.id}`)
  await check('after provider pb was deleted', 2, 2)
  t.ok((await answered()).byProvider.none !== undefined, 'pb\'s wasted writes are under no provider')
  // alice's last write (mx on the deleted pb) is now judged by her next request, not the clock
  await g.send([done(ka, now - MINUTE, 'my', 0, 0, 0)])
  await check('after a request judged the deleted provider\'s write', 2, 2)
  // a late request 3 minutes after alice's second (my on the deleted pb): that write, read from its usage row (provider gone), is now read in time
  await g.send([done(ka, start + 5 * MINUTE, 'mx', 0, 100, 0)])
  await check('after a late request re-judged the deleted provider\'s write', 2, 2)
  await equalToRebuilt('after the provider\'s deletion')
})
