// Bulk rows sent as one typed array per column, for
//   INSERT … SELECT … FROM unnest($1::uuid[], $2::int[], …) AS r(id, n, …)
// A JSON document of the same rows repeats every column name in every row: for a batch
// of 500 usage rows that is a megabyte PostgreSQL must parse into jsonb before reading
// a value. Array literals carry the values alone, and are built here directly (the
// driver's generic array encoder quotes and regex-escapes every element).
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

export class Columns<Row> {
  constructor (private readonly columns: Array<Column<Row>>) {}

  /** How many columns (and parameters `from` takes). */
  get count (): number {
    return this.columns.length
  }

  /** The column names, in order. */
  get list (): string[] {
    return this.columns.map((c) => c.name)
  }

  /** The column names, comma-separated, for an INSERT's column list. */
  get names (): string {
    return this.list.join(', ')
  }

  /** `unnest($first::type[], …) AS alias(name, …)`, the parameters numbered from `first`. */
  from (alias: string, first = 1): string {
    return `unnest(${this.columns.map((c, i) => `$${first + i}::${c.type}[]`).join(', ')}) AS ${alias}(${this.names})`
  }

  /** The parameters for `from`: one array literal per column. */
  values (rows: Row[]): string[] {
    return this.columns.map((c) => literal(rows, c.value, QUOTED.has(c.type)))
  }
}
