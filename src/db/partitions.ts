// Tables range-partitioned by month on a timestamptz column (docs/scaling.md, Time
// partitioning): which they are, how their monthly partitions are created ahead, and how
// retention drops whole old partitions. Months are UTC months. Each parent has a DEFAULT
// partition, so a row whose month has no partition yet is stored there, never refused;
// creating that month's partition later moves such rows into it. Every change of the
// partition set runs under one advisory lock, so two processes never race on the catalog.
import type pg from 'pg'
import sql, { raw, type Sql as Statement } from 'sql-template-tag'
import { inTransaction } from './prisma.js'

export interface MonthlyTable {
  /** the partitioned parent, as schema.prisma maps it */
  table: string
  /** the partition key: a timestamptz column every index can lead with or include */
  column: string
  /** what must go with a partition dropped whole (row triggers do not fire for it), run in its transaction before the drop */
  beforeDrop?: (partition: Statement) => Statement
}

/** The partitioned tables. */
export const MONTHLY_TABLES: readonly MonthlyTable[] = [
  { table: 'audit_logs', column: 'created_at' },
  { table: 'request_candidates', column: 'created_at' },
  { table: 'usage_bodies', column: 'created_at' },
  // a month dropped whole takes its request ids with it (usage's delete trigger covers the rows deleted one by one)
  { table: 'usage', column: 'created_at', beforeDrop: (p) => sql`DELETE FROM usage_requests q USING ${p} u WHERE q.request_id = u.request_id AND q.usage_id = u.id` }
]

/**
 * usage rows by request id, exact across partitions (`FROM ${usageByRequestSql()} WHERE q.request_id = …`):
 * usage_requests' key gives a request's (id, created_at), then usage's key finds the row in its month's
 * partition. `q` and `u` name the two tables.
 */
export const usageByRequestSql = (): Statement => raw('(usage_requests q JOIN usage u ON u.id = q.usage_id AND u.created_at = q.created_at)')

/**
 * The candidates of usage row `u` (alias `c`): a candidate is dated by its request (ingestion and the
 * seed write the row's created_at on it, and a row's created_at never changes), so the month prunes
 * the probe to one partition of request_candidates (request_id, created_at, candidate_index, retry_index)
 * instead of one probe a month kept.
 */
export const candidatesOfSql = (c: string, u: string): Statement => raw(`${c}.request_id = ${u}.request_id AND ${c}.created_at = ${u}.created_at`)

/** Months created ahead of the current one: the app's start and each cleanup run keep this many ready. */
export const MONTHS_AHEAD = 3

/** Held (transaction-scoped) by every partition creation and drop. */
export const PARTITION_LOCK = 0x6b6d7074 // "kmpt"

// DDL on a parent queues every later query on it while it waits: wait this long at most, and retry on the next run
const DDL_LOCK_TIMEOUT = '2s'

/** What the partition maintenance needs: a pool (or anything handing out connections for a transaction). */
export type PartitionPool = Pick<pg.Pool, 'query' | 'connect'>

export interface Partition {
  name: string
  /** the month range [from, to); both null for the DEFAULT partition */
  from: Date | null
  to: Date | null
}

export function monthlyTable (table: string): MonthlyTable {
  const found = MONTHLY_TABLES.find((t) => t.table === table)
  if (found === undefined) throw new Error(`${table} is not partitioned by month`)
  return found
}

/** The first instant of `at`'s UTC month. */
export const monthStart = (at: Date) => new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1))
export const addMonths = (month: Date, n: number) => new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + n, 1))

/**
 * `created_at >= ` the start of the UTC month before `now`'s, as a literal: a generic plan
 * prunes partitions at planning only on a constant, never on a parameter or now(). A read of
 * the last days (a rate window, requests in flight, today's spend: none reaches back more
 * than 38 hours) that adds it plans and locks the two latest months' partitions and those
 * ahead, not every month kept (bench/README, thirty-first session). Its text changes once a
 * month: each connection then plans the statement once more.
 */
export function recentRowsSql (column: string, now = new Date()): Statement {
  const floor = addMonths(monthStart(now), -1).toISOString()
  return raw(`${column} >= '${floor}'::timestamptz`)
}

/** audit_logs_p2026_12 for December 2026. */
export const partitionName = (table: string, month: Date) =>
  `${table}_p${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`
export const defaultPartitionName = (table: string) => `${table}_default`

// names come from code (the registry and dates), quoted all the same
const ident = (name: string) => raw(`"${name.replaceAll('"', '""')}"`)

/** The partitions of `table`, oldest first, the default last. */
export async function partitionsOf (db: Pick<pg.Pool, 'query'>, table: string): Promise<Partition[]> {
  // pg_get_expr prints the bounds in the session's time zone; cast back in the same session they are exact
  const { rows } = await db.query<Partition>(sql`
    SELECT c.relname AS name,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM [(]''([^'']*)''[)]')::timestamptz AS "from",
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO [(]''([^'']*)''[)]')::timestamptz AS "to"
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = to_regclass(quote_ident(${table}))
     ORDER BY 2 NULLS LAST, 1`)
  return rows
}

const covers = (p: Partition, from: Date, to: Date) => p.from !== null && p.to !== null && p.from < to && p.to > from

async function lockPartitions (client: pg.PoolClient): Promise<void> {
  await client.query(sql`SELECT pg_advisory_xact_lock(${PARTITION_LOCK})`)
  // after the advisory lock: a run waiting for another's is not a DDL queued on the parent
  await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`)
}

/**
 * Creates the partition of `month` unless a partition already covers it; returns its name,
 * or null when nothing was created. Rows of that month the default holds move into it.
 * The new table is attached rather than created as a partition: ATTACH takes SHARE UPDATE
 * EXCLUSIVE on the parent (reads and writes go on), CREATE … PARTITION OF an ACCESS EXCLUSIVE.
 */
export async function ensureMonth (pool: PartitionPool, spec: MonthlyTable, month: Date): Promise<string | null> {
  const from = monthStart(month)
  const to = addMonths(from, 1)
  if ((await partitionsOf(pool, spec.table)).some((p) => covers(p, from, to))) return null
  return await inTransaction(pool, async (client) => {
    await lockPartitions(client)
    const partitions = await partitionsOf(client, spec.table)
    if (partitions.some((p) => covers(p, from, to))) return null // another process made it meanwhile
    const name = partitionName(spec.table, from)
    const [parent, partition, column] = [ident(spec.table), ident(name), ident(spec.column)]
    await client.query(sql`CREATE TABLE ${partition} (LIKE ${parent} INCLUDING DEFAULTS)`)
    const fallback = partitions.find((p) => p.from === null)
    if (fallback !== undefined) {
      // parent then default, ATTACH's own order; the default locked before the move so no row of the month enters it until the attach
      await client.query(sql`LOCK TABLE ${parent} IN SHARE UPDATE EXCLUSIVE MODE`)
      await client.query(sql`LOCK TABLE ${ident(fallback.name)} IN ACCESS EXCLUSIVE MODE`)
      await client.query(sql`
        WITH moved AS (DELETE FROM ${ident(fallback.name)} WHERE ${column} >= ${from} AND ${column} < ${to} RETURNING *)
        INSERT INTO ${partition} SELECT * FROM moved`)
    }
    // the bounds as UTC literals: DDL takes no parameters
    await client.query(sql`ALTER TABLE ${parent} ATTACH PARTITION ${partition}
      FOR VALUES FROM (${raw(`'${from.toISOString()}'`)}) TO (${raw(`'${to.toISOString()}'`)})`)
    // never analysed, a table is planned as ten pages of rows however empty it is (autovacuum waits for writes)
    await client.query(sql`ANALYZE ${partition}`)
    return name
  })
}

/** The current month's partition and the next MONTHS_AHEAD of every partitioned table; returns the ones created. */
export async function ensurePartitions (pool: PartitionPool, now = new Date(), tables: readonly MonthlyTable[] = MONTHLY_TABLES): Promise<string[]> {
  const created: string[] = []
  for (const spec of tables) {
    for (let n = 0; n <= MONTHS_AHEAD; n++) {
      const name = await ensureMonth(pool, spec, addMonths(monthStart(now), n))
      if (name !== null) created.push(name)
    }
  }
  return created
}

export interface Removed {
  /** partitions detached and dropped whole */
  partitions: string[]
  /** rows removed: the dropped partitions' and those deleted one by one */
  rows: number
}

/**
 * Retention for a partitioned table: every partition wholly older than `cutoff` is detached
 * and dropped, then the older rows of the one straddling it (and of the default) are
 * deleted, so the rows left are exactly those a plain `DELETE … WHERE column < cutoff`
 * leaves. A partition whose lock is not had within DDL_LOCK_TIMEOUT is left to the row
 * delete; the next run drops it empty.
 */
export async function removeBefore (pool: PartitionPool, spec: MonthlyTable, cutoff: Date): Promise<Removed> {
  const removed: Removed = { partitions: [], rows: 0 }
  const old = (await partitionsOf(pool, spec.table)).filter((p) => p.to !== null && p.to <= cutoff)
  for (const { name } of old) {
    try {
      const rows = await inTransaction(pool, async (client) => {
        await lockPartitions(client)
        // a run at once may have dropped it already
        if (!(await partitionsOf(client, spec.table)).some((p) => p.name === name)) return null
        // counted before the detach: the parent's ACCESS EXCLUSIVE lock is then held for the catalog change only
        const counted = await client.query<{ n: string }>(sql`SELECT count(*) AS n FROM ${ident(name)}`)
        if (spec.beforeDrop !== undefined) await client.query(spec.beforeDrop(ident(name)))
        // not CONCURRENTLY: it cannot run in a transaction block, nor on a parent with a default partition
        await client.query(sql`ALTER TABLE ${ident(spec.table)} DETACH PARTITION ${ident(name)}`)
        await client.query(sql`DROP TABLE ${ident(name)}`)
        return Number(counted.rows[0]?.n ?? 0)
      })
      if (rows === null) continue
      removed.partitions.push(name)
      removed.rows += rows
    } catch (error) {
      if ((error as { code?: string }).code !== '55P03') throw error // lock_not_available: the row delete below covers it
    }
  }
  const deleted = await pool.query(rowDelete(spec, cutoff))
  removed.rows += deleted.rowCount ?? 0
  return removed
}

// the parent's plan prunes to the partitions that can hold such rows: the straddling one and the default
const rowDelete = (spec: MonthlyTable, cutoff: Date): Statement =>
  sql`DELETE FROM ${ident(spec.table)} WHERE ${ident(spec.column)} < ${cutoff}`
