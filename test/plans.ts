// Reading EXPLAIN (ANALYZE, FORMAT JSON) plans in tests: how many usage rows a statement read.

export interface PlanNode { 'Relation Name'?: string, 'Actual Rows'?: number, 'Actual Loops'?: number, 'Rows Removed by Filter'?: number, 'Rows Removed by Index Recheck'?: number, Plans?: PlanNode[] }

/** Rows the plan read from usage: returned plus filtered out, per loop. */
export function usageRowsRead (node: PlanNode): number {
  const own = node['Relation Name'] === 'usage'
    ? ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * (node['Actual Loops'] ?? 0)
    : 0
  return own + (node.Plans ?? []).reduce((sum, child) => sum + usageRowsRead(child), 0)
}
