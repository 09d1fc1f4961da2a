// Admission holds (docs/accounting.md, "Admission"): a request that verify admitted under a
// request_id and that is not settled yet. Its worst-case cost counts against every cost
// limit of its key and owner, and — until its usage row exists — it counts in the rate
// window and in flight. The batch that finishes the request deletes the hold in the same
// transaction as the charge, so any reader sees the hold or the charge, never both or neither.
import sql, { raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { isFinished } from './rules.js'

/** A live hold: not expired. An expired hold counts for nothing, before the sweep deletes it. */
export const liveHoldSql = (alias: string): Fragment => raw(`${alias}.expires_at > now()`)

/**
 * Settles the holds of a batch's changed rows (ingestion's transaction): a finished
 * request's hold is deleted (its charge, written by the same batch, replaces it); a
 * request whose row now exists but is still in flight keeps its hold, marked started, so
 * that the row alone counts it in the rate window and in flight. Served by admission_holds' primary key.
 */
export async function settleHolds (db: Sql, rows: ReadonlyArray<{ requestId: string, status: string }>): Promise<void> {
  if (rows.length === 0) return
  const finished: string[] = []
  const started: string[] = []
  for (const row of rows) (isFinished(row.status) ? finished : started).push(row.requestId)
  const query = sql`
    WITH settled AS (DELETE FROM admission_holds WHERE request_id = ANY(${finished}::text[]))
    UPDATE admission_holds SET started = true WHERE request_id = ANY(${started}::text[]) AND NOT started`
  await db.query(query.text, query.values)
}
