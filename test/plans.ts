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
