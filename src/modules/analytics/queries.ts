// The analytics reads: a series' sums per bucket, from the coarsest hourly rollup that
// keeps the filters' dimensions, and raw usage rows for the hours a bucket boundary cuts.
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import type { QuarterDayPlan } from '../../lib/spans.js'
import { REACHED_PROVIDER } from '../accounting/model.js'
import { withinEither } from '../accounting/read/sql.js'
import { finishedSql } from '../accounting/rules.js'
import type { Bucket } from './buckets.js'

const HOUR = 3_600_000
const QUARTER = 900_000
const FINISHED = finishedSql('u')

/** What a series may be narrowed to (ids resolved; api_format '' is a request without one). */
export interface SeriesFilter {
  userId: string | null
  apiKeyId: string | null
  model: string | null
  providerId: string | null
  apiFormat: string | null
}

/** A bucket's sums: counts as numbers (exact below 2^53), money as bigint nano-USD. */
export interface SeriesSums {
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  cacheCreationTokens: number
  cacheCreation5mTokens: number
  cacheCreation1hTokens: number
  cacheReadTokens: number
  totalTokens: number
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeSumMs: number
  responseTimeCount: number
  firstByteSumMs: number
  firstByteCount: number
}

const MEASURES = ['requests', 'errors', 'input_tokens', 'output_tokens', 'cache_creation_tokens', 'cache_creation_5m_tokens', 'cache_creation_1h_tokens',
  'cache_read_tokens', 'total_tokens', 'total_cost', 'actual_total_cost', 'response_time_sum_ms', 'response_time_count', 'first_byte_time_sum_ms', 'first_byte_time_count']

const ROLLUP_MEASURES = raw(MEASURES.map((m) => `r.${m}`).join(', '))
// a raw row as the contribution ingestion adds to a rollup row (accounting/model.ts MEASURES)
const RAW_MEASURES = raw(`1, (u.status = 'failed')::int, u.input_tokens::bigint, u.output_tokens::bigint, u.cache_creation_input_tokens::bigint,
  u.cache_creation_5m_input_tokens::bigint, u.cache_creation_1h_input_tokens::bigint, u.cache_read_input_tokens::bigint, u.total_tokens::bigint,
  u.total_cost, u.actual_total_cost, COALESCE(u.response_time_ms, 0)::bigint, (u.response_time_ms IS NOT NULL)::int,
  COALESCE(u.first_byte_time_ms, 0)::bigint, (u.first_byte_time_ms IS NOT NULL)::int`)
const SUMS = raw(MEASURES.map((m) => `sum(${m})::bigint AS ${m}`).join(', '))

/**
 * The coarsest rollup with the filters' dimensions and the index serving it:
 * usage_hourly (user_id, bucket) / (api_key_id, bucket) for a user or key;
 * usage_hourly_model primary key (bucket, …) for a model or format;
 * usage_hourly_provider primary key (bucket, provider_id) otherwise.
 */
function rollupOf (filter: SeriesFilter): string {
  if (filter.userId !== null || filter.apiKeyId !== null) return 'usage_hourly'
  if (filter.model !== null || filter.apiFormat !== null) return 'usage_hourly_model'
  return 'usage_hourly_provider'
}

function predicates (filter: SeriesFilter, alias: 'r' | 'u'): Fragment {
  const column = (name: string) => raw(`${alias}.${name}`)
  const parts: Fragment[] = []
  if (filter.userId !== null) parts.push(sql`${column('user_id')} = ${filter.userId}::uuid`)
  if (filter.apiKeyId !== null) parts.push(sql`${column('api_key_id')} = ${filter.apiKeyId}::uuid`)
  if (filter.providerId !== null) parts.push(sql`${column('provider_id')} = ${filter.providerId}::uuid`)
  if (filter.model !== null) parts.push(sql`${column('model')} = ${filter.model}`)
  // rollups key a missing format as '', usage keeps NULL
  if (filter.apiFormat !== null) parts.push(alias === 'r' ? sql`r.api_format = ${filter.apiFormat}` : sql`COALESCE(u.api_format, '') = ${filter.apiFormat}`)
  return parts.length === 0 ? empty : sql`AND ${join(parts, ' AND ')}`
}

export interface ReadPlan {
  /** the whole UTC hours [from, to) read from an hourly rollup, but for cutHours */
  whole: { from: Date, to: Date }
  /** the hours a bucket boundary falls inside */
  cutHours: Date[]
  /** the cut hours' quarter-hours read from a quarter-hour rollup (none unless asked for) */
  quarters: Date[]
  /** the rest of the cut hours, read from raw rows, clipped to the range */
  raw: Array<{ from: Date, to: Date }>
}

/**
 * How the buckets are read: whole UTC hours from the rollup, and every hour a bucket
 * boundary falls inside (the range's ragged ends, and each local midnight of a zone off
 * the hour) from raw rows, clipped to the range — usageStats' edge rule (lib/spans.ts)
 * applied at every cut. With `quarters`, a cut hour's quarter-hours that lie in the
 * range with no boundary inside come from a quarter-hour rollup instead: every cut of a
 * zone in use today (offsets are whole quarter-hours), so raw rows are left only for the
 * ragged ends' quarters and historical offsets (local mean times).
 */
export function readPlan (buckets: Bucket[], quarters = false): ReadPlan {
  const from = buckets[0]!.start
  const to = buckets[buckets.length - 1]!.end
  const points = [from, ...buckets.map((b) => b.end)]
  const cut = new Set<number>()
  for (const at of points) if (at % HOUR !== 0) cut.add(Math.floor(at / HOUR) * HOUR)
  const hours = [...cut].sort((a, b) => a - b)
  const wholeFrom = Math.ceil(from / HOUR) * HOUR
  const wholeTo = Math.max(wholeFrom, Math.floor(to / HOUR) * HOUR)
  // the quarter-hours a boundary falls inside (the range's ends among them, when off the quarter)
  const split = new Set(points.filter((at) => at % QUARTER !== 0).map((at) => Math.floor(at / QUARTER) * QUARTER))
  const whole: number[] = []
  const raw: Array<{ from: number, to: number }> = []
  const rawPart = (start: number, end: number) => {
    const last = raw[raw.length - 1]
    // adjacent parts read as one range
    if (last !== undefined && last.to === Math.max(start, from)) last.to = Math.min(end, to)
    else raw.push({ from: Math.max(start, from), to: Math.min(end, to) })
  }
  for (const h of hours) {
    if (!quarters) { rawPart(h, h + HOUR); continue }
    for (let q = h; q < h + HOUR; q += QUARTER) {
      if (q + QUARTER <= from || q >= to) continue
      if (split.has(q)) rawPart(q, q + QUARTER)
      else whole.push(q)
    }
  }
  return {
    whole: { from: new Date(wholeFrom), to: new Date(wholeTo) },
    cutHours: hours.map((h) => new Date(h)),
    quarters: whole.map((q) => new Date(q)),
    raw: raw.map((s) => ({ from: new Date(s.from), to: new Date(s.to) }))
  }
}

/**
 * The quarter-hour rollup answering a series' cut hours, and its index: usage_quarter_hourly_global
 * (primary key (bucket)) unfiltered; usage_quarter_hourly_model (bucket, …) for a model, provider
 * or api_format; none for a user or key (their raw rows, through (user_id, created_at) /
 * (api_key_id, created_at), are few).
 */
function quarterRollupOf (filter: SeriesFilter): string | null {
  if (filter.userId !== null || filter.apiKeyId !== null) return null
  return filter.model === null && filter.providerId === null && filter.apiFormat === null ? 'usage_quarter_hourly_global' : 'usage_quarter_hourly_model'
}

/**
 * The usage rows of a read plan's cut hours, as `u`, `where` (over `u`) applied inside:
 * one range of usage (created_at), or of (user_id, created_at) / (api_key_id, created_at),
 * per hour, each read by itself (OFFSET 0 keeps it apart). Joined to the hours instead,
 * the planner weighs 31 ranges of unknown width against the table and scans all of
 * usage: at 10M rows, past the statement timeout.
 */
export const cutHourRows = (plan: ReadPlan, where: Fragment = empty): Fragment => sql`
  unnest(${plan.raw.map((s) => s.from)}::timestamptz[], ${plan.raw.map((s) => s.to)}::timestamptz[]) AS c(from_at, to_at)
  CROSS JOIN LATERAL (SELECT * FROM usage u WHERE u.created_at >= c.from_at AND u.created_at < c.to_at ${where} OFFSET 0) u`

/** Each bucket's sums (buckets without rows absent), by bucket index. */
export async function seriesSums (db: Sql, buckets: Bucket[], filter: SeriesFilter): Promise<Map<number, SeriesSums>> {
  const quarters = quarterRollupOf(filter)
  const plan = readPlan(buckets, quarters !== null)
  // the cut hours by quarter-hour (quarterRollupOf: its primary key (bucket, …)); none for a user or key
  let quarterPart = empty
  if (quarters !== null) {
    quarterPart = sql`
        SELECT r.bucket, ${ROLLUP_MEASURES} FROM ${raw(quarters)} r WHERE r.bucket = ANY(${plan.quarters}::timestamptz[]) ${predicates(filter, 'r')}
        UNION ALL`
  }
  const bounds = [...buckets.map((b) => new Date(b.start)), new Date(buckets[buckets.length - 1]!.end)]
  const { rows } = await db.query(sql`
    SELECT width_bucket(p.at, ${bounds}::timestamptz[]) - 1 AS i, ${SUMS}
      FROM (
        -- whole hours; those a boundary cuts are read below
        SELECT r.bucket AS at, ${ROLLUP_MEASURES} FROM ${raw(rollupOf(filter))} r
         WHERE r.bucket >= ${plan.whole.from} AND r.bucket < ${plan.whole.to} AND r.bucket <> ALL(${plan.cutHours}::timestamptz[]) ${predicates(filter, 'r')}
        UNION ALL
        ${quarterPart}
        -- usage (created_at), or (user_id, created_at) / (api_key_id, created_at): one range per cut hour
        SELECT u.created_at, ${RAW_MEASURES} FROM ${cutHourRows(plan, sql`AND ${FINISHED} ${predicates(filter, 'u')}`)}
      ) p
     GROUP BY 1`)
  const n = (v: unknown) => Number(v)
  return new Map(rows.map((row: Record<string, unknown>) => [n(row.i), {
    requests: n(row.requests),
    errors: n(row.errors),
    inputTokens: n(row.input_tokens),
    outputTokens: n(row.output_tokens),
    cacheCreationTokens: n(row.cache_creation_tokens),
    cacheCreation5mTokens: n(row.cache_creation_5m_tokens),
    cacheCreation1hTokens: n(row.cache_creation_1h_tokens),
    cacheReadTokens: n(row.cache_read_tokens),
    totalTokens: n(row.total_tokens),
    totalCost: BigInt(row.total_cost as string),
    actualTotalCost: BigInt(row.actual_total_cost as string),
    responseTimeSumMs: n(row.response_time_sum_ms),
    responseTimeCount: n(row.response_time_count),
    firstByteSumMs: n(row.first_byte_time_sum_ms),
    firstByteCount: n(row.first_byte_time_count)
  }]))
}

export type Board = 'users' | 'api-keys' | 'models' | 'providers'
export type Metric = 'requests' | 'tokens' | 'cost'

/** What a board narrows to: a user (api-keys) or a provider (models). */
export interface BoardFilter { userId: string | null, providerId: string | null }

interface BoardSource {
  /** the whole UTC days' rollup (null: the hourly one over the days too) and the hours' beside them (alias r), their key, and the name join (alias n, on g.key) */
  daily: string | null
  hourly: string
  /** the whole quarter-hours' rollup beside the hours (null: none keeps the board's key; the hour edges are read raw) */
  quarterly: string | null
  /** which of the quarter-hours' rows count, where that rollup keeps what the others filter (default: rollupWhere) */
  quarterWhere?: string
  key: string
  rawKey: string
  names: string
  /** the entry's name, over the join */
  name: string
  /** only rows that count (the user ranking: requests that reached an existing provider) */
  rollupWhere: string
  rawWhere: string
}

/**
 * Each board's rollups and indexes: users from usage_daily_user / usage_hourly_user /
 * usage_quarter_hourly_user (primary keys (day, …) / (bucket, …) / (bucket, …); requests that
 * reached a provider that exists, as the users aggregation counts); keys from usage_daily_api_key /
 * usage_hourly_api_key / usage_quarter_hourly_api_key ((day, …) / (bucket, …) / (bucket, …)), or
 * usage_daily_key / usage_hourly ((user_id, day) / (user_id, bucket)) for one user; models and providers from
 * usage_daily_model (day, …) and usage_hourly_model / usage_hourly_provider (bucket, …), their
 * whole quarter-hours beside the hours from usage_quarter_hourly_model (bucket, …).
 * Raw edges through usage (created_at): the hour edges, or only what lies inside a quarter-hour.
 */
const BOARDS: Record<Board, BoardSource> = {
  users: {
    daily: 'usage_daily_user', hourly: 'usage_hourly_user', quarterly: 'usage_quarter_hourly_user', quarterWhere: REACHED_PROVIDER.rollup('r'),
    key: 'r.user_id', rawKey: 'u.user_id', names: 'JOIN users n ON n.id = g.key::uuid', name: 'n.username', rollupWhere: 'TRUE', rawWhere: REACHED_PROVIDER.raw('u')
  },
  'api-keys': { daily: 'usage_daily_api_key', hourly: 'usage_hourly_api_key', quarterly: 'usage_quarter_hourly_api_key', key: 'r.api_key_id', rawKey: 'u.api_key_id', names: 'JOIN api_keys n ON n.id = g.key::uuid', name: 'n.name', rollupWhere: 'TRUE', rawWhere: 'TRUE' },
  models: { daily: 'usage_daily_model', hourly: 'usage_hourly_model', quarterly: 'usage_quarter_hourly_model', key: 'r.model', rawKey: 'u.model', names: '', name: 'g.key', rollupWhere: 'TRUE', rawWhere: 'TRUE' },
  providers: { daily: 'usage_daily_model', hourly: 'usage_hourly_provider', quarterly: 'usage_quarter_hourly_model', key: 'r.provider_id', rawKey: 'u.provider_id', names: 'JOIN providers n ON n.id = g.key::uuid', name: 'n.name', rollupWhere: 'TRUE', rawWhere: 'TRUE' }
}

/**
 * A board of one user's keys (BoardFilter.userId) reads rollups that keep user_id:
 * models from usage_daily_key (user_id, day) and usage_hourly (user_id, bucket);
 * providers from usage_hourly (user_id, bucket) alone, days included (no daily rollup
 * keeps both user and provider); keys from usage_daily_key (user_id, day). The users board already does.
 */
const USER_BOARDS: Partial<Record<Board, Pick<BoardSource, 'daily' | 'hourly' | 'quarterly'>>> = {
  'api-keys': { daily: 'usage_daily_key', hourly: 'usage_hourly', quarterly: null },
  models: { daily: 'usage_daily_key', hourly: 'usage_hourly', quarterly: null },
  providers: { daily: null, hourly: 'usage_hourly', quarterly: null }
}

const METRIC_COLUMN: Record<Metric, string> = { requests: 'requests', tokens: 'total_tokens', cost: 'total_cost' }

export interface BoardRow { id: string, name: string, rank: number, requests: number, totalTokens: number, totalCost: bigint, actualTotalCost: bigint, share: number | null }

/** A page of a board, ranked by the metric (dense rank), and how many entries it has. */
export async function leaderboard (db: Sql, board: Board, plan: QuarterDayPlan, metric: Metric, order: 'asc' | 'desc', filter: BoardFilter, limit: number, offset: number) {
  const b = { ...BOARDS[board], ...(filter.userId === null ? {} : USER_BOARDS[board]) }
  const where = (alias: 'r' | 'u', rollupWhere = b.rollupWhere): Fragment => {
    const parts: Fragment[] = [raw(alias === 'r' ? rollupWhere : b.rawWhere)]
    if (filter.userId !== null) parts.push(sql`${raw(alias)}.user_id = ${filter.userId}::uuid`)
    if (filter.providerId !== null) parts.push(sql`${raw(alias)}.provider_id = ${filter.providerId}::uuid`)
    return join(parts, ' AND ')
  }
  // with a quarter-hour rollup, its whole quarter-hours beside the hours, and only what lies inside a quarter-hour read raw
  const edges = b.quarterly === null ? plan.edges : plan.ragged
  let quarterPart = empty
  if (b.quarterly !== null) {
    quarterPart = sql`
          SELECT ${raw(b.key)}::text, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM ${raw(b.quarterly)} r
           WHERE ${withinEither(raw('r.bucket'), plan.quarters)} AND ${where('r', b.quarterWhere)}
          UNION ALL`
  }
  const column = raw(METRIC_COLUMN[metric])
  const direction = raw(order === 'asc' ? 'ASC' : 'DESC')
  const { rows } = await db.query(sql`
    WITH g AS (
      SELECT key, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS total_tokens, sum(total_cost)::bigint AS total_cost, sum(actual_total_cost)::bigint AS actual_total_cost
        FROM (
          SELECT ${raw(b.key)}::text AS key, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM ${raw(b.daily ?? b.hourly)} r
           WHERE ${b.daily === null
             ? sql`r.bucket >= ${plan.days.from} AND r.bucket < ${plan.days.to}`
             : sql`r.day >= (${plan.days.from}::timestamptz AT TIME ZONE 'UTC')::date AND r.day < (${plan.days.to}::timestamptz AT TIME ZONE 'UTC')::date`} AND ${where('r')}
          UNION ALL
          SELECT ${raw(b.key)}::text, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM ${raw(b.hourly)} r
           WHERE ${withinEither(raw('r.bucket'), plan.hours)} AND ${where('r')}
          UNION ALL ${quarterPart}
          SELECT ${raw(b.rawKey)}::text, 1, u.total_tokens, u.total_cost, u.actual_total_cost FROM usage u
           WHERE ${FINISHED} AND ${withinEither(raw('u.created_at'), edges)}
             AND ${raw(b.rawKey)} IS NOT NULL AND ${where('u')}
        ) p
       GROUP BY key HAVING sum(requests) <> 0
    ), ranked AS (
      SELECT g.*, ${raw(b.name)}::text AS name, dense_rank() OVER (ORDER BY g.${column} ${direction}) AS rank, sum(g.${column}) OVER () AS metric_total
        FROM g ${raw(b.names)}
    )
    SELECT c.entries, p.* FROM (SELECT count(*) AS entries FROM ranked) c LEFT JOIN LATERAL (
      SELECT key, name, rank, requests, total_tokens, total_cost, actual_total_cost,
             CASE WHEN metric_total = 0 THEN NULL ELSE round(${column} * 100.0 / metric_total, 2) END AS share
        FROM ranked ORDER BY ${column} ${direction}, key LIMIT ${limit} OFFSET ${offset}
    ) p ON TRUE`)
  const n = (v: unknown) => Number(v)
  return {
    total: n(rows[0].entries),
    rows: rows.filter((row: Record<string, unknown>) => row.key !== null).map((row: Record<string, unknown>): BoardRow => ({
      id: row.key as string,
      name: row.name as string,
      rank: n(row.rank),
      requests: n(row.requests),
      totalTokens: n(row.total_tokens),
      totalCost: BigInt(row.total_cost as string),
      actualTotalCost: BigInt(row.actual_total_cost as string),
      share: row.share === null ? null : n(row.share)
    }))
  }
}
