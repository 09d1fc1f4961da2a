// What the books count, written once: every rollup, counter and statistic that asks
// "is this request finished?" or "was this candidate sent?" asks here, in TypeScript
// or as SQL, so the two can never disagree.
import { raw, type Sql as Fragment } from 'sql-template-tag'

/** The states after which a usage row no longer changes its charge: the rows rollups count. */
export const FINISHED_STATUSES = ['completed', 'failed', 'cancelled'] as const
export type FinishedStatus = typeof FINISHED_STATUSES[number]

export const isFinished = (status: string): status is FinishedStatus => (FINISHED_STATUSES as readonly string[]).includes(status)

/** The states of a request still being served: what in-flight limits and the stale sweep count. */
export const IN_FLIGHT_STATUSES = ['pending', 'streaming'] as const
export const isInFlight = (status: string): boolean => (IN_FLIGHT_STATUSES as readonly string[]).includes(status)

/** `<alias>.<column>` (no alias: the bare column). */
export const qualified = (alias: string | undefined, column: string) => alias === undefined ? column : `${alias}.${column}`

/** `<alias>.status IN (in flight…)` (no alias: the bare column). */
export const inFlightSql = (alias?: string): Fragment => raw(`${qualified(alias, 'status')} IN (${list(IN_FLIGHT_STATUSES)})`)

/** Candidate states that never reached their provider. */
export const UNSENT_CANDIDATE_STATUSES = ['skipped', 'available'] as const

const list = (values: readonly string[]) => values.map((value) => `'${value}'`).join(', ')

/** `<alias>.status IN (finished…)` (no alias: the bare column), for SQL over usage rows. */
export const finishedSql = (alias?: string): Fragment => raw(`${qualified(alias, 'status')} IN (${list(FINISHED_STATUSES)})`)

/** `<alias>.status NOT IN (unsent…)`: a request candidate that was actually sent to its provider. */
export const executedSql = (alias = 'c'): Fragment => raw(`${alias}.status NOT IN (${list(UNSENT_CANDIDATE_STATUSES)})`)

/** Rollup keys cannot be NULL: a missing user, key or provider is this id in them. */
export const NIL_UUID = '00000000-0000-0000-0000-000000000000'

const HOUR_MS = 3_600_000

/**
 * Settled hours: a cache of rollup hours before settledBefore(now) (the heatmap's past
 * days) is exact while rollup_late_writes has not moved, because a batch writing any row
 * created more than LATE_AFTER_MS before its clock counts one there (isLateWrite). The hour
 * between the two tolerates that much clock skew between instances. Six hours: a gateway
 * reports a completion within minutes of its request's start, so a late write is a replayed
 * backlog or a bulk load, and costs only a rebuild of the caches; the shorter the margin,
 * the fewer live hours every kept answer reads.
 */
export const LATE_AFTER_MS = 6 * HOUR_MS
export const settledBefore = (now: Date): Date => new Date(Math.floor((now.getTime() - LATE_AFTER_MS - HOUR_MS) / HOUR_MS) * HOUR_MS)
/** A write that changed settled hours outside a batch (a bulk load, a rebuild, a key's rows folded away): the caches of them rebuild. */
export const SETTLED_HOURS_CHANGED = raw('UPDATE rollup_late_writes SET writes = writes + 1')
export const isLateWrite = (earliestCreatedMs: number, now: Date): boolean => earliestCreatedMs < now.getTime() - LATE_AFTER_MS
