// The usage upsert is made from one column list: its INSERT list, its unnest's columns
// and types, and its ON CONFLICT … SET list cannot disagree. No database.
import t from 'tap'
import { Columns } from '../../../src/db/columns.js'
import { UPSERT_USAGE } from '../../../src/modules/usage/ingest/writes.js'

interface Toy { id: string, key: string, owner: string, n: number }

t.test('Columns.upsert: every column in each list it belongs to, from the one definition', async (t) => {
  const toy = new Columns<Toy>([
    { name: 'id', type: 'uuid', value: (r) => r.id, keep: true },
    { name: 'key', type: 'text', value: (r) => r.key },
    { name: 'owner', type: 'uuid', value: (r) => r.owner, shared: true },
    { name: 'n', type: 'int', value: (r) => r.n }
  ])
  const statement = toy.upsert({ table: 'toys', target: 't', key: ['key'], batch: [{ name: 'updated_at', type: 'timestamptz' }], where: 't.id = EXCLUDED.id' })
  t.equal(statement.replace(/\s+/g, ' '),
    'INSERT INTO toys AS t (id, key, owner, n, updated_at) ' +
    'SELECT r.id, r.key, r.owner, r.n, $6::timestamptz ' +
    'FROM (SELECT r_.id, r_.key, ($5::uuid[])[r_.owner] AS owner, r_.n FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[]) AS r_(id, key, owner, n)) AS r ' +
    'ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, n = EXCLUDED.n, updated_at = EXCLUDED.updated_at ' +
    'WHERE t.id = EXCLUDED.id')
  t.same(toy.values([{ id: 'a', key: 'k', owner: 'o', n: 2 }]), ['{a}', '{"k"}', '{1}', '{2}', '{o}'],
    'the parameters: one per column, then the shared values (the batch values follow them)')
  const plain = new Columns<Toy>([{ name: 'key', type: 'text', value: (r) => r.key }, { name: 'n', type: 'int', value: (r) => r.n }])
  t.equal(plain.upsert({ table: 'toys', target: 't', key: ['key'] }).replace(/\s+/g, ' '),
    'INSERT INTO toys AS t (key, n) SELECT r.key, r.n FROM unnest($1::text[], $2::int[]) AS r(key, n) ON CONFLICT (key) DO UPDATE SET n = EXCLUDED.n')
})

t.test('the usage upsert: SET is the INSERT list but the key (id, created_at) and the request id; the unnest carries every inserted column', async (t) => {
  const text = UPSERT_USAGE.replace(/\s+/g, ' ')
  const inserted = /^INSERT INTO usage AS u \(([^)]*)\)/.exec(text)![1]!.split(', ')
  const set = /DO UPDATE SET (.*)$/.exec(text)![1]!.split(', ').map((pair) => {
    const [name, value] = pair.split(' = ')
    t.equal(value, `EXCLUDED.${name}`)
    return name
  })
  // the row's own key: a row keeps its id and time; its request id is never rewritten (usage_requests names it)
  const unnested = /\) AS r_\(([^)]*)\)\) AS r ON CONFLICT \(id, created_at\)/.exec(text)![1]!.split(', ')
  t.ok(inserted.length > 30, 'every column ingestion writes')
  t.same(set, inserted.filter((name) => !['id', 'created_at', 'request_id'].includes(name)), 'every inserted column is set on conflict, in the same order')
  t.same(inserted.filter((name) => !unnested.includes(name)), ['updated_at'], 'every inserted column comes from the unnest, but the batch clock')
  t.same(unnested.filter((name) => !inserted.includes(name)), [], 'and nothing else')
  t.notOk(inserted.includes('tiered_pricing'), 'no copy of the tier facts: the row references its price version (model_price_id)')
  t.same(inserted.filter((name) => /price_per|pricing_source|^actual_(?!total)/.test(name)), [], 'nor of the unit prices, the pricing source or the actual components: derived where read')
})
