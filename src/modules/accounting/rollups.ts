// Rollups are kept as deltas: a finished usage row contributes one request, its
// tokens and costs to its hour (and day); an update of a row adds "after − before".
// Written in the same transaction as the rows, they are never behind and never
// count a request twice — even when a late completion replaces a timed-out one.
import type { Sql } from '../../db/prisma.js'

export const NIL_UUID = '00000000-0000-0000-0000-000000000000'

/** What rollups need of a usage row. */
export interface RollupSource {
  requestId: string
  status: string
  createdAt: Date
  userId: string | null
  apiKeyId: string | null
  providerId: string | null
  model: string
  apiFormat: string | null
  inputTokens: number
  outputTokens: number
  cacheCreationTokens: number
  cacheReadTokens: number
  totalTokens: number
  cacheCreationCost: bigint
  cacheReadCost: bigint
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeMs: number | null
}

const COUNTS = ['requests', 'errors', 'input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_read_tokens', 'total_tokens',
  'response_time_sum_ms', 'response_time_count', 'cache_hit_requests'] as const
const MONEY = ['cache_creation_cost', 'cache_read_cost', 'total_cost', 'actual_total_cost'] as const
/**
 * A batch's sums: counts and tokens as numbers (exact: a batch of at most 1,000 rows of
 * int4 counts stays far below 2^53), money as bigint nano-USD.
 */
type Measures = Record<typeof COUNTS[number], number> & Record<typeof MONEY[number], bigint>

export const isFinished = (status: string) => status === 'completed' || status === 'failed' || status === 'cancelled'

const zero = (): Measures => ({
  requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cache_creation_tokens: 0, cache_read_tokens: 0, total_tokens: 0,
  response_time_sum_ms: 0, response_time_count: 0, cache_hit_requests: 0,
  cache_creation_cost: 0n, cache_read_cost: 0n, total_cost: 0n, actual_total_cost: 0n
})

/** Adds a row's contribution to `m` (sign +1), or takes it out (−1). */
function accumulate (m: Measures, row: RollupSource, sign: 1 | -1): void {
  m.requests += sign
  if (row.status === 'failed') m.errors += sign
  m.input_tokens += sign * row.inputTokens
  m.output_tokens += sign * row.outputTokens
  m.cache_creation_tokens += sign * row.cacheCreationTokens
  m.cache_read_tokens += sign * row.cacheReadTokens
  m.total_tokens += sign * row.totalTokens
  if (row.responseTimeMs !== null) {
    m.response_time_sum_ms += sign * row.responseTimeMs
    m.response_time_count += sign
  }
  if (row.cacheReadTokens > 0) m.cache_hit_requests += sign
  if (sign === 1) {
    m.cache_creation_cost += row.cacheCreationCost
    m.cache_read_cost += row.cacheReadCost
    m.total_cost += row.totalCost
    m.actual_total_cost += row.actualTotalCost
  } else {
    m.cache_creation_cost -= row.cacheCreationCost
    m.cache_read_cost -= row.cacheReadCost
    m.total_cost -= row.totalCost
    m.actual_total_cost -= row.actualTotalCost
  }
}

function sum (into: Measures, m: Measures): void {
  for (const name of COUNTS) into[name] += m[name]
  for (const name of MONEY) into[name] += m[name]
}

const isZero = (m: Measures) => COUNTS.every((name) => m[name] === 0) && MONEY.every((name) => m[name] === 0n)

/** The instants a row's rollup rows are keyed by. */
interface Buckets { hour: string, quarter: string, day: string }

type Typed = Array<[name: string, type: string]>

const HOUR: Typed = [['bucket', 'timestamptz']]
const DAY: Typed = [['day', 'date']]
const ranking: Typed = [['requests', 'int'], ['errors', 'int'], ['total_tokens', 'bigint'], ['total_cost', 'bigint'], ['actual_total_cost', 'bigint']]
const daily: Typed = [['requests', 'int'], ['errors', 'int'], ['input_tokens', 'bigint'], ['output_tokens', 'bigint'], ['cache_creation_tokens', 'bigint'],
  ['cache_read_tokens', 'bigint'], ['total_tokens', 'bigint'], ['total_cost', 'bigint'], ['actual_total_cost', 'bigint'], ['response_time_sum_ms', 'bigint'],
  ['response_time_count', 'int']]
const hourly: Typed = [...daily, ['cache_creation_cost', 'bigint'], ['cache_read_cost', 'bigint'], ['cache_hit_requests', 'int']]

interface Grain {
  table: 'usage_hourly' | 'usage_hourly_model' | 'usage_daily_model' | 'usage_daily_key' | 'usage_quarter_hourly' | 'usage_daily_user' | 'usage_hourly_user' | 'usage_hourly_provider'
  /** a row's primary key, as `columns` names it */
  key: (row: RollupSource, at: Buckets) => Record<string, string>
  /** the primary key's columns and their types */
  columns: Typed
  /** what the table sums (a subset of the batch's measures) */
  measures: Typed
  /** the rows this table counts, when not all finished ones */
  only?: (row: RollupSource) => boolean
}

/** The user ranking counts requests that reached a provider (one that exists: ingestion locks it). */
const reachedProvider = (row: RollupSource) => row.providerId !== null

/** The UTC hour an instant falls in, as the rollups key it. */
export const hour = (at: Date) => new Date(Math.floor(at.getTime() / 3_600_000) * 3_600_000).toISOString()

const GRAINS: Grain[] = [
  {
    table: 'usage_hourly',
    key: (r, at) => ({ bucket: at.hour, user_id: r.userId ?? NIL_UUID, api_key_id: r.apiKeyId ?? NIL_UUID, provider_id: r.providerId ?? NIL_UUID, model: r.model, api_format: r.apiFormat ?? '' }),
    columns: [...HOUR, ['user_id', 'uuid'], ['api_key_id', 'uuid'], ['provider_id', 'uuid'], ['model', 'text'], ['api_format', 'text']],
    measures: hourly
  },
  {
    table: 'usage_hourly_model',
    key: (r, at) => ({ bucket: at.hour, provider_id: r.providerId ?? NIL_UUID, model: r.model, api_format: r.apiFormat ?? '' }),
    columns: [...HOUR, ['provider_id', 'uuid'], ['model', 'text'], ['api_format', 'text']],
    measures: hourly
  },
  {
    // the model and api_format rankings' whole days
    table: 'usage_daily_model',
    key: (r, at) => ({ day: at.day, provider_id: r.providerId ?? NIL_UUID, model: r.model, api_format: r.apiFormat ?? '' }),
    columns: [...DAY, ['provider_id', 'uuid'], ['model', 'text'], ['api_format', 'text']],
    measures: hourly
  },
  {
    table: 'usage_daily_key',
    key: (r, at) => ({ day: at.day, user_id: r.userId ?? NIL_UUID, api_key_id: r.apiKeyId ?? NIL_UUID, model: r.model }),
    columns: [...DAY, ['user_id', 'uuid'], ['api_key_id', 'uuid'], ['model', 'text']],
    measures: daily
  },
  {
    // the heatmap's edges in zones whose midnight is off the hour; keyed by provider so
    // batches contend on it no more than on usage_hourly_model
    table: 'usage_quarter_hourly',
    key: (r, at) => ({ bucket: at.quarter, provider_id: r.providerId ?? NIL_UUID }),
    columns: [...HOUR, ['provider_id', 'uuid']],
    measures: [['requests', 'int'], ['total_tokens', 'bigint'], ['total_cost', 'bigint'], ['actual_total_cost', 'bigint']]
  },
  {
    // the user ranking; its rows are the user's, whose `used` a batch locks anyway
    table: 'usage_daily_user',
    key: (r, at) => ({ day: at.day, user_id: r.userId ?? NIL_UUID }),
    columns: [...DAY, ['user_id', 'uuid']],
    measures: ranking,
    only: reachedProvider
  },
  {
    table: 'usage_hourly_user',
    key: (r, at) => ({ bucket: at.hour, user_id: r.userId ?? NIL_UUID }),
    columns: [...HOUR, ['user_id', 'uuid']],
    measures: ranking,
    only: reachedProvider
  },
  {
    // the heatmap's hours; keyed by provider, as usage_quarter_hourly
    table: 'usage_hourly_provider',
    key: (r, at) => ({ bucket: at.hour, provider_id: r.providerId ?? NIL_UUID }),
    columns: [...HOUR, ['provider_id', 'uuid']],
    measures: hourly
  }
]

/** An executed request candidate (not skipped or available), as inserted. */
export interface SentCandidate {
  request_id: string
  provider_id: string | null
  status: string
  latency_ms: number | null
  created_at: Date
}

const ATTEMPT_MEASURES = ['attempts', 'successes', 'failures', 'latency_sum_ms', 'latency_count'] as const
type AttemptMeasures = Record<typeof ATTEMPT_MEASURES[number], number>

/** Accumulates the deltas of a batch, one entry per rollup row touched. */
export class RollupDeltas {
  /**
   * The batch's sums at the finest grain every rollup is a roll-up of (quarter-hour ×
   * user × key × provider × model × format): one entry per row touched, the coarser
   * tables' rows summed from these few entries when written.
   */
  private readonly fine = new Map<string, { at: Buckets, source: RollupSource, m: Measures }>()
  private readonly attempts = new Map<string, { bucket: string, provider_id: string, m: AttemptMeasures }>()
  /** requests given an executed candidate in this batch: their attempts are their candidates */
  private readonly tried = new Set<string>()

  /**
   * Records the batch's executed candidates, each an attempt on its own provider. Call
   * before change(): a finished request with an executed candidate adds no implicit attempt.
   */
  sent (candidates: SentCandidate[]): void {
    for (const c of candidates) {
      this.tried.add(c.request_id)
      if (c.provider_id === null) continue
      this.attempt(c.created_at, c.provider_id, {
        attempts: 1, successes: c.status === 'success' ? 1 : 0, failures: c.status === 'failed' ? 1 : 0,
        latency_sum_ms: c.latency_ms ?? 0, latency_count: c.latency_ms === null ? 0 : 1
      })
    }
  }

  /** Records a row going from `before` to `after` (either may be null or unfinished). */
  change (before: RollupSource | null, after: RollupSource | null): void {
    if (before !== null && isFinished(before.status)) this.add(before, -1)
    if (after !== null && isFinished(after.status)) this.add(after, 1)
    // The implicit attempt of a finished request reported without an executed candidate.
    // Candidates come only with a request's one accepted completion, and a finished row
    // changes afterwards only by a late completion replacing a timeout sweep (which has
    // none): so `before` never had candidates, or nothing about it changes (+1 − 1).
    if (before !== null && isFinished(before.status) && before.providerId !== null) this.implicit(before, -1)
    if (after !== null && isFinished(after.status) && after.providerId !== null && !this.tried.has(after.requestId)) this.implicit(after, 1)
  }

  private implicit (row: RollupSource, sign: 1 | -1): void {
    const failed = row.status === 'failed' ? 1 : 0
    this.attempt(row.createdAt, row.providerId!, {
      attempts: sign, successes: sign * (1 - failed), failures: sign * failed,
      latency_sum_ms: sign * (row.responseTimeMs ?? 0), latency_count: row.responseTimeMs === null ? 0 : sign
    })
  }

  private attempt (at: Date, providerId: string, m: AttemptMeasures): void {
    const id = `${Math.floor(at.getTime() / 3_600_000)}|${providerId}`
    let entry = this.attempts.get(id)
    if (entry === undefined) {
      entry = { bucket: hour(at), provider_id: providerId, m: { attempts: 0, successes: 0, failures: 0, latency_sum_ms: 0, latency_count: 0 } }
      this.attempts.set(id, entry)
    }
    for (const name of ATTEMPT_MEASURES) entry.m[name] += m[name]
  }

  /** The touched provider_attempts_hourly rows, in primary-key order. */
  attemptRows (): Array<Record<string, string>> {
    const order = (entry: { bucket: string, provider_id: string }) => `${entry.bucket}|${entry.provider_id}`
    return [...this.attempts.values()]
      .filter((entry) => ATTEMPT_MEASURES.some((name) => entry.m[name] !== 0))
      .sort((a, b) => order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0)
      .map((entry) => ({ bucket: entry.bucket, provider_id: entry.provider_id, ...Object.fromEntries(ATTEMPT_MEASURES.map((name) => [name, entry.m[name].toString()])) }))
  }

  private add (row: RollupSource, sign: 1 | -1): void {
    const quarterMs = Math.floor(row.createdAt.getTime() / 900_000) * 900_000
    const id = `${quarterMs}|${row.userId}|${row.apiKeyId}|${row.providerId}|${row.model}|${row.apiFormat}`
    let entry = this.fine.get(id)
    if (entry === undefined) {
      const hourly = hour(row.createdAt)
      entry = { at: { hour: hourly, quarter: new Date(quarterMs).toISOString(), day: hourly.slice(0, 10) }, source: row, m: zero() }
      this.fine.set(id, entry)
    }
    accumulate(entry.m, row, sign)
  }

  /** The touched rollup rows of one table, in primary-key order, as JSON-ready records. */
  rowsOf (table: Grain['table']): Array<Record<string, string>> {
    const grain = GRAINS.find((g) => g.table === table)!
    const rows = new Map<string, { key: Record<string, string>, m: Measures }>()
    for (const { at, source, m } of this.fine.values()) {
      if (grain.only !== undefined && !grain.only(source)) continue
      const key = grain.key(source, at)
      const id = Object.values(key).join('|')
      const row = rows.get(id)
      if (row === undefined) rows.set(id, { key, m: { ...m } })
      else sum(row.m, m)
    }
    return [...rows.entries()]
      .filter(([, row]) => !isZero(row.m))
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .map(([, row]) => ({ ...row.key, ...Object.fromEntries([...COUNTS, ...MONEY].map((name) => [name, row.m[name].toString()])) }))
  }
}

export interface Charges {
  keys: Array<{ id: string, requests: string, tokens: string, cost: string }>
  users: Array<{ id: string, cost: string }>
}

/** The rollups a batch adds to, each its own parameter of WRITE_TOTALS, in this order: the grains, then the provider attempts. */
const UPSERTS: Array<Pick<Grain, 'columns' | 'measures'> & { table: Grain['table'] | 'provider_attempts_hourly' }> = [
  ...GRAINS,
  {
    table: 'provider_attempts_hourly',
    columns: [...HOUR, ['provider_id', 'uuid']],
    measures: [['attempts', 'int'], ['successes', 'int'], ['failures', 'int'], ['latency_sum_ms', 'bigint'], ['latency_count', 'int']]
  }
]

/** One rollup's upsert as a CTE: its rows from the JSON records of parameter `param`, each measure added on conflict. */
function upsertCte ({ table, columns: key, measures }: typeof UPSERTS[number], param: number): string {
  const columns = [...key, ...measures]
  return `${table} AS (
      INSERT INTO ${table} AS t (${columns.map(([name]) => name).join(', ')})
      SELECT ${columns.map(([name]) => name).join(', ')}
        FROM jsonb_to_recordset($${param}::jsonb) AS d(${columns.map(([name, type]) => `${name} ${type}`).join(', ')})
      ON CONFLICT (${key.map(([name]) => name).join(', ')}) DO UPDATE SET
        ${measures.map(([name]) => `${name} = t.${name} + EXCLUDED.${name}`).join(', ')}
      RETURNING 1
    )`
}

// the batch's clock, the keys' and the users' charges, then one parameter per rollup
const WRITE_TOTALS = `
    WITH keys AS (
      UPDATE api_keys k
         SET total_requests = k.total_requests + c.requests, total_tokens = k.total_tokens + c.tokens,
             total_cost = k.total_cost + c.cost, balance_used = k.balance_used + c.cost,
             last_used_at = GREATEST(k.last_used_at, $1), updated_at = $1
        FROM jsonb_to_recordset($2::jsonb) AS c(id uuid, requests bigint, tokens bigint, cost bigint)
       WHERE k.id = c.id
      RETURNING 1
    ), users AS (
      UPDATE users u SET used = u.used + c.cost
        FROM jsonb_to_recordset($3::jsonb) AS c(id uuid, cost bigint)
       WHERE u.id = c.id
      RETURNING 1
    ), ${UPSERTS.map((upsert, i) => upsertCte(upsert, 4 + i)).join(', ')}
    -- read (so run) in the order the statement had before: the rollups, then the keys and users
    SELECT ${UPSERTS.map(({ table }) => `(SELECT count(*) FROM ${table})`).join(' + ')} + (SELECT count(*) FROM keys) + (SELECT count(*) FROM users) AS touched`

/**
 * Everything a batch adds to shared rows — the nine rollups, the keys' and users'
 * charges — in ONE statement. These are the rows every concurrent batch contends
 * for; as one statement, their locks are held for one round trip and the commit,
 * not for a conversation with a busy application server.
 */
export async function writeTotals (db: Sql, deltas: RollupDeltas, charges: Charges, now: Date): Promise<void> {
  const rows = UPSERTS.map(({ table }) => table === 'provider_attempts_hourly' ? deltas.attemptRows() : deltas.rowsOf(table))
  if (rows.every((list) => list.length === 0) && charges.keys.length + charges.users.length === 0) return
  await db.query(WRITE_TOTALS, [now, JSON.stringify(charges.keys), JSON.stringify(charges.users), ...rows.map((list) => JSON.stringify(list))])
}
