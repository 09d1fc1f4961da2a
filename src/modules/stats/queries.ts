// The usage records SQL (raw rows: the list, its search, one row in full), on the
// shared pg pool: unnamed statements, so each is planned with its parameter values; a
// filter that is absent is left out of the text. The totals and groupings are the
// accounting core's (src/modules/accounting/read/totals.ts).
import sql, { empty, join, raw, type Sql as Fragment } from 'sql-template-tag'
import { candidatesOfSql } from '../../db/partitions.js'
import { inTransaction, type Sql, type SqlPool } from '../../db/prisma.js'
import { pricingSourceSql, storedActualCostsSql, tierPricesJoinSql, tierPricesSql } from '../accounting/pricing.js'
import { executedSql, IN_FLIGHT_STATUSES, inFlightSql } from '../accounting/rules.js'
import type { StoredTier } from '../accounting/tiers.js'

const EXECUTED = executedSql('c')

export interface RecordFilter {
  start: Date | null
  end: Date | null
  userId: string | null
  username: string | null
  model: string | null
  provider: string | null
  apiKeyId: string | null
  /** statuses allowed, null = any */
  statuses: string[] | null
  isStream: boolean | null
  /** failed or status_code >= 400 */
  errorsOnly: boolean
  /** ILIKE patterns (wildcards already escaped), all of which must match; at most KEYWORD_SLOTS */
  patterns: string[]
  /** what one of the patterns matches, as ids: its rows are found through their indexes (see searchPage) */
  driver?: KeywordMatch | null
  /** with a driver: what each pattern matches, in order, so the driven rows are tested on their own columns */
  keywords?: KeywordMatch[]
}

/** A filter whose names are resolved to ids (resolveNames), so usage is only ever read through id indexes. */
export type ResolvedFilter = RecordFilter & {
  /** the users whose username contains `username` (null: no such filter) */
  namedUserIds: string[] | null
  /** the providers whose name contains `provider` */
  providerIds: string[] | null
  /** the models of usage whose name contains `model` */
  models: string[] | null
}

/** What each name filter matches (null when not given); its pattern is an ILIKE pattern, wildcards escaped. */
export interface ResolvedNames { userIds: string[] | null, providerIds: string[] | null, models: string[] | null }

/**
 * usage's distinct models, read by a loose scan of usage (model, created_at): one index
 * probe per model, however many rows. Follows WITH.
 */
const KNOWN_MODELS = raw(`RECURSIVE models AS (
      SELECT min(model) AS model FROM usage
      UNION ALL
      SELECT (SELECT min(u.model) FROM usage u WHERE u.model > m.model) FROM models m WHERE m.model IS NOT NULL
    ), known AS MATERIALIZED (SELECT model FROM models WHERE model IS NOT NULL)`)

/**
 * The users, providers and models whose names match the filters' patterns (substrings,
 * case-insensitive), all in one statement over the small tables and usage's distinct
 * models (KNOWN_MODELS), so usage itself is then read through its id indexes.
 */
export async function resolveNames (db: Sql, patterns: { username: string | null, provider: string | null, model: string | null }): Promise<ResolvedNames> {
  const { username, provider, model } = patterns
  if (username === null && provider === null && model === null) return { userIds: null, providerIds: null, models: null }
  const list = (pattern: string | null, query: Fragment) => pattern === null ? raw('NULL::text[]') : sql`ARRAY(${query})`
  const { rows } = await db.query<{ user_ids: string[] | null, provider_ids: string[] | null, models: string[] | null }>(sql`
    ${model === null ? empty : sql`WITH ${KNOWN_MODELS}`}
    SELECT ${list(username, sql`SELECT id::text FROM users WHERE username ILIKE ${username}`)} AS user_ids,
           ${list(provider, sql`SELECT id::text FROM providers WHERE name ILIKE ${provider}`)} AS provider_ids,
           ${list(model, sql`SELECT model FROM known WHERE model ILIKE ${model}`)} AS models`)
  return { userIds: rows[0]!.user_ids, providerIds: rows[0]!.provider_ids, models: rows[0]!.models }
}

/** At most this many search keywords, each of which must match. */
export const KEYWORD_SLOTS = 10

/** The names a row shows and a keyword matches, joined to usage (alias u). */
const RECORD_JOINS = raw(`
  LEFT JOIN users us ON us.id = u.user_id
  LEFT JOIN api_keys k ON k.id = u.api_key_id
  LEFT JOIN providers p ON p.id = u.provider_id`)

const RECORD_FROM = sql`
  FROM usage u ${RECORD_JOINS}`

/** The provider key a row was served with (RECORD_COLUMNS' pk), joined for shown rows only: no filter reads it. provider_api_keys primary key. */
const PROVIDER_KEY_JOIN = raw('LEFT JOIN provider_api_keys pk ON pk.id = u.provider_api_key_id')

/** `WHERE` and every condition (`true` for none), so more can follow with AND. */
const whereAll = (conditions: Fragment[]): Fragment => sql`WHERE ${conditions.length === 0 ? raw('true') : join(conditions, '\n    AND ')}`

/**
 * The filter's own conditions, those given only: ids (names resolved first, resolveNames)
 * so each can use its index: usage (user_id, created_at), (model, created_at),
 * (provider_id, created_at), (api_key_id, created_at), (status).
 */
function filterConditions (f: ResolvedFilter): Fragment[] {
  return [...rangeConditions(f), ...matchConditions(f)]
}

/** The filter's time range, which every `usage (…, created_at)` index serves with the order. */
function rangeConditions (f: ResolvedFilter): Fragment[] {
  return [
    f.start === null ? null : sql`u.created_at >= ${f.start}::timestamptz`,
    f.end === null ? null : sql`u.created_at < ${f.end}::timestamptz`
  ].filter((condition) => condition !== null)
}

/** A column among a name filter's ids: a plain equality for one, so its index walks in order as before. */
function oneOf (column: 'user_id' | 'model' | 'provider_id', values: string[] | null, type: 'uuid' | 'text'): Fragment | null {
  if (values === null) return null
  return values.length === 1 ? sql`u.${raw(column)} = ${values[0]}::${raw(type)}` : sql`u.${raw(column)} = ANY(${values}::${raw(type)}[])`
}

/** The filter's conditions but the range. */
function matchConditions (f: ResolvedFilter): Fragment[] {
  return [
    f.userId === null ? null : sql`u.user_id = ${f.userId}::uuid`,
    oneOf('user_id', f.namedUserIds, 'uuid'),
    oneOf('model', f.models, 'text'),
    oneOf('provider_id', f.providerIds, 'uuid'),
    f.apiKeyId === null ? null : sql`u.api_key_id = ${f.apiKeyId}::uuid`,
    f.statuses === null ? null : sql`u.status = ANY(${f.statuses}::usage_status[])`,
    f.isStream === null ? null : sql`u.is_stream = ${f.isStream}::boolean`,
    f.errorsOnly ? sql`(u.status = 'failed' OR u.status_code >= 400)` : null
  ].filter((condition) => condition !== null)
}

/**
 * Search keywords: each must match one of the four fields. Written out as plain column
 * ILIKE constant, each gets the columns' statistics, so for a common word the planner
 * walks usage (created_at) backwards to fill the page instead of sorting every match.
 */
const keywordCondition = (pattern: string): Fragment =>
  sql`(us.username ILIKE ${pattern} OR k.name ILIKE ${pattern} OR u.model ILIKE ${pattern} OR COALESCE(p.name, u.provider_name) ILIKE ${pattern})`

/** The filter over usage joined to its names (RECORD_FROM): its conditions and every keyword's. */
export const recordWhere = (f: ResolvedFilter): Fragment => whereAll([...filterConditions(f), ...f.patterns.map(keywordCondition)])

/** has_fallback: more than one candidate actually sent; request_candidates (request_id, …) in the row's month. Needs RECORD_JOINS and PROVIDER_KEY_JOIN. */
const RECORD_COLUMNS = sql`
  u.id, u.request_id, u.user_id, us.username, us.email, u.api_key_id, k.name AS api_key_name, k.key_prefix AS api_key_display,
  u.provider_id, COALESCE(p.name, u.provider_name) AS provider, u.provider_api_key_id, pk.name AS provider_key_name, u.rate_multiplier::text AS rate_multiplier,
  u.model, u.target_model, u.api_format, u.is_stream, u.status::text AS status,
  u.status_code, u.error_message, u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.total_tokens,
  u.total_cost, u.actual_total_cost, u.response_time_ms, u.first_byte_time_ms, u.created_at, u.metadata,
  (SELECT count(*) FROM request_candidates c WHERE ${candidatesOfSql('c', 'u')} AND ${EXECUTED}) > 1 AS has_fallback`

export interface RecordRow {
  id: string
  request_id: string
  user_id: string | null
  username: string | null
  email: string | null
  api_key_id: string | null
  api_key_name: string | null
  api_key_display: string | null
  provider_id: string | null
  provider: string | null
  provider_api_key_id: string | null
  /** the provider key's name (not the caller's key) */
  provider_key_name: string | null
  /** numeric as text */
  rate_multiplier: string
  model: string
  target_model: string | null
  api_format: string | null
  is_stream: boolean
  status: string
  status_code: number | null
  error_message: string | null
  input_tokens: number
  output_tokens: number
  cache_creation_input_tokens: number
  cache_read_input_tokens: number
  total_tokens: number
  total_cost: string
  actual_total_cost: string
  response_time_ms: number | null
  first_byte_time_ms: number | null
  created_at: Date
  metadata: unknown
  has_fallback: boolean
}

/** What a keyword matches in the small tables: usernames, key names, provider names, and the models in usage. */
export interface KeywordMatch { pattern: string, users: string[], keys: string[], providers: string[], models: string[] }

/**
 * Resolves keywords to ids, all in one statement. The models are usage's distinct
 * models, read once by a loose scan of usage (model, created_at): one index probe per
 * model, however many rows. For one user's rows (`userId`), only that user and their
 * keys can match: another's key would only lead to rows the user filter then drops.
 */
export async function keywordMatches (db: Sql, patterns: string[], userId: string | null = null): Promise<KeywordMatch[]> {
  const { rows } = await db.query<KeywordMatch & { n: string }>(sql`
    WITH ${KNOWN_MODELS}
    SELECT k.n, k.pattern,
           ARRAY(SELECT id::text FROM users WHERE username ILIKE k.pattern ${userId === null ? empty : sql`AND id = ${userId}::uuid`}) AS users,
           ARRAY(SELECT id::text FROM api_keys WHERE name ILIKE k.pattern ${userId === null ? empty : sql`AND user_id = ${userId}::uuid`}) AS keys,
           ARRAY(SELECT id::text FROM providers WHERE name ILIKE k.pattern) AS providers,
           ARRAY(SELECT model FROM known WHERE model ILIKE k.pattern) AS models
      FROM unnest(${patterns}::text[]) WITH ORDINALITY AS k(pattern, n)
     ORDER BY k.n`)
  return rows.map(({ n: _n, ...match }) => match)
}

/**
 * Whether a row of a deleted provider (provider_id cleared, provider_name kept) has a
 * name matching `pattern`: the one way a keyword matching no id still matches rows.
 * usage (provider_id, created_at) finds the rows whose provider is gone.
 */
export async function goneProviderMatches (db: Sql, pattern: string): Promise<boolean> {
  const { rows } = await db.query<{ found: boolean }>(
    sql`SELECT EXISTS (SELECT 1 FROM usage u WHERE u.provider_id IS NULL AND u.provider_name ILIKE ${pattern}) AS found`)
  return rows[0]!.found
}

/** The planner's estimate of the usage rows a keyword's ids select (usage's statistics on each column). */
export async function estimateKeyword (db: Sql, match: KeywordMatch): Promise<number> {
  return await planRows(db, sql`
    SELECT 1 FROM usage u
     WHERE u.user_id = ANY(${match.users}::uuid[]) OR u.api_key_id = ANY(${match.keys}::uuid[]) OR u.model = ANY(${match.models}::text[])
        OR u.provider_id = ANY(${match.providers}::uuid[])`)
}

/**
 * Each keyword tested on a driven row's own columns against the ids it resolved to, not
 * by ILIKE on joined names: a branch may read several rows per match, and the joins and
 * eight ILIKEs were most of each row's cost. The driver's own keyword is left out: every
 * driven row matches it by construction, and a second test of it would only make the
 * planner think each branch's rows rarer than they are (it then prefers a bitmap of all
 * the driver's rows to the branch's newest-first index walk).
 */
function drivenWhere (filter: ResolvedFilter): Fragment {
  const keywords = filter.keywords!
  const own = keywords.findIndex((k) => k.pattern === filter.driver!.pattern)
  const resolved = keywords.filter((_, i) => i !== own).map((k) => sql`(u.user_id = ANY(${k.users}::uuid[]) OR u.api_key_id = ANY(${k.keys}::uuid[])
      OR u.model = ANY(${k.models}::text[]) OR u.provider_id = ANY(${k.providers}::uuid[]) OR (u.provider_id IS NULL AND u.provider_name ILIKE ${k.pattern}))`)
  return whereAll([...filterConditions(filter), ...resolved])
}

/**
 * The rows matching the filter, found through one keyword (the driver): every row it
 * matches has one of its users, keys, models or providers — or, provider gone, a
 * matching provider_name — so each of those is read newest first through its own
 * index (usage (user_id | api_key_id | model | provider_id, created_at)), with every
 * filter applied, at most `perBranch` rows each; their union holds the newest
 * `perBranch` matches.
 */
export function drivenRows (filter: ResolvedFilter, perBranch: number): Fragment {
  const driver = filter.driver!
  const where = drivenWhere(filter)
  const branch = (values: Fragment, column: string) => sql`
      SELECT x.id, x.created_at FROM unnest(${values}) AS v(value) CROSS JOIN LATERAL (
        SELECT u.id, u.created_at FROM usage u ${where} AND u.${raw(column)} = v.value
         ORDER BY u.created_at DESC, u.id DESC LIMIT ${perBranch}
      ) x`
  return sql`
    SELECT id, created_at FROM (${branch(sql`${driver.users}::uuid[]`, 'user_id')}
      UNION ${branch(sql`${driver.keys}::uuid[]`, 'api_key_id')}
      UNION ${branch(sql`${driver.models}::text[]`, 'model')}
      UNION ${branch(sql`${driver.providers}::uuid[]`, 'provider_id')}
      UNION (
        SELECT u.id, u.created_at FROM usage u ${where} AND u.provider_id IS NULL AND u.provider_name ILIKE ${driver.pattern}
         ORDER BY u.created_at DESC, u.id DESC LIMIT ${perBranch})
    ) d`
}

/** Name filters matching more ids than this are not fanned out (fanOut): each id costs an index walk of up to a page. */
export const FAN_OUT_MAX = 64

/** The ids a name filter matched that lead one index walk each, with their column, or null. */
function fanOut (f: ResolvedFilter): { column: string, values: Fragment, field: 'namedUserIds' | 'providerIds' | 'models' } | null {
  // one user, key, provider or model is walked newest first through its own index already; in-flight rows are a handful (the partial status index)
  if (f.userId !== null || f.apiKeyId !== null) return null
  if (f.statuses !== null && f.statuses.every((s) => (IN_FLIGHT_STATUSES as readonly string[]).includes(s))) return null
  const lists = [
    { column: 'user_id', ids: f.namedUserIds, values: sql`${f.namedUserIds}::uuid[]`, field: 'namedUserIds' as const },
    { column: 'provider_id', ids: f.providerIds, values: sql`${f.providerIds}::uuid[]`, field: 'providerIds' as const },
    { column: 'model', ids: f.models, values: sql`${f.models}::text[]`, field: 'models' as const }
  ].filter((list) => list.ids !== null)
  if (lists.length === 0 || lists.some((list) => list.ids!.length === 1)) return null
  const fewest = lists.reduce((a, b) => b.ids!.length < a.ids!.length ? b : a)
  return fewest.ids!.length > FAN_OUT_MAX ? null : fewest
}

/**
 * The page's ids and times. Through a search driver (drivenRows); for a name filter that
 * matched several ids (fanOut), the newest `limit + offset` rows of each id through
 * usage (user_id | provider_id | model, created_at), whose union holds the page; else
 * one walk, which the planner picks.
 */
function pageRows (filter: ResolvedFilter, limit: number, offset: number): Fragment {
  if (filter.driver !== undefined && filter.driver !== null) {
    return sql`${drivenRows(filter, limit + offset)} ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${offset}`
  }
  const fan = fanOut(filter)
  if (fan === null) return sql`SELECT u.id, u.created_at ${RECORD_FROM} ${recordWhere(filter)} ORDER BY u.created_at DESC, u.id DESC LIMIT ${limit} OFFSET ${offset}`
  // the fanned list's own ANY is left out (each branch matches it by construction). The branch's id is bounded on both sides, not equated, and
  // ordered on first: an equality would make that order key redundant, and the planner could then walk usage (created_at) testing the id, reading
  // every newer row of other ids; this way only usage (column, created_at) serves the order
  return sql`
      SELECT x.id, x.created_at FROM unnest(${fan.values}) AS v(value) CROSS JOIN LATERAL (
        SELECT u.id, u.created_at ${RECORD_FROM} ${recordWhere({ ...filter, [fan.field]: null })} AND u.${raw(fan.column)} >= v.value AND u.${raw(fan.column)} <= v.value
         ORDER BY u.${raw(fan.column)} DESC, u.created_at DESC, u.id DESC LIMIT ${limit + offset}
      ) x
     ORDER BY x.created_at DESC, x.id DESC LIMIT ${limit} OFFSET ${offset}`
}

/** One page, newest first; the page's ids first, so has_fallback runs for those rows only. */
export async function recordPage (db: Sql, filter: ResolvedFilter, limit: number, offset: number): Promise<RecordRow[]> {
  const page = pageRows(filter, limit, offset)
  const { rows } = await db.query<RecordRow>(sql`
    WITH page AS (
      ${page}
    )
    SELECT ${RECORD_COLUMNS}
      FROM page JOIN usage u ON u.id = page.id AND u.created_at = page.created_at
      LEFT JOIN users us ON us.id = u.user_id
      LEFT JOIN api_keys k ON k.id = u.api_key_id
      LEFT JOIN providers p ON p.id = u.provider_id
      ${PROVIDER_KEY_JOIN}
     ORDER BY page.created_at DESC, page.id DESC`)
  return rows
}

/** A count bounded by the rows it examines: the matches among them, and whether they were every candidate. */
export interface BoundedCount { matched: number, complete: boolean }

/**
 * The one indexed condition a bounded count walks newest first, with the range: the
 * one with the fewest rows by nature (in-flight rows are a handful: the partial status
 * index), then a key's, a user's, a provider's, a model's; null walks usage
 * (created_at). Every other condition is tested on the walked rows only.
 */
function walkCondition (f: ResolvedFilter): Fragment | null {
  if (f.statuses !== null && f.statuses.every((s) => (IN_FLIGHT_STATUSES as readonly string[]).includes(s))) return inFlightSql('u')
  // a name filter that matched several ids is tested on the walked rows (an index walk of several ids is not in time order)
  const single = (ids: string[] | null) => ids !== null && ids.length === 1 ? ids[0]! : null
  const user = f.userId ?? single(f.namedUserIds)
  const provider = single(f.providerIds)
  const model = single(f.models)
  return f.apiKeyId !== null
    ? sql`u.api_key_id = ${f.apiKeyId}::uuid`
    : user !== null
      ? sql`u.user_id = ${user}::uuid`
      : provider !== null
        ? sql`u.provider_id = ${provider}::uuid`
        : model !== null ? sql`u.model = ${model}::text` : null
}

/**
 * The rows a bounded count walks: the range and the walk condition, or through a driver
 * the rows of each of its ids and those of deleted providers (whose names it tests).
 */
function candidatesWhere (f: ResolvedFilter): Fragment {
  const driver = f.driver
  if (driver === undefined || driver === null) {
    const walk = walkCondition(f)
    return whereAll([...rangeConditions(f), ...(walk === null ? [] : [walk])])
  }
  return whereAll([...rangeConditions(f), sql`(u.user_id = ANY(${driver.users}::uuid[]) OR u.api_key_id = ANY(${driver.keys}::uuid[])
    OR u.model = ANY(${driver.models}::text[]) OR u.provider_id = ANY(${driver.providers}::uuid[]) OR u.provider_id IS NULL)`])
}

/** The planner's estimate of the rows a bounded count would walk (candidatesWhere) were it not bounded. */
export async function estimateCandidates (db: Sql, filter: ResolvedFilter): Promise<number> {
  return await planRows(db, sql`SELECT 1 FROM usage u ${candidatesWhere(filter)}`)
}

interface EstimatedNode { 'Plan Rows': number, 'Relation Name'?: string, Plans?: EstimatedNode[] }

/** The relations a plan scans that the planner expects one row of at most (its floor for any scan, an empty one too). */
const scannedAtFloor = (node: EstimatedNode): string[] => [
  ...(node['Relation Name'] !== undefined && node['Plan Rows'] <= 1 ? [node['Relation Name']] : []),
  ...(node.Plans ?? []).flatMap(scannedAtFloor)
]

/**
 * The planner's row estimate of `query`. It counts at least one row for every monthly
 * partition it scans, an empty one too (the months ahead, the default): those guesses are
 * taken back, so an estimate over partitions is what it was over one table.
 */
async function planRows (db: Sql, query: Fragment): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': Array<{ Plan: EstimatedNode }> }>(sql`EXPLAIN (FORMAT JSON) ${query}`)
  const plan = rows[0]!['QUERY PLAN'][0]!.Plan
  const floors = scannedAtFloor(plan)
  if (floors.length === 0) return Math.round(plan['Plan Rows'])
  const { rows: [empty] } = await db.query<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM unnest(${floors}::text[]) AS r(name) WHERE pg_relation_size(to_regclass(quote_ident(r.name))) = 0`)
  return Math.max(0, Math.round(plan['Plan Rows']) - empty!.n)
}

/** The usage columns the bounded counts test (filterConditions and drivenWhere's keyword tests). */
const WALKED_COLUMNS = raw('u.id, u.created_at, u.user_id, u.api_key_id, u.model, u.provider_id, u.provider_name, u.status, u.status_code, u.is_stream')

/**
 * The statement of a count bounded by work: at most `bound` + 1 candidate rows are read,
 * the newest of the walk condition's index (through a driver, its branches' indexes in
 * turn, the walk stopping at `bound` + 1 in all), and the filter is tested on those alone.
 * Columns: `matched` among them, and `walked`; at most `bound` walked means every
 * candidate was seen, so `matched` is exact.
 */
export function boundedCountStatement (filter: ResolvedFilter, bound: number): Fragment {
  const driver = filter.driver
  if (driver === undefined || driver === null) {
    const rest = [...matchConditions(filter), ...filter.patterns.map(keywordCondition)]
    // usage (api_key_id | user_id | provider_id | model, created_at), usage_in_flight_key_idx, or usage (created_at), walked backwards
    return sql`
      SELECT count(*) FILTER (WHERE ${rest.length === 0 ? raw('true') : join(rest, ' AND ')})::int AS matched, count(*)::int AS walked
        FROM (SELECT ${WALKED_COLUMNS} FROM usage u ${candidatesWhere(filter)}
               ORDER BY u.created_at DESC LIMIT ${bound + 1}) u ${filter.patterns.length === 0 ? empty : RECORD_JOINS}`
  }
  const range = whereAll(rangeConditions(filter))
  // the driver's ids through usage (user_id | api_key_id | model | provider_id, created_at), each walked backwards
  const branch = (values: Fragment, column: string) => sql`
      SELECT 0 AS gone, x.* FROM unnest(${values}) AS v(value) CROSS JOIN LATERAL (
        SELECT ${WALKED_COLUMNS} FROM usage u ${range} AND u.${raw(column)} = v.value ORDER BY u.created_at DESC LIMIT ${bound + 1}
      ) x`
  return sql`
    WITH walked AS MATERIALIZED (
      SELECT * FROM (${branch(sql`${driver.users}::uuid[]`, 'user_id')}
        UNION ALL ${branch(sql`${driver.keys}::uuid[]`, 'api_key_id')}
        UNION ALL ${branch(sql`${driver.models}::text[]`, 'model')}
        UNION ALL ${branch(sql`${driver.providers}::uuid[]`, 'provider_id')}
        UNION ALL (
          SELECT 1, ${WALKED_COLUMNS} FROM usage u ${range} AND u.provider_id IS NULL ORDER BY u.created_at DESC LIMIT ${bound + 1})
      ) b LIMIT ${bound + 1}
    )
    SELECT (SELECT count(DISTINCT u.id) FROM walked u ${drivenWhere(filter)} AND (u.gone = 0 OR u.provider_name ILIKE ${driver.pattern}))::int AS matched,
           (SELECT count(*) FROM walked)::int AS walked`
}

/**
 * How many rows match, and whether that is all of them (boundedCountStatement read every
 * candidate). The walk is planned with sorts off: over monthly partitions, PostgreSQL would
 * otherwise read every candidate of a partition and sort them whenever its statistics
 * undercount them (the index scans of the empty months ahead tip it), and the bound on work
 * would not hold; without a sort, only the ordered index walks can feed the LIMIT.
 */
export async function countRecords (db: SqlPool, filter: ResolvedFilter, bound: number): Promise<BoundedCount> {
  return await inTransaction(db, async (client) => {
    await client.query(`SELECT set_config('enable_sort', 'off', true)`)
    const { rows: [counted] } = await client.query<{ matched: number, walked: number }>(boundedCountStatement(filter, bound))
    return { matched: counted!.matched, complete: counted!.walked <= bound }
  })
}

/** The planner's estimate of the matching rows. */
export async function estimateRecords (db: Sql, filter: ResolvedFilter): Promise<number> {
  return await planRows(db, sql`SELECT 1 ${RECORD_FROM} ${recordWhere(filter)}`)
}

export type DetailRow = RecordRow & Record<
  'input_cost' | 'output_cost' | 'cache_creation_cost' | 'cache_read_cost' | 'request_cost' | 'actual_input_cost' | 'actual_output_cost' |
  'actual_cache_creation_cost' | 'actual_cache_read_cost' | 'actual_request_cost', string> & Record<
  'input_price_per_1m' | 'output_price_per_1m' | 'cache_write_5m_price_per_1m' | 'cache_write_1h_price_per_1m' | 'cache_read_price_per_1m' |
  'price_per_request', string | null> & {
    cache_creation_5m_input_tokens: number
    cache_creation_1h_input_tokens: number
    provider_endpoint_id: string | null
    pricing_source: string | null
    /** the price version that priced the row, from its snapshot (null when unpriced): with the tokens, the tier facts */
    model_price_id: string | null
    price_provider_id: string | null
    price_tiers: StoredTier[] | null
    finished_at: Date | null
    request_headers: unknown
    response_headers: unknown
    request_body: unknown
    response_body: unknown
  }

/** One usage row with everything about it; `userId` scopes it to its owner. usage primary key, usage_bodies (usage_id, created_at) in each monthly partition, price_snapshots and price_snapshot_tiers primary keys. */
export async function usageDetail (db: Sql, id: string, userId: string | null): Promise<DetailRow | undefined> {
  const query = sql`
    SELECT ${RECORD_COLUMNS},
           u.cache_creation_5m_input_tokens, u.cache_creation_1h_input_tokens, u.provider_endpoint_id,
           u.input_cost, u.output_cost, u.cache_creation_cost, u.cache_read_cost, u.request_cost,
           ${raw(storedActualCostsSql('u'))},
           ${raw(tierPricesSql())}, ${raw(pricingSourceSql('u'))} AS pricing_source,
           s.id AS model_price_id, s.provider_id AS price_provider_id, s.tiers AS price_tiers, u.finished_at,
           b.request_headers, b.response_headers, b.request_body, b.response_body
      ${RECORD_FROM}
      ${PROVIDER_KEY_JOIN}
      LEFT JOIN usage_bodies b ON b.usage_id = u.id
      LEFT JOIN price_snapshots s ON s.id = u.model_price_id
      ${raw(tierPricesJoinSql('u'))}
     WHERE u.id = ${id} AND (${userId}::uuid IS NULL OR u.user_id = ${userId}::uuid)`
  // planned once per connection: planning was half of this lookup's time (the text is fixed)
  const { rows } = await db.query<DetailRow>({ name: 'usage-detail', text: query.text, values: query.values })
  return rows[0]
}

export interface CandidateRow {
  candidate_index: number
  retry_index: number
  provider_id: string | null
  provider: string | null
  provider_endpoint_id: string | null
  provider_api_key_id: string | null
  status: string
  skip_reason: string | null
  is_cached: boolean
  status_code: number | null
  error_type: string | null
  error_message: string | null
  latency_ms: number | null
  started_at: Date | null
  finished_at: Date | null
}

/** The candidates of the usage row `usageId` (usage primary key, then request_candidates (request_id, …) in its month), so they can be read beside the row. */
export async function requestCandidates (db: Sql, usageId: string): Promise<CandidateRow[]> {
  const query = sql`
    SELECT c.candidate_index, c.retry_index, c.provider_id, p.name AS provider, c.provider_endpoint_id, c.provider_api_key_id,
           c.status::text AS status, c.skip_reason, c.is_cached, c.status_code, c.error_type, c.error_message, c.latency_ms,
           c.started_at, c.finished_at
      FROM usage u
      JOIN request_candidates c ON ${candidatesOfSql('c', 'u')}
      LEFT JOIN providers p ON p.id = c.provider_id
     WHERE u.id = ${usageId}
     ORDER BY c.candidate_index, c.retry_index`
  const { rows } = await db.query<CandidateRow>({ name: 'usage-detail-candidates', text: query.text, values: query.values })
  return rows
}

/** Where an export page resumes: the last row sent, its created_at as PostgreSQL's text (microseconds, which a Date would round away). */
export interface ExportCursor { at: string, id: string }

/**
 * One page of an export, newest first, after `after`: keyset on (created_at, id), so
 * every page costs its own rows, however deep (an OFFSET would reread every row before
 * it). usage (created_at), or usage (user_id | api_key_id | model | provider_id,
 * created_at) for a filter on one id, walked backwards from the cursor's instant; rows
 * sharing an instant are put in id order by an incremental sort.
 */
export async function exportPage (db: Sql, filter: ResolvedFilter, after: ExportCursor | null, limit: number): Promise<Array<RecordRow & { cursor_at: string }>> {
  const resume = after === null
    ? empty
    : sql`AND u.created_at <= ${after.at}::timestamptz AND (u.created_at < ${after.at}::timestamptz OR u.id < ${after.id}::uuid)`
  const { rows } = await db.query<RecordRow & { cursor_at: string }>(sql`
    SELECT ${RECORD_COLUMNS}, u.created_at::text AS cursor_at
      ${RECORD_FROM}
      ${PROVIDER_KEY_JOIN}
      ${recordWhere(filter)} ${resume}
     ORDER BY u.created_at DESC, u.id DESC
     LIMIT ${limit}`)
  return rows
}
