// Reading EXPLAIN plans in tests: how many usage rows a statement read, and which of a
// partitioned table's indexes served it.

export interface PlanNode { 'Relation Name'?: string, 'Actual Rows'?: number, 'Actual Loops'?: number, 'Rows Removed by Filter'?: number, 'Rows Removed by Index Recheck'?: number, Plans?: PlanNode[] }

/** usage itself or one of its monthly partitions (src/db/partitions.ts names them usage_p2026_12, usage_p2025_10_2026_12, usage_default) */
export const isUsage = (relation: string | undefined): boolean => relation !== undefined && /^usage(_p\d{4}_\d{2}(_\d{4}_\d{2})?|_default)?$/.test(relation)

/** Rows the plan read from usage (any of its partitions): returned plus filtered out, per loop. */
export function usageRowsRead (node: PlanNode): number {
  const own = isUsage(node['Relation Name'])
    ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * (node['Actual Loops'] ?? 0)
    : 0
  return own + (node.Plans ?? []).reduce((sum, child) => sum + usageRowsRead(child), 0)
}

/**
 * The indexes a plan names, each as its partitioned parent's name when it is a partition's
 * (PostgreSQL names a partition's copy after the partition: usage_p2027_01_user_id_…_idx).
 */
export async function parentIndexes (db: { query: (text: string, values: unknown[]) => Promise<{ rows: any[] }> }, names: string[]): Promise<string[]> {
  const { rows } = await db.query(`SELECT coalesce(p.relname, n.name) AS name FROM unnest($1::text[]) WITH ORDINALITY AS n(name, o)
    LEFT JOIN pg_class c ON c.relname = n.name AND c.relkind = 'i' LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
    ORDER BY n.o`, [names])
  return rows.map((r: { name: string }) => r.name)
}

type Queryable = { query: (text: string, values?: unknown[]) => Promise<{ rows: any[] }> }

/** usage's monthly partitions, those holding rows and the empty ones (a month ahead, the default): by size, not by name. */
export async function usagePartitions (db: Queryable): Promise<{ filled: string[], empty: string[] }> {
  const { rows } = await db.query(`SELECT c.relname AS name, pg_relation_size(c.oid) > 0 AS filled
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'usage'::regclass ORDER BY 1`)
  return { filled: rows.filter((r) => r.filled === true).map((r) => r.name as string), empty: rows.filter((r) => r.filled !== true).map((r) => r.name as string) }
}

/** A SELECT a service sent, with the settings its transaction set before it (set_config) and its result's columns. */
export interface SentStatement { text: string, values: unknown[], settings: string[], fields: string[] }

type Statement = string | { text: string, values?: unknown[] }

/**
 * `target`'s query, recording into `sent` every SELECT it runs, with the set_config
 * settings made since the last BEGIN on it (a pool's, or one connection's for its transaction).
 */
export function recordingQuery (target: { query: (statement: any, values?: unknown[]) => Promise<any> }, sent: SentStatement[]) {
  const query = target.query.bind(target)
  const settings: string[] = []
  return async (statement: Statement, values?: unknown[]) => {
    // the services send both plain text and query objects (sql-template-tag's)
    const [text, params] = typeof statement === 'string' ? [statement, values] : [statement.text, statement.values]
    const result = await query(statement, values)
    if (text === 'BEGIN') settings.length = 0
    else if (/set_config\(/.test(text)) settings.push(text)
    else if (/^\s*(SELECT|WITH)\b/i.test(text)) sent.push({ text, values: params ?? [], settings: [...settings], fields: (result.fields ?? []).map((f: { name: string }) => f.name) })
    return result
  }
}

/** The usage rows a sent statement reads, replayed under EXPLAIN ANALYZE with its settings (in a transaction rolled back). */
export async function usageRowsReplayed (client: Queryable, statement: SentStatement): Promise<number> {
  await client.query('BEGIN')
  try {
    for (const setting of statement.settings) await client.query(setting)
    const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.values)
    return usageRowsRead(rows[0]['QUERY PLAN'][0].Plan as PlanNode)
  } finally {
    await client.query('ROLLBACK')
  }
}
