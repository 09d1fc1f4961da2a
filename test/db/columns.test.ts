// Columns: rows sent as one array literal per column, shared columns as indexes into
// their distinct values; what PostgreSQL reads back is the rows as given.
import pg from 'pg'
import t, { type Test } from 'tap'
import { Columns } from '../../src/db/columns.js'
import { createDatabase } from '../helper.js'

interface Row { id: string, owner: string | null, label: string | null, n: number, amount: bigint }

const ROWS = new Columns<Row>([
  { name: 'id', type: 'uuid', value: (r) => r.id },
  { name: 'owner', type: 'uuid', value: (r) => r.owner, shared: true },
  { name: 'label', type: 'text', value: (r) => r.label, shared: true },
  { name: 'n', type: 'int', value: (r) => r.n },
  { name: 'amount', type: 'bigint', value: (r) => r.amount }
])

async function client (t: Test): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: await createDatabase(t, { migrated: false }) })
  await db.connect()
  t.teardown(() => db.end())
  return db
}

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`

t.test('shared columns: one value per distinct value, an index per row, nulls as NULL', async (t) => {
  const rows: Row[] = [
    { id: uuid(1), owner: uuid(100), label: 'plain', n: 1, amount: 9_007_199_254_740_993n },
    { id: uuid(2), owner: uuid(200), label: 'with "quotes", a comma and a \\ backslash', n: 2, amount: -5n },
    { id: uuid(3), owner: null, label: null, n: 3, amount: 0n },
    { id: uuid(4), owner: uuid(100), label: 'NULL', n: 4, amount: 7n },
    { id: uuid(5), owner: uuid(200), label: 'plain', n: 5, amount: 8n }
  ]
  const values = ROWS.values(rows)
  t.equal(ROWS.count, 7, 'five columns, two of them shared')
  t.equal(values.length, ROWS.count)
  t.same(values.slice(1, 3), ['{1,2,NULL,1,2}', '{1,2,NULL,3,1}'], 'each row carries its shared values\' indexes')
  t.equal(values[5], `{${uuid(100)},${uuid(200)}}`, 'each distinct owner sent once')
  t.equal(values[6], '{"plain","with \\"quotes\\", a comma and a \\\\ backslash","NULL"}', 'each distinct label once, quoted and escaped')

  const db = await client(t)
  const { rows: read } = await db.query(`SELECT id, owner, label, n, amount::text FROM ${ROWS.from('r')} ORDER BY n`, values)
  t.same(read, rows.map((r) => ({ ...r, amount: r.amount.toString() })), 'PostgreSQL reads the rows back as given')
})

t.test('shared columns after other parameters, and a batch whose shared column is all null', async (t) => {
  const rows: Row[] = [1, 2].map((n) => ({ id: uuid(n), owner: null, label: 'same', n, amount: BigInt(n) }))
  const db = await client(t)
  const { rows: read } = await db.query(`SELECT $1::text AS first, r.owner, r.label, r.n FROM ${ROWS.from('r', 2)} ORDER BY r.n`, ['before', ...ROWS.values(rows)])
  t.same(read, [{ first: 'before', owner: null, label: 'same', n: 1 }, { first: 'before', owner: null, label: 'same', n: 2 }])
})

t.test('without shared columns: a plain unnest', async (t) => {
  const plain = new Columns<{ a: string, b: number }>([
    { name: 'a', type: 'text', value: (r) => r.a },
    { name: 'b', type: 'int', value: (r) => r.b }
  ])
  t.equal(plain.from('x'), 'unnest($1::text[], $2::int[]) AS x(a, b)')
  t.equal(plain.count, 2)
  const db = await client(t)
  const { rows } = await db.query(`SELECT * FROM ${plain.from('x')}`, plain.values([{ a: 'one', b: 1 }]))
  t.same(rows, [{ a: 'one', b: 1 }])
})

t.test('timestamps as epoch milliseconds: sent as integers, read back as the same instants to the millisecond', async (t) => {
  interface Timed { n: number, at: Date | null }
  const TIMED = new Columns<Timed>([
    { name: 'n', type: 'int', value: (r) => r.n },
    { name: 'at', type: 'timestamptz', value: (r) => r.at?.getTime() ?? null, epochMs: true }
  ])
  const instants = ['2026-12-02T03:04:05.678Z', '1969-12-31T23:59:59.999Z', '1900-01-01T00:00:00.001Z', '9999-12-31T23:59:59.999Z', '2255-06-05T23:47:34.741Z']
  const rows: Timed[] = [...instants.map((at, n) => ({ n, at: new Date(at) })), { n: instants.length, at: null }]
  const values = TIMED.values(rows)
  t.equal(values[1], `{${instants.map((at) => Date.parse(at)).join(',')},NULL}`, 'integers, not ISO texts')
  t.match(TIMED.from('r'), /unnest\(\$1::int\[\], \$2::bigint\[\]\)/)
  const db = await client(t)
  // a timestamptz(3) column, as usage's: the instant is stored to the millisecond
  await db.query('CREATE TEMP TABLE timed (n int, at timestamptz(3))')
  await db.query(`INSERT INTO timed SELECT * FROM ${TIMED.from('r')}`, values)
  const { rows: read } = await db.query<{ n: number, at: Date | null, text: string | null }>(`SELECT n, at, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS text FROM timed ORDER BY n`)
  t.same(read.map((r) => r.text), [...instants, null], 'each instant to the millisecond, the null a null')
  t.throws(() => new Columns<Timed>([{ name: 'at', type: 'text', value: (r) => r.n, epochMs: true }]), /epochMs is for a timestamptz column/)
})
