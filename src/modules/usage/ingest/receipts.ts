// Idempotency receipts (gateway_events): each (request_id, event type) is received once;
// a replay is answered "duplicate" and changes nothing. Two batches carrying the same pair
// serialize on its primary key: the second waits for the first to commit, then finds it a
// duplicate. A rejected event's receipt is released, so it may be sent again, corrected.
import sql from 'sql-template-tag'
import { Columns } from '../../../db/columns.js'
import type { Sql } from '../../../db/prisma.js'
import type { UsageEventBody } from '../schemas.js'
import type { Receipt } from './row.js'

const RECEIPT_COLUMNS = new Columns<Receipt>([
  { name: 'request_id', type: 'text', value: (r) => r.request_id },
  { name: 'event_type', type: 'text', value: (r) => r.event_type }
])

const CLAIM = `
      INSERT INTO gateway_events (${RECEIPT_COLUMNS.names})
      SELECT * FROM ${RECEIPT_COLUMNS.from('r')}
      ON CONFLICT DO NOTHING
      RETURNING request_id, event_type`

const pairOf = (e: { request_id: string, type: string }) => `${e.request_id}\u0000${e.type}`

/** Inserts the events' receipts; returns the indexes of the events not received before (the first copy of a pair in the batch). */
export async function claimReceipts (db: Sql, events: UsageEventBody[]): Promise<number[]> {
  const pairs = [...new Map(events.map((e) => [pairOf(e), { request_id: e.request_id, event_type: e.type }])).values()]
    .sort((a, b) => a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : a.event_type < b.event_type ? -1 : 1)
  const inserted = await db.query<Receipt>(CLAIM, RECEIPT_COLUMNS.values(pairs))
  const isNew = new Set(inserted.rows.map((r) => pairOf({ request_id: r.request_id, type: r.event_type })))
  const fresh: number[] = []
  // the first copy in the batch is new, later copies are duplicates
  events.forEach((e, i) => { if (isNew.delete(pairOf(e))) fresh.push(i) })
  return fresh
}

/** Deletes the receipts of rejected events: a rejected event was not received. */
export async function releaseReceipts (db: Sql, receipts: Receipt[]): Promise<void> {
  if (receipts.length === 0) return
  const query = sql`
      DELETE FROM gateway_events g USING jsonb_to_recordset(${JSON.stringify(receipts)}::jsonb) AS r(request_id text, event_type text)
       WHERE g.request_id = r.request_id AND g.event_type = r.event_type`
  await db.query(query.text, query.values)
}

/**
 * Waits for any batch still creating these requests (a start or a completion received,
 * not yet committed). Inserting the creating events' receipts waits on such a batch's own
 * uncommitted receipts; the inserts are then undone.
 */
export async function waitForCreators (db: Sql, requestIds: string[]): Promise<void> {
  await db.query('SAVEPOINT wait_for_creators')
  const query = sql`
    INSERT INTO gateway_events (request_id, event_type)
    SELECT r, t FROM unnest(${requestIds}::text[]) AS r CROSS JOIN (VALUES ('complete'), ('start')) AS types(t) ORDER BY r, t
    ON CONFLICT DO NOTHING`
  await db.query(query.text, query.values)
  await db.query('ROLLBACK TO SAVEPOINT wait_for_creators')
}
