// A batch's conversation with PostgreSQL: after the BEGIN, the receipts and one read
// (the rows it changes and everything its events and rows reference), then the writes.
// Each round trip is a wait on both sides; this keeps the reads at two.
import type pg from 'pg'
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'

t.test('a batch reads its rows and their references in one statement after the receipts; a completion is priced from its started row\'s provider key', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const provider = await g.provider('p')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 1.5 })
  const key = await g.standaloneKey()

  const statements: string[] = []
  const pool = g.app.ingestPg
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>
  const watched = new WeakSet<pg.PoolClient>()
  pool.connect = (async () => {
    const client = await connect()
    if (watched.has(client)) return client
    watched.add(client)
    const query = client.query.bind(client) as (...args: unknown[]) => unknown
    client.query = ((...args: unknown[]) => {
      const first = args[0] as string | { text: string }
      statements.push((typeof first === 'string' ? first : first.text).replace(/\s+/g, ' ').trim())
      return query(...args)
    }) as typeof client.query
    return client
  }) as typeof pool.connect

  t.same((await g.send([{
    type: 'start', request_id: 'rt-1', api_key_id: key.id, model: 'm', api_format: 'openai:chat', provider_api_key_id: providerKey.id
  }])).map((r) => r.outcome), ['recorded'])
  statements.length = 0
  // the completion names no provider: its provider key (rate 1.5) is the started row's, read with the row
  t.same((await g.send([{ type: 'complete', request_id: 'rt-1', status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 100 }])).map((r) => r.outcome), ['recorded'])

  const begin = statements.findIndex((s) => s.startsWith('BEGIN'))
  const upsert = statements.findIndex((s) => s.startsWith('INSERT INTO usage '))
  t.ok(begin >= 0 && upsert > begin, 'a BEGIN, then the usage upsert')
  const reads = statements.slice(begin + 1, upsert)
  t.equal(reads.length, 2, 'two statements between them')
  t.match(reads[0], /^INSERT INTO gateway_events /, 'the receipts')
  t.match(reads[1], /FROM \(usage_requests q JOIN usage u ON u.id = q.usage_id AND u.created_at = q.created_at\) LEFT JOIN price_snapshot_tiers pt .* WHERE q.request_id = ANY.*FOR UPDATE OF u.*FROM api_keys.*FROM provider_api_keys.*FROM model_prices/, 'the rows, locked, and their references')

  // 1000 × 3 + 100 × 15 USD per million tokens = 4,500,000 nano-USD; × 1.5 = 6,750,000
  const row = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'rt-1' } })
  t.equal(row.totalCost, 4_500_000n)
  t.equal(row.actualTotalCost, 6_750_000n, 'the provider key\'s rate multiplier, found through the row')
  t.equal(row.providerApiKeyId, providerKey.id)
  t.equal(row.providerId, provider.id, 'the provider of the row\'s provider key')
})
