// The packed hourly histogram (src/modules/cache/packed.ts): Node's and SQL's codecs
// agree, and ingestion's merge of signed deltas into an existing hour's row leaves the
// rebuild's canonical bytes — an emptied bin dropped, a bin whose count nets to zero
// in a batch still moving its sum; and the migration carries a database's old per-bin
// rows over.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { schemaDrift } from '../../../src/db/drift.js'
import { applyMigrations, MIGRATIONS_DIR } from '../../../src/db/migrate.js'
import { binOf, EDGES, FIRST_BIN } from '../../../src/modules/accounting/cache/bins.js'
import { BinSums, pack, packBins, sqlEntries, sqlEntry, type BinEntry } from '../../../src/modules/accounting/cache/packed.js'
import { createDatabase } from '../../helper.js'
import { assertConsistent, gateway, type Gateway } from '../gateway/fixtures.js'

const MIN = 60_000
const HOUR = 60 * MIN

t.test('codec: Node packs what SQL packs and reads back what SQL decodes, signs and 64-bit sums included', async (t) => {
  const g = await gateway(t)
  const entries: BinEntry[] = [
    { bin: 7, count: 3, sumMs: 9_000 }, { bin: FIRST_BIN, count: 2, sumMs: 0 }, { bin: EDGES.length, count: 1, sumMs: 400 * 86_400_000 * 3 },
    { bin: 12, count: -1, sumMs: -70_000 }, { bin: 500, count: 0, sumMs: -5 }
  ]
  const packed = pack(entries)
  const sorted = [...entries].sort((a, b) => a.bin - b.bin)
  const { rows: [fromSql] } = await g.app.pg.query<{ bins: Buffer }>(
    `SELECT string_agg(${sqlEntry('bin', 'count', 'sum_ms')}, ''::bytea ORDER BY bin) AS bins
       FROM unnest($1::int[], $2::int[], $3::bigint[]) AS x(bin, count, sum_ms)`,
    [sorted.map((e) => e.bin), sorted.map((e) => e.count), sorted.map((e) => e.sumMs)])
  t.equal(packed.toString('hex'), fromSql!.bins.toString('hex'), 'the same bytes, sorted by bin')
  const { rows } = await g.app.pg.query<{ bin: number, count: number, sum_ms: string }>(`SELECT e.bin, e.count, e.sum_ms FROM ${sqlEntries('$1::bytea', 'e')}`, [packed])
  t.same(rows.map((r) => ({ bin: r.bin, count: r.count, sumMs: Number(r.sum_ms) })), sorted, 'SQL decodes every entry, negative ones too')
  const sums = new BinSums()
  sums.add(packed)
  sums.add(pack([{ bin: 7, count: 1, sumMs: 2_000 }, { bin: 12, count: 1, sumMs: 70_000 }]))
  t.same(entriesOf(sums), [
    { bin: FIRST_BIN, count: 2, sumMs: 0 }, { bin: 7, count: 4, sumMs: 11_000 }, { bin: EDGES.length, count: 1, sumMs: 400 * 86_400_000 * 3 }
  ], 'Node sums the same bin across rows; a bin that nets to zero is left out')
  sums.add(pack([{ bin: 3, count: 1, sumMs: 5 }]))
  t.same(entriesOf(sums), [{ bin: 3, count: 1, sumMs: 5 }], 'taking the bins starts the next group from zero')
  // summed bins packed again (the kept settled days) are the bytes pack writes for the same entries, 64-bit sums and signs included
  sums.add(packed)
  t.equal(packBins(sums.take()).toString('hex'), pack(sorted.filter((e) => e.count !== 0)).toString('hex'), 'packBins writes what pack writes')
  sums.add(pack([{ bin: 900, count: 1, sumMs: 1 }]))
  sums.add(pack([{ bin: FIRST_BIN, count: 1, sumMs: 0 }]))
  t.same(entriesOf(sums), [{ bin: FIRST_BIN, count: 1, sumMs: 0 }, { bin: 900, count: 1, sumMs: 1 }], 'after a take, both ends of the bins are summed again')
  t.same(entriesOf(sums), [], 'and cleared by the next take')
})

/** What a BinSums holds, as entries (and emptied). */
function entriesOf (sums: BinSums): BinEntry[] {
  const { bins, counts, sums: ms } = sums.take()
  return [...bins].map((bin, i) => ({ bin, count: counts[i]!, sumMs: ms[i]! }))
}

/** The stored rows of one key, decoded. */
async function keyRows (g: Gateway, keyId: string) {
  const { rows } = await g.app.pg.query<{ bucket: Date, bins: Buffer }>(
    `SELECT bucket, bins FROM cache_interval_hourly WHERE scope = 'api_key' AND scope_id = $1 ORDER BY bucket`, [keyId])
  return rows.map((r) => {
    const sums = new BinSums()
    sums.add(r.bins)
    return { hour: r.bucket.getTime(), entries: entriesOf(sums), bytes: r.bins.length }
  })
}

t.test('merge: a late request in an hour that has a row, emptying a bin and moving a sum with no count', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const event = (name: string, at: number) => ({
    type: 'complete', request_id: `${key.id}-${name}`, api_key_id: key.id, model: 'm1', created_at: new Date(at).toISOString(),
    status: 'completed', input_tokens: 10, output_tokens: 1
  })
  const h = Math.floor(Date.now() / HOUR) * HOUR - 10 * HOUR
  // hour h: a, then c 30 minutes later; hour h + 1: d, e a bin edge after c (e's gap sits at the top of its bin)
  const edge = EDGES.find((e) => e > 100 * MIN)!
  const [a, c, d] = [h + 5 * MIN, h + 35 * MIN, h + HOUR + 40 * MIN]
  const e = d + edge
  await g.send([event('a', a), event('c', c), event('d', d)])
  await g.send([event('e', e)])
  t.same((await keyRows(g, key.id)).map((r) => r.entries), [
    [{ bin: FIRST_BIN, count: 1, sumMs: 0 }, { bin: binOf(30 * MIN), count: 1, sumMs: 30 * MIN }],
    [{ bin: binOf(d - c), count: 1, sumMs: d - c }],
    [{ bin: binOf(edge), count: 1, sumMs: edge }]
  ], 'before: one row per hour')

  // b lands between a and c in hour h: c's 30-minute gap leaves its bin (now empty), 10 and 20 minutes come in;
  // f lands one second after d: e's gap drops by a second within the same bin (count −1 +1, sum −1 s)
  t.equal(binOf(edge - 1000), binOf(edge), 'e keeps its bin')
  const [b, f] = [a + 10 * MIN, d + 1000]
  await g.send([event('b', b), event('f', f)])
  const after = await keyRows(g, key.id)
  t.same(after.map((r) => r.hour), [h, h + HOUR, Math.floor(e / HOUR) * HOUR], 'no new row for an hour that had one')
  t.same(after[0]!.entries, [
    { bin: FIRST_BIN, count: 1, sumMs: 0 }, { bin: binOf(10 * MIN), count: 1, sumMs: 10 * MIN }, { bin: binOf(20 * MIN), count: 1, sumMs: 20 * MIN }
  ], 'hour h: the emptied 30-minute bin is gone')
  t.equal(after[0]!.bytes, 3 * 14, 'and takes no bytes')
  t.same(after[1]!.entries, [{ bin: 0, count: 1, sumMs: 1000 }, { bin: binOf(d - c), count: 1, sumMs: d - c }].sort((p, q) => p.bin - q.bin), 'hour h + 1: f added')
  t.same(after.at(-1)!.entries, [{ bin: binOf(edge), count: 1, sumMs: edge - 1000 }], "e's hour: the same bin, its sum a second less")
  await assertConsistent(t, g.app)

  const res = await g.adminCall('GET', `/api/admin/usage/cache-affinity/ttl-analysis?api_key_id=${key.id}`)
  t.equal(res.users[0].request_count, 6)
  t.same(res.users[0].interval_distribution, { within_5min: 1, within_15min: 1, within_30min: 1, within_60min: 0, over_60min: 2 })
})

const PACKED_MIGRATION = '20261122070000_cache_interval_packed'

t.test(`migration ${PACKED_MIGRATION}: the per-bin rows a database holds become packed rows, zero rows left out`, async (t) => {
  const url = await createDatabase(t, { migrated: false })
  /** A folder holding the migrations whose names pass `keep`. */
  const migrationsWhere = async (keep: (name: string) => boolean) => {
    const dir = await mkdtemp(join(tmpdir(), 'keymeter-migrations-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    for (const name of await readdir(MIGRATIONS_DIR)) if (keep(name)) await cp(join(MIGRATIONS_DIR, name), join(dir, name), { recursive: true })
    return dir
  }
  await applyMigrations(url, { dir: await migrationsWhere((name) => name < PACKED_MIGRATION) })
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(() => client.end())
  const [u, k] = ['00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b']
  const [h1, h2] = ['2026-11-01T10:00:00Z', '2026-11-01T11:00:00Z']
  const big = 3 * 2 ** 40 // a sum past 32 bits
  // the old shape, as ingestion left it: rows in any order, and bins a late request emptied kept with zeros
  await client.query(`INSERT INTO cache_interval_hourly (scope, scope_id, bucket, bin_index, count, sum_ms) VALUES
    ('user', $1, $3, 40, 3, 3000), ('user', $1, $3, -1, 1, 0), ('user', $1, $3, 7, 2, 1000), ('user', $1, $3, 12, 0, 0),
    ('user', $1, $4, ${EDGES.length}, 1, ${big}), ('api_key', $2, $3, 7, 2, 1000), ('api_key', $2, $4, 12, 0, 0)`, [u, k, h1, h2])
  t.same(await applyMigrations(url, { dir: await migrationsWhere((name) => name <= PACKED_MIGRATION) }), [PACKED_MIGRATION], 'the packing migration applied')
  const { rows } = await client.query<{ scope: string, scope_id: string, bucket: Date, bins: Buffer }>(
    'SELECT scope, scope_id, bucket, bins FROM cache_interval_hourly ORDER BY scope, scope_id, bucket')
  t.same(rows.map((r) => ({ ...r, bucket: r.bucket.toISOString(), bins: r.bins.toString('hex') })), [
    { scope: 'api_key', scope_id: k, bucket: '2026-11-01T10:00:00.000Z', bins: pack([{ bin: 7, count: 2, sumMs: 1000 }]).toString('hex') },
    {
      scope: 'user', scope_id: u, bucket: '2026-11-01T10:00:00.000Z',
      bins: pack([{ bin: FIRST_BIN, count: 1, sumMs: 0 }, { bin: 7, count: 2, sumMs: 1000 }, { bin: 40, count: 3, sumMs: 3000 }]).toString('hex')
    },
    { scope: 'user', scope_id: u, bucket: '2026-11-01T11:00:00.000Z', bins: pack([{ bin: EDGES.length, count: 1, sumMs: big }]).toString('hex') }
  ], 'one row per (scope, id, hour), bins sorted, emptied bins and all-empty hours gone')
  await applyMigrations(url) // any later ones
  t.same(await schemaDrift(client, 'prisma/schema.prisma'), [], 'the schema Prisma models, keys and index included')
})
