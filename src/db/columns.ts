// Bulk rows sent as one typed array per column, for
//   INSERT … SELECT … FROM unnest($1::uuid[], $2::int[], …) AS r(id, n, …)
// A JSON document of the same rows repeats every column name in every row: for a batch
// of 500 usage rows that is a megabyte PostgreSQL must parse into jsonb before reading
// a value. Array literals carry the values alone, and are built here directly (the
// driver's generic array encoder quotes and regex-escapes every element).
//
// A column most rows of a batch share a few values of (the ids of one key, provider and
// model price…) can be `shared`: each distinct value is sent once, in a parameter after
// the per-row ones, and each row carries its index into them. A uuid costs PostgreSQL
// about a microsecond to parse, a small integer a fraction of that: in a batch of 500
// usage rows the shared ids were a third of the bytes sent and of the time binding them.
//
// A timestamp column can be sent as epoch milliseconds (`epochMs`): an integer costs
// JavaScript and PostgreSQL far less to write and read than an ISO 8601 text.
//
// The statement text depends only on the column list, a constant of the module that
// declares it: no value is ever spliced into SQL.

/** PostgreSQL types whose text form may hold any character: quoted and escaped in the literal. */
const QUOTED = new Set(['text', 'jsonb'])

type Scalar = string | number | bigint | boolean | null

export interface Column<Row> {
  name: string
  /** a PostgreSQL type name (`uuid`, `int`, `bigint`, `text`, `jsonb`, an enum…) */
  type: string
  value: (row: Row) => Scalar
  /** sent once per distinct value, each row carrying its index (see above) */
  shared?: boolean
  /** inserted, but left as it is when the row exists (upsert; the conflict key always is) */
  keep?: boolean
  /** a `timestamptz` column whose value is epoch milliseconds (an integer), converted by PostgreSQL */
  epochMs?: boolean
}

/** An upsert of these columns into `table` (see Columns.upsert). */
export interface UpsertShape {
  table: string
  /** the existing row's alias, for `where` */
  target: string
  /** the conflict target's columns: inserted, never set */
  key: string[]
  /** values the whole batch shares (its clock), each one parameter after the columns' own, inserted and set as these columns */
  batch?: Array<{ name: string, type: string }>
  /** the condition on `target` and EXCLUDED under which the existing row is updated */
  where?: string
}

const SPECIAL = /["\\]/

/** One column's values as an array literal, built in one pass. */
function literal<Row> (rows: Row[], value: Column<Row>['value'], quoted: boolean): string {
  let out = '{'
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) out += ','
    const v = value(rows[i]!)
    if (v === null) out += 'NULL'
    else if (!quoted) out += `${v}`
    else {
      const text = `${v}`
      out += SPECIAL.test(text) ? `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : `"${text}"`
    }
  }
  return `${out}}`
}

const itself = (v: Scalar) => v

/**
 * A shared column: each row's index (from 1) into the column's distinct values, NULL
 * for a null, and those values, both as array literals.
 */
function sharedLiterals<Row> (rows: Row[], value: Column<Row>['value'], quoted: boolean): { indexes: string, values: string } {
  const index = new Map<string, number>()
  const distinct: Scalar[] = []
  let indexes = '{'
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) indexes += ','
    const v = value(rows[i]!)
    if (v === null) {
      indexes += 'NULL'
      continue
    }
    const key = `${v}`
    let at = index.get(key)
    if (at === undefined) {
      at = distinct.push(v)
      index.set(key, at)
    }
    indexes += at
  }
  return { indexes: `${indexes}}`, values: literal(distinct, itself, quoted) }
}

/** The type a column's values are sent as: an index for a shared column, an integer for epoch milliseconds. */
const sentType = <Row>(c: Column<Row>) => c.shared === true ? 'int' : c.epochMs === true ? 'bigint' : c.type

export class Columns<Row> {
  private readonly shared: Array<Column<Row>>
  /** whether `from` needs a subquery: a shared column to look up, or a timestamp to convert */
  private readonly converted: boolean

  constructor (private readonly columns: Array<Column<Row>>) {
    for (const c of columns) {
      if (c.epochMs === true && (c.type !== 'timestamptz' || c.shared === true)) throw new Error(`column ${c.name}: epochMs is for a timestamptz column not shared`)
    }
    this.shared = columns.filter((c) => c.shared === true)
    this.converted = columns.some((c) => c.shared === true || c.epochMs === true)
  }

  /** How many parameters `from` takes: one per column, and one more per shared column. */
  get count (): number {
    return this.columns.length + this.shared.length
  }

  /** The column names, in order. */
  get list (): string[] {
    return this.columns.map((c) => c.name)
  }

  /** The column names, comma-separated, for an INSERT's column list. */
  get names (): string {
    return this.list.join(', ')
  }

  /**
   * `unnest($first::type[], …) AS alias(name, …)`, the parameters numbered from `first`;
   * with shared columns, a subquery of the same name and columns that looks each shared
   * value up by its index (the parameters after the per-row ones).
   */
  from (alias: string, first = 1): string {
    const rows = `unnest(${this.columns.map((c, i) => `$${first + i}::${sentType(c)}[]`).join(', ')})`
    if (!this.converted) return `${rows} AS ${alias}(${this.names})`
    let next = first + this.columns.length
    const select = this.columns.map((c) => {
      const value = `${alias}_.${c.name}`
      if (c.shared === true) return `($${next++}::${c.type}[])[${value}] AS ${c.name}`
      // a double product, off by under half a millisecond before year 100,000: the timestamptz(3) column rounds it back
      if (c.epochMs === true) return `timestamptz 'epoch' + ${value} * interval '1 millisecond' AS ${c.name}`
      return value
    })
    return `(SELECT ${select.join(', ')} FROM ${rows} AS ${alias}_(${this.names})) AS ${alias}`
  }

  /**
   * `INSERT INTO table (…) SELECT … FROM unnest(…) ON CONFLICT (key) DO UPDATE SET …`, its three
   * lists made from these columns alone, so that none can miss a column the others have: every
   * column is inserted, and set on conflict unless it is `keep` or in the key.
   * Its parameters: `values(rows)`, then the `batch` values in their order.
   */
  upsert ({ table, target, key, batch = [], where }: UpsertShape): string {
    const alias = 'r'
    const inserted = [...this.columns.map((c) => c.name), ...batch.map((b) => b.name)]
    const selected = [
      ...this.columns.map((c) => `${alias}.${c.name}`),
      ...batch.map((b, i) => `$${this.count + 1 + i}::${b.type}`)
    ]
    const set = [...this.columns.filter((c) => c.keep !== true).map((c) => c.name), ...batch.map((b) => b.name)].filter((name) => !key.includes(name))
    const condition = where === undefined ? '' : `\n    WHERE ${where}`
    return `INSERT INTO ${table} AS ${target} (${inserted.join(', ')})
    SELECT ${selected.join(', ')}
      FROM ${this.from(alias)}
    ON CONFLICT (${key.join(', ')}) DO UPDATE SET
      ${set.map((name) => `${name} = EXCLUDED.${name}`).join(', ')}${condition}`
  }

  /** The parameters for `from`: one array literal per column, then each shared column's values. */
  values (rows: Row[]): string[] {
    const values: string[] = []
    const dictionaries: string[] = []
    for (const c of this.columns) {
      const quoted = QUOTED.has(c.type)
      if (c.shared !== true) {
        values.push(literal(rows, c.value, quoted))
        continue
      }
      const shared = sharedLiterals(rows, c.value, quoted)
      values.push(shared.indexes)
      dictionaries.push(shared.values)
    }
    return [...values, ...dictionaries]
  }
}
