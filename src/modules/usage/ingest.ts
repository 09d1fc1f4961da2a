// Usage ingestion: a batch of gateway events (start, stream, complete) applied in one
// transaction. Set-based writes (one statement per table per batch) keep it fast;
// every row, rollup and charge of the batch commits together or not at all.
//
// The parts (ingest/): receipts (which events are new), lookups (the rows and references
// read), the machine (events + rows → new rows, charges, results; pure), writes. Rollups
// and charges are written as deltas between a row's state before and after the batch, so
// a completion that replaces a timed-out row (swept to failed/504) corrects it instead of
// counting twice.
import type pg from 'pg'
import { KEY_DELETION_LOCK, prepared, type Sql } from '../../db/prisma.js'
import { fireAlerts } from '../alerts/thresholds.js'
import { recordCacheData } from '../accounting/cache/timeline.js'
import { settleHolds } from '../accounting/holds.js'
import { RollupDeltas, writeTotals } from '../accounting/rollups.js'
import type { CountedUsage } from '../../http/metrics.js'
import type { EventResultBody, UsageEventBody } from './schemas.js'
import { countedUsage } from './ingest/counted.js'
import { claimReceipts, releaseReceipts, waitForCreators } from './ingest/receipts.js'
import { readRows, readRowsAndLookups } from './ingest/lookups.js'
import { applyEvents } from './ingest/machine.js'
import { CreatedMeanwhile, insertBodies, insertCandidates, upsertRows } from './ingest/writes.js'
import type { RowState } from './ingest/row.js'

export { BODY_CAP_BYTES } from './ingest/machine.js'

export interface IngestOptions {
  now?: Date
  /** the stale-request sweep: no receipts, so the real completion can still arrive and correct it */
  synthetic?: boolean
  /** called once the batch has committed, with what it newly counted (the metrics) */
  onCommitted?: (counted: CountedUsage[]) => void
  /** called once the batch has committed, with the keys and owners whose counters it may have moved (the verify cache forgets them) */
  onChanged?: (changed: ChangedOwners) => void
  /** APP_TIMEZONE: the day a key's daily cost limit alerts count (without it they are not evaluated) */
  timeZone?: string
}

// first, before any row lock: a key deletion waits for the batches in flight and holds back new
// ones; one simple-protocol round trip with the BEGIN (the constant is ours, never input)
const BEGIN_BATCH = `BEGIN; SELECT pg_advisory_xact_lock_shared(${KEY_DELETION_LOCK})`

/** The keys and the owners named by a batch's changed rows, before and after: every counter a batch moves is one of theirs. */
export interface ChangedOwners { keys: ReadonlySet<string>, users: ReadonlySet<string> }

export async function ingestEvents (pool: pg.Pool, events: UsageEventBody[], options: IngestOptions = {}): Promise<EventResultBody[]> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query(BEGIN_BATCH)
        const batch = await ingestBatch(prepared(client), events, options)
        await client.query('COMMIT')
        options.onCommitted?.(batch.counted)
        options.onChanged?.(batch.changed)
        return batch.results
      } catch (error) {
        // a failed ROLLBACK means the connection is gone: the first error is the one answered
        await client.query('ROLLBACK').catch((rollbackError: Error) => { broken = rollbackError })
        if (broken !== undefined) throw error
        // batches lock in one order, but PostgreSQL may still abort one, and a request
        // may have been created by another batch after this one read it: retry it whole
        const code = (error as { code?: string }).code
        if (attempt >= 4 || !(error instanceof CreatedMeanwhile || code === '40P01' || code === '40001')) throw error
      }
    }
  } finally {
    client.release(broken)
  }
}

async function ingestBatch (db: Sql, events: UsageEventBody[], options: IngestOptions): Promise<{ results: EventResultBody[], counted: CountedUsage[], changed: ChangedOwners }> {
  const now = options.now ?? new Date()
  const synthetic = options.synthetic === true
  // 1. receipts: the events not received before (a sweep's own have none)
  const fresh = synthetic ? events.map((_e, i) => i) : await claimReceipts(db, events)
  const results: EventResultBody[] = events.map((e) => ({ request_id: e.request_id, type: e.type, outcome: 'duplicate' }))
  if (fresh.length === 0) return { results, counted: [], changed: { keys: new Set(), users: new Set() } }
  const applied = fresh.map((i) => events[i]!)

  // 2. the rows these events touch, locked in request_id order. No lock can be taken on
  // a row that does not exist yet: a request another batch is creating meanwhile is
  // caught when this batch writes it (CreatedMeanwhile), except by a stream event, which
  // writes nothing without its row: those wait for such a batch first.
  const requestIds = [...new Set(applied.map((e) => e.request_id))].sort()
  const read = await readRowsAndLookups(db, requestIds, applied)
  const before = new Map(read.rows.map((row) => [row.requestId, row]))
  const created = new Set(applied.filter((e) => e.type !== 'stream').map((e) => e.request_id))
  const orphanStreams = [...new Set(applied.filter((e) => e.type === 'stream' && !before.has(e.request_id) && !created.has(e.request_id)).map((e) => e.request_id))].sort()
  // a stream changes no reference or price of its row: the lookups need not cover these rows
  if (orphanStreams.length > 0) {
    await waitForCreators(db, orphanStreams)
    for (const row of await readRows(db, orphanStreams)) before.set(row.requestId, row)
  }
  const lookups = read.lookups

  // 3. the events applied to the rows, in memory
  const out = applyEvents({ events: applied, rows: before, lookups, now, synthetic })
  fresh.forEach((index, j) => { results[index] = out.results[j]! })

  // 4. the rows, bodies and candidates; then the cache data, the rollups and the charges
  await upsertRows(db, out.rows, now)
  await insertBodies(db, out.bodies)
  const sent = await insertCandidates(db, out.candidates)
  // after the rows (so batches of one key write them in parallel), before the totals
  await recordCacheData(db, before, out.rows)
  const deltas = new RollupDeltas()
  deltas.sent(sent)
  for (const after of out.rows) deltas.change(before.get(after.requestId) ?? null, after)
  await releaseReceipts(db, out.rejected)
  // the admission holds of these requests: a finished one's is replaced by its charge, below, in this transaction
  await settleHolds(db, out.rows)
  // last, so the rows every batch contends for are locked only from here to the commit
  await writeTotals(db, deltas, out.charges, now)
  // the thresholds these charges reached, in their transaction: an alert is never lost nor written without its charge
  await fireAlerts(db, { keys: out.charges.keys.map((c) => c.id), users: out.charges.users.map((c) => c.id), providers: [...new Set(out.rows.flatMap((row) => row.providerId ?? []))] }, now, options.timeZone)
  return { results, counted: countedUsage(before, out.rows), changed: changedOwners(before, out.rows) }
}

/**
 * Whose counters a batch moved: the key and owner of each changed row, as it was and as it
 * is (a completion may name another key than its start did). Its settled holds are those
 * rows' requests'; a hold taken under another key than its row's counts for less once gone,
 * so a cached state that still counts it errs toward refusal.
 */
function changedOwners (before: ReadonlyMap<string, RowState>, rows: readonly RowState[]): ChangedOwners {
  const keys = new Set<string>()
  const users = new Set<string>()
  for (const row of rows) {
    for (const state of [before.get(row.requestId), row]) {
      if (state?.apiKeyId != null) keys.add(state.apiKeyId)
      if (state?.userId != null) users.add(state.userId)
    }
  }
  return { keys, users }
}
