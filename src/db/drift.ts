// Schema drift: compares the live PostgreSQL schema `public` with prisma/schema.prisma (read
// through Prisma's own DMMF) and EXTRA_INDEXES, so a test can prove the migrations build
// exactly the modelled database. A partitioned table is its parent; its partitions are
// storage, and MONTHLY_TABLES (partitions.ts) says which tables must be partitioned.
import { readFile } from 'node:fs/promises'
import internals from '@prisma/internals'
import { MONTHLY_TABLES } from './partitions.js'

/** What drift needs from the database; a node-postgres Client or Pool fits. */
export interface DriftQuery { query<T = any>(sql: string, params?: unknown[]): Promise<{ rows: T[] }> }

type Datamodel = Awaited<ReturnType<typeof internals.getDMMF>>['datamodel']
type Model = Datamodel['models'][number]
type Field = Model['fields'][number]

// PostgreSQL types as format_type() spells them. Prisma's choice for a scalar without @db.*:
const DEFAULT_TYPE: Record<string, string> = {
  String: 'text', Int: 'integer', BigInt: 'bigint', Float: 'double precision', Decimal: 'numeric(65,30)',
  Boolean: 'boolean', DateTime: 'timestamp(3) without time zone', Json: 'jsonb', Bytes: 'bytea'
}
// ...and for each native type attribute, where "(%)" receives the attribute's arguments.
const NATIVE_TYPE: Record<string, string> = {
  Text: 'text', Uuid: 'uuid', VarChar: 'character varying(%)', Char: 'character(%)', Citext: 'citext', Inet: 'inet',
  Xml: 'xml', SmallInt: 'smallint', Integer: 'integer', BigInt: 'bigint', Oid: 'oid', Real: 'real',
  DoublePrecision: 'double precision', Decimal: 'numeric(%)', Money: 'money', Boolean: 'boolean', Bit: 'bit(%)',
  VarBit: 'bit varying(%)', ByteA: 'bytea', Json: 'json', JsonB: 'jsonb', Date: 'date',
  Time: 'time(%) without time zone', Timetz: 'time(%) with time zone',
  Timestamp: 'timestamp(%) without time zone', Timestamptz: 'timestamp(%) with time zone'
}
const INDEX_KIND: Record<string, string> = { id: 'primary key', unique: 'unique index', normal: 'index' }
const ON_DELETE: Record<string, string> = {
  Cascade: 'CASCADE', SetNull: 'SET NULL', Restrict: 'RESTRICT', NoAction: 'NO ACTION', SetDefault: 'SET DEFAULT'
}

// partitions (src/db/partitions.ts) are the parent's storage, not tables of the model: their columns, indexes and keys are the parent's
const TABLE_FILTER = `n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> '_prisma_migrations'`
// Column names of relation `rel` for the attribute numbers `nums`, in their order.
const attnames = (rel: string, nums: string) => `array(SELECT a.attname::text FROM unnest(${nums}) WITH ORDINALITY u(num, ord)
  JOIN pg_attribute a ON a.attrelid = ${rel} AND a.attnum = u.num ORDER BY u.ord)`

const TABLES_SQL = `SELECT c.relname AS table FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE ${TABLE_FILTER}`
// Enum types by bare name (format_type would schema-qualify them off the search_path).
const COLUMNS_SQL = `SELECT c.relname AS table, a.attname AS column, NOT a.attnotnull AS nullable,
    CASE WHEN coalesce(el.typtype, t.typtype) = 'e' THEN coalesce(el.typname || '[]', t.typname)
      ELSE format_type(a.atttypid, a.atttypmod) END AS type
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type el ON el.oid = t.typelem AND t.typcategory = 'A'
  WHERE ${TABLE_FILTER}`
// key columns, then the INCLUDE ones apart (indkey lists both; the first indnkeyatts are the key)
const INDEXES_SQL = `SELECT c.relname AS table, i.relname AS name, ${attnames('c.oid', '(x.indkey::int2[])[0:x.indnkeyatts - 1]')} AS columns,
    ${attnames('c.oid', '(x.indkey::int2[])[x.indnkeyatts:]')} AS include,
    CASE WHEN x.indisprimary THEN 'primary key' WHEN x.indisunique THEN 'unique index' ELSE 'index' END AS kind,
    pg_get_expr(x.indpred, x.indrelid) AS predicate
  FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class i ON i.oid = x.indexrelid
  WHERE ${TABLE_FILTER}`
const FOREIGN_KEYS_SQL = `SELECT c.relname AS table, f.relname AS ref_table,
    ${attnames('k.conrelid', 'k.conkey')} AS columns, ${attnames('k.confrelid', 'k.confkey')} AS ref_columns,
    CASE k.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
      WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END AS on_delete
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class f ON f.oid = k.confrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  -- a key referencing a partitioned table is cloned for each of its partitions (conparentid): only the parent's is the model's
  WHERE k.contype = 'f' AND k.conparentid = 0 AND ${TABLE_FILTER}`
// how each partitioned parent is partitioned, and whether it has a default partition
const PARTITIONED_SQL = `SELECT c.relname AS table,
    CASE p.partstrat WHEN 'r' THEN 'range' WHEN 'l' THEN 'list' ELSE 'hash' END AS strategy,
    ${attnames('c.oid', 'p.partattrs::int2[]')} AS columns, p.partdefid <> 0 AS has_default
  FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE ${TABLE_FILTER}`
const ENUMS_SQL = `SELECT t.typname AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS values
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
  WHERE n.nspname = 'public' GROUP BY t.typname`

interface ColumnRow { table: string, column: string, nullable: boolean, type: string }
interface IndexRow { table: string, name: string, columns: string[], include: string[], kind: string, predicate: string | null }

/** An index the migrations create that schema.prisma cannot express (a partial or covering one, or one only SQL in triggers needs). */
export interface ExtraIndex {
  name: string
  table: string
  columns: string[]
  /** columns carried by the index beside its key (INCLUDE), for index-only scans */
  include?: string[]
  unique?: boolean
  /** as pg_get_expr prints it, without the outer parentheses */
  predicate: string | null
}

/** The indexes beyond schema.prisma, each made by a migration; the drift test holds the database to this list. */
export const EXTRA_INDEXES: readonly ExtraIndex[] = [
  // usage_clear_reference('provider_endpoint_id'), the trigger run when an endpoint (or its provider) is deleted
  { name: 'usage_provider_endpoint_id_idx', table: 'usage', columns: ['provider_endpoint_id'], predicate: 'provider_endpoint_id IS NOT NULL' },
  // usage_clear_reference('provider_api_key_id'), the trigger run when a provider key (or its provider) is deleted
  { name: 'usage_provider_api_key_id_idx', table: 'usage', columns: ['provider_api_key_id'], predicate: 'provider_api_key_id IS NOT NULL' },
  // providers/service.ts forgetProviderInUserRanking: a deleted provider's part of the user rollups
  { name: 'usage_hourly_provider_id_idx', table: 'usage_hourly', columns: ['provider_id'], predicate: null },
  // analytics/errors.ts failuresOf: one user's failed rows (a few percent of all) for their own errors distribution
  { name: 'usage_failed_user_idx', table: 'usage', columns: ['user_id', 'created_at'], include: ['provider_id', 'status_code'], predicate: "status = 'failed'::usage_status" },
  // the in-flight rows only (accounting/rules.ts IN_FLIGHT_STATUSES), by key and time: the in-flight counter, the stale sweep, the active list
  { name: 'usage_in_flight_key_idx', table: 'usage', columns: ['api_key_id', 'created_at'], predicate: "status = ANY (ARRAY['pending'::usage_status, 'streaming'::usage_status])" },
  // accounting/read/cache.ts scanFirstPoints: the interval timeline's window in time order from the index alone (no heap, no sort)
  { name: 'cache_timeline_points_created_at_request_id_idx', table: 'cache_timeline_points', columns: ['created_at', 'request_id'], include: ['user_id', 'model', 'gap_ms'], predicate: null }
]

// "index name (a, b) include (c) where p": the name, covered columns and predicate are part of what an extra index must match
const extraIndexLine = (kind: string, name: string, columns: string[], include: string[], predicate: string | null) =>
  `${kind} ${name} (${columns.join(', ')})${include.length === 0 ? '' : ` include (${include.join(', ')})`}${predicate === null ? '' : ` where ${predicate}`}`

// pg_get_expr wraps a predicate in one pair of parentheses
const unwrap = (predicate: string | null) => predicate !== null && /^\(.*\)$/.test(predicate) ? predicate.slice(1, -1) : predicate
interface PartitionedRow { table: string, strategy: string, columns: string[], has_default: boolean }
interface ForeignKeyRow { table: string, ref_table: string, columns: string[], ref_columns: string[], on_delete: string }

/** Differences between the database and the Prisma schema at `schemaPath`, one line each; [] when they agree. */
export async function schemaDrift (db: DriftQuery, schemaPath: string): Promise<string[]> {
  const { datamodel } = await internals.getDMMF({ datamodel: await readFile(schemaPath, 'utf8') })
  // One query at a time: node-postgres deprecates overlapping queries on a single Client.
  const tables = await db.query<{ table: string }>(TABLES_SQL)
  const columns = await db.query<ColumnRow>(COLUMNS_SQL)
  const indexes = await db.query<IndexRow>(INDEXES_SQL)
  const foreignKeys = await db.query<ForeignKeyRow>(FOREIGN_KEYS_SQL)
  const enums = await db.query<{ name: string, values: string[] }>(ENUMS_SQL)
  const partitioned = await db.query<PartitionedRow>(PARTITIONED_SQL)
  const models = new Map(datamodel.models.map(m => [m.name, m]))
  const enumNames = new Map(datamodel.enums.map(e => [e.name, e.dbName ?? e.name]))
  const out: string[] = []

  out.push(...compare('', datamodel.enums.map(e => `enum ${e.dbName ?? e.name}`), enums.rows.map(r => `enum ${r.name}`)))
  for (const e of datamodel.enums) {
    const want = e.values.map(v => v.dbName ?? v.name).join(', ')
    const got = enums.rows.find(r => r.name === (e.dbName ?? e.name))?.values.join(', ')
    if (got !== undefined && got !== want) out.push(`enum ${e.dbName ?? e.name}: values (${got}), expected (${want})`)
  }

  out.push(...compare('', datamodel.models.map(m => `table ${tableName(m)}`), tables.rows.map(r => `table ${r.table}`)))
  for (const model of datamodel.models) {
    const table = tableName(model)
    if (!tables.rows.some(r => r.table === table)) continue // already reported missing
    const at = `table ${table}: `
    const cols = (m: Model, names: readonly string[]) => names.map(n => columnName(m, n)).join(', ')

    const scalars = model.fields.filter(f => f.kind === 'scalar' || f.kind === 'enum')
    const dbColumns = columns.rows.filter(r => r.table === table)
    out.push(...compare(at, scalars.map(f => `column "${f.dbName ?? f.name}"`), dbColumns.map(r => `column "${r.column}"`)))
    for (const field of scalars) {
      const column = dbColumns.find(r => r.column === (field.dbName ?? field.name))
      if (!column) continue
      const type = columnType(field, enumNames)
      if (column.type !== type) out.push(`${at}column "${column.column}" is ${column.type}, expected ${type}`)
      // Prisma creates scalar lists without NOT NULL, so only plain columns are checked.
      if (!field.isList && column.nullable === field.isRequired) {
        out.push(`${at}column "${column.column}" is ${column.nullable ? 'nullable' : 'NOT NULL'}, expected ${field.isRequired ? 'NOT NULL' : 'nullable'}`)
      }
    }

    const extras = EXTRA_INDEXES.filter(i => i.table === table)
    out.push(...compare(at,
      [...datamodel.indexes.filter(i => i.model === model.name)
        .map(i => `${INDEX_KIND[i.type] ?? i.type} (${cols(model, i.fields.map(f => f.name))})`),
      ...extras.map(i => extraIndexLine(i.unique === true ? 'unique index' : 'index', i.name, i.columns, i.include ?? [], i.predicate))],
      indexes.rows.filter(r => r.table === table).map(r => extras.some(i => i.name === r.name) || r.predicate !== null || r.include.length > 0
        ? extraIndexLine(r.kind, r.name, r.columns, r.include, unwrap(r.predicate))
        : `${r.kind} (${r.columns.join(', ')})`)))

    // a table MONTHLY_TABLES names is partitioned by range on its column, with a default partition; no other table is partitioned
    const monthly = MONTHLY_TABLES.find(m => m.table === table)
    out.push(...compare(at,
      monthly === undefined ? [] : [`partitioned by range (${monthly.column})`, 'default partition'],
      partitioned.rows.filter(r => r.table === table).flatMap(r =>
        [`partitioned by ${r.strategy} (${r.columns.join(', ')})`, ...(r.has_default ? ['default partition'] : [])])))

    out.push(...compare(at,
      model.fields.filter(f => f.relationFromFields?.length).map(f => {
        const target = models.get(f.type)!
        // Without onDelete, Prisma uses SET NULL for optional relations and RESTRICT for required ones.
        const onDelete = ON_DELETE[f.relationOnDelete ?? (f.isRequired ? 'Restrict' : 'SetNull')]
        return `foreign key (${cols(model, f.relationFromFields!)}) references ${tableName(target)} (${cols(target, f.relationToFields ?? [])}) on delete ${onDelete}`
      }),
      foreignKeys.rows.filter(r => r.table === table).map(r =>
        `foreign key (${r.columns.join(', ')}) references ${r.ref_table} (${r.ref_columns.join(', ')}) on delete ${r.on_delete}`)))
  }
  return out
}

const tableName = (model: Model) => model.dbName ?? model.name

function columnName (model: Model, fieldName: string): string {
  const field = model.fields.find(f => f.name === fieldName)
  return field?.dbName ?? fieldName
}

// The PostgreSQL type Prisma's migrations give `field`, spelled as format_type() does.
function columnType (field: Field, enumNames: Map<string, string>): string {
  let type = DEFAULT_TYPE[field.type] ?? field.type
  if (field.kind === 'enum') type = enumNames.get(field.type)!
  else if (field.nativeType) {
    const [name, args] = field.nativeType
    const template = NATIVE_TYPE[name]
    if (!template) throw new Error(`schemaDrift: no PostgreSQL type known for @db.${name}`)
    type = template.replace('(%)', args.length ? `(${args.join(',')})` : '')
  }
  return field.isList ? `${type}[]` : type
}

// "<prefix><item> missing" for each expected item absent from actual, "<prefix><item> not in schema" for the rest.
function compare (prefix: string, expected: string[], actual: string[]): string[] {
  const unmatched = [...actual]
  const missing = expected.filter(item => {
    const i = unmatched.indexOf(item)
    if (i >= 0) unmatched.splice(i, 1)
    return i < 0
  })
  return [...missing.map(item => `${prefix}${item} missing`), ...unmatched.map(item => `${prefix}${item} not in schema`)]
}
