// Usage ingestion: a batch of gateway events (start, stream, complete) applied in one
// transaction. Set-based writes (one statement per table per batch) keep it fast;
// every row, rollup and charge of the batch commits together or not at all.
//
// Idempotency: each (request_id, event type) is received once (gateway_events); a
// replay is answered "duplicate" and changes nothing. Rollups and charges are written
// as deltas between a row's state before and after the batch, so a completion that
// replaces a timed-out row (swept to failed/504) corrects it instead of counting twice.
import type pg from 'pg'
import { Columns, type Column } from '../../db/columns.js'
import { KEY_DELETION_LOCK, prepared, type Sql } from '../../db/prisma.js'
import { uuidv7 } from '../../lib/crypto.js'
import { nanoToUsd } from '../../lib/money.js'
import { pickPrice, type PriceVersion } from '../prices/service.js'
import type { StoredTier } from '../prices/tiers.js'
import type { CompleteEventBody, EventResultBody, UsageEventBody } from '../gateway/schemas.js'
import { redactEvent } from '../../lib/redact.js'
import { multiplierMicros, priceRequest, splitCacheWrites, type Costs, type TieredPricing } from '../accounting/pricing.js'
import { recordCacheData } from '../accounting/cache/timeline.js'
import { RollupDeltas, writeTotals, type RollupSource, type SentCandidate } from '../accounting/rollups.js'
import { isFinished } from '../accounting/rules.js'

/** Bodies and headers kept per request, at most this many bytes each (as JSON). */
export const BODY_CAP_BYTES = 64 * 1024

/** The columns of a usage row that ingestion writes (snake_case, as in the table). */
interface RowState extends RollupSource {
  /** the row's primary key: read back, or made here (uuidv7 of created_at) for a new row */
  id: string
  requestId: string
  providerEndpointId: string | null
  providerApiKeyId: string | null
  providerName: string | null
  targetModel: string | null
  isStream: boolean
  statusCode: number | null
  errorMessage: string | null
  cacheCreation5m: number
  cacheCreation1h: number
  costs: Costs
  actual: Costs
  snapshot: { input: bigint, output: bigint, cacheWrite5m: bigint, cacheWrite1h: bigint, cacheRead: bigint, perRequest: bigint | null } | null
  pricingSource: string | null
  modelPriceId: string | null
  tieredPricing: unknown
  /** when ingestion priced the row: its tiered_pricing is the batch's shared part `tieredShared` plus its context (see sharedTier) */
  tieredShared?: number
  rateMultiplier: string
  firstByteTimeMs: number | null
  metadata: unknown
  finishedAt: Date | null
}

class Rejection extends Error {}

/** usage's cost columns are int8 nano-USD */
const MAX_COST_NANO = 2n ** 63n - 1n

/** The start fields, as a `start` carries them or a `complete` may. */
interface StartFields {
  request_id: string
  api_key_id?: string
  model?: string
  api_format?: string
  is_stream?: boolean
  provider_id?: string | null
  provider_endpoint_id?: string | null
  provider_api_key_id?: string | null
  created_at?: string
  target_model?: string | null
  metadata?: object
}

const ZERO_COSTS: Costs = { input: 0n, output: 0n, cacheCreation: 0n, cacheRead: 0n, request: 0n, total: 0n }

/** A usage row as node-postgres returns it (bigint and numeric columns as strings). */
type UsageRow = Record<string, unknown> & { request_id: string }

const big = (value: unknown) => BigInt(value as string)
const bigOrNull = (value: unknown) => value === null ? null : BigInt(value as string)

/** Each cost and the usage column it is stored in (`actual_` + the column for the actual cost). */
const COST_COLUMNS: Array<[keyof Costs, string]> = [
  ['input', 'input_cost'], ['output', 'output_cost'], ['cacheCreation', 'cache_creation_cost'],
  ['cacheRead', 'cache_read_cost'], ['request', 'request_cost'], ['total', 'total_cost']
]

function fromRow (row: UsageRow): RowState {
  const costs = (prefix: string): Costs => {
    const read = { ...ZERO_COSTS }
    for (const [field, column] of COST_COLUMNS) read[field] = big(row[`${prefix}${column}`])
    return read
  }
  const state: RowState = {
    id: row.id as string,
    requestId: row.request_id,
    userId: row.user_id as string | null,
    apiKeyId: row.api_key_id as string | null,
    providerId: row.provider_id as string | null,
    providerEndpointId: row.provider_endpoint_id as string | null,
    providerApiKeyId: row.provider_api_key_id as string | null,
    providerName: row.provider_name as string | null,
    model: row.model as string,
    targetModel: row.target_model as string | null,
    apiFormat: row.api_format as string | null,
    isStream: row.is_stream as boolean,
    status: row.status as string,
    statusCode: row.status_code as number | null,
    errorMessage: row.error_message as string | null,
    inputTokens: row.input_tokens as number,
    outputTokens: row.output_tokens as number,
    cacheCreationTokens: row.cache_creation_input_tokens as number,
    cacheCreation5m: row.cache_creation_5m_input_tokens as number,
    cacheCreation1h: row.cache_creation_1h_input_tokens as number,
    cacheReadTokens: row.cache_read_input_tokens as number,
    totalTokens: row.total_tokens as number,
    costs: costs(''),
    actual: costs('actual_'),
    cacheCreationCost: 0n,
    cacheReadCost: 0n,
    totalCost: 0n,
    actualTotalCost: 0n,
    snapshot: row.input_price_per_1m === null
      ? null
      : {
          input: big(row.input_price_per_1m),
          output: big(row.output_price_per_1m),
          cacheWrite5m: big(row.cache_write_5m_price_per_1m),
          cacheWrite1h: big(row.cache_write_1h_price_per_1m),
          cacheRead: big(row.cache_read_price_per_1m),
          perRequest: bigOrNull(row.price_per_request)
        },
    pricingSource: row.pricing_source as string | null,
    modelPriceId: row.model_price_id as string | null,
    tieredPricing: row.tiered_pricing,
    rateMultiplier: String(row.rate_multiplier),
    responseTimeMs: row.response_time_ms as number | null,
    firstByteTimeMs: row.first_byte_time_ms as number | null,
    metadata: row.metadata,
    createdAt: row.created_at as Date,
    finishedAt: row.finished_at as Date | null
  }
  state.cacheCreationCost = state.costs.cacheCreation
  state.cacheReadCost = state.costs.cacheRead
  state.totalCost = state.costs.total
  state.actualTotalCost = state.actual.total
  return state
}

/** Caps a stored body: past the cap only its size is kept. */
function capped (value: unknown): unknown {
  if (value === undefined) return null
  const text = JSON.stringify(value)
  const bytes = Buffer.byteLength(text)
  return bytes <= BODY_CAP_BYTES ? value : { truncated: true, bytes }
}

interface ProviderKeyRow { id: string, provider_id: string, rate_multiplier: string, cache_ttl_minutes: number }
interface PriceRow { id: string, model: string, provider_id: string | null, tiers: StoredTier[], price_per_request: string | null, effective_from: string }

interface Lookups {
  keys: Map<string, { id: string, user_id: string }>
  providers: Map<string, { id: string, name: string, billing_type: string }>
  endpoints: Map<string, { id: string, provider_id: string }>
  providerKeys: Map<string, ProviderKeyRow>
  prices: PriceVersion[]
  /** per batch: the parts of tiered_pricing shared by one price version's tier, as JSON, and their index by tier */
  tieredShared: { json: string[], index: Map<string, number> }
}

async function loadLookups (db: Sql, events: UsageEventBody[], existing: RowState[]): Promise<Lookups> {
  const collect = (...lists: Array<Array<string | null | undefined>>) => [...new Set(lists.flat().filter((id): id is string => typeof id === 'string'))]
  const starts = events as StartFields[]
  const candidates = events.flatMap((e) => e.type === 'complete' ? e.candidates ?? [] : [])
  const keyIds = collect(starts.map((e) => e.api_key_id))
  const providerKeyIds = collect(starts.map((e) => e.provider_api_key_id), existing.map((r) => r.providerApiKeyId), candidates.map((c) => c.provider_api_key_id))
  const endpointIds = collect(starts.map((e) => e.provider_endpoint_id), existing.map((r) => r.providerEndpointId), candidates.map((c) => c.provider_endpoint_id))
  const models = collect(starts.map((e) => e.model), existing.map((r) => r.model))
  const providerIds = collect(starts.map((e) => e.provider_id), candidates.map((c) => c.provider_id), existing.map((r) => r.providerId))
  // One statement (a round trip per table cost a single event a tenth of its time).
  // FOR KEY SHARE is the lock a foreign key check takes: what a batch's rows reference
  // cannot be deleted before it commits (usage has no foreign keys; see the migration
  // usage_references_by_trigger). Providers include those of the named keys and endpoints.
  const { rows: [found] } = await db.query<{
    keys: Array<{ id: string, user_id: string }>, provider_keys: ProviderKeyRow[],
    endpoints: Array<{ id: string, provider_id: string }>, providers: Array<{ id: string, name: string, billing_type: string }>, prices: PriceRow[]
  }>(`
    WITH k AS (
      SELECT k.id, k.user_id FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ANY($1::uuid[]) FOR KEY SHARE
    ), pk AS (
      SELECT id, provider_id, rate_multiplier::text AS rate_multiplier, cache_ttl_minutes FROM provider_api_keys WHERE id = ANY($2::uuid[]) FOR KEY SHARE
    ), ep AS (
      SELECT id, provider_id FROM provider_endpoints WHERE id = ANY($3::uuid[]) FOR KEY SHARE
    ), pv AS (
      SELECT id, name, billing_type FROM providers
       WHERE id = ANY($4::uuid[]) OR id IN (SELECT provider_id FROM pk) OR id IN (SELECT provider_id FROM ep)
         FOR KEY SHARE
    ), mp AS (
      SELECT id, model, provider_id, tiers, price_per_request::text AS price_per_request, effective_from FROM model_prices WHERE model = ANY($5::text[])
    )
    SELECT (SELECT coalesce(json_agg(k), '[]') FROM k) AS keys, (SELECT coalesce(json_agg(pk), '[]') FROM pk) AS provider_keys,
           (SELECT coalesce(json_agg(ep), '[]') FROM ep) AS endpoints, (SELECT coalesce(json_agg(pv), '[]') FROM pv) AS providers,
           (SELECT coalesce(json_agg(mp), '[]') FROM mp) AS prices`, [keyIds, providerKeyIds, endpointIds, providerIds, models])
  const byId = <T extends { id: string }>(rows: T[]) => new Map(rows.map((row) => [row.id, row]))
  return {
    keys: byId(found!.keys),
    providers: byId(found!.providers),
    endpoints: byId(found!.endpoints),
    providerKeys: byId(found!.provider_keys),
    prices: found!.prices.map((p) => ({
      id: p.id,
      model: p.model,
      providerId: p.provider_id,
      tiers: p.tiers,
      pricePerRequest: bigOrNull(p.price_per_request),
      effectiveFrom: new Date(p.effective_from)
    })),
    tieredShared: { json: [], index: new Map() }
  }
}

/** A new pending row from start fields (a `start`, or a `complete` that carries them). */
function newRow (event: StartFields, lookups: Lookups, now: Date): RowState {
  if (event.api_key_id === undefined || event.model === undefined) throw new Rejection('unknown request: send its start, or api_key_id and model with the completion')
  const key = lookups.keys.get(event.api_key_id)
  if (key === undefined) throw new Rejection(`unknown api_key_id ${event.api_key_id}`)
  const createdAt = event.created_at === undefined ? now : new Date(event.created_at)
  const row: RowState = {
    id: uuidv7(createdAt.getTime()),
    requestId: event.request_id,
    userId: key.user_id,
    apiKeyId: key.id,
    providerId: null,
    providerEndpointId: null,
    providerApiKeyId: null,
    providerName: null,
    model: event.model,
    targetModel: event.target_model ?? null,
    apiFormat: event.api_format ?? null,
    isStream: event.is_stream ?? false,
    status: 'pending',
    statusCode: null,
    errorMessage: null,
    inputTokens: 0,
    outputTokens: 0,
    cacheCreationTokens: 0,
    cacheCreation5m: 0,
    cacheCreation1h: 0,
    cacheReadTokens: 0,
    totalTokens: 0,
    costs: ZERO_COSTS,
    actual: ZERO_COSTS,
    cacheCreationCost: 0n,
    cacheReadCost: 0n,
    totalCost: 0n,
    actualTotalCost: 0n,
    snapshot: null,
    pricingSource: null,
    modelPriceId: null,
    tieredPricing: null,
    rateMultiplier: '1',
    responseTimeMs: null,
    firstByteTimeMs: null,
    metadata: event.metadata ?? null,
    createdAt,
    finishedAt: null
  }
  applyProvider(row, event, lookups)
  return row
}

/** Resolves the provider from the most specific id given (provider key → endpoint → provider). */
function applyProvider (row: RowState, event: StartFields, lookups: Lookups): void {
  const keyId = event.provider_api_key_id ?? row.providerApiKeyId
  const endpointId = event.provider_endpoint_id ?? row.providerEndpointId
  const providerKey = keyId === null ? undefined : lookups.providerKeys.get(keyId)
  if (keyId !== null && providerKey === undefined) throw new Rejection(`unknown provider_api_key_id ${keyId}`)
  const endpoint = endpointId === null ? undefined : lookups.endpoints.get(endpointId)
  if (endpointId !== null && endpoint === undefined) throw new Rejection(`unknown provider_endpoint_id ${endpointId}`)
  const providerId = event.provider_id ?? providerKey?.provider_id ?? endpoint?.provider_id ?? row.providerId
  const provider = providerId === null ? undefined : lookups.providers.get(providerId)
  if (providerId !== null && provider === undefined) throw new Rejection(`unknown provider_id ${providerId}`)
  for (const [what, owner] of [['provider_api_key_id', providerKey?.provider_id], ['provider_endpoint_id', endpoint?.provider_id]] as const) {
    if (owner !== undefined && owner !== providerId) throw new Rejection(`${what} belongs to another provider`)
  }
  row.providerId = providerId
  row.providerName = provider?.name ?? null
  row.providerApiKeyId = keyId
  row.providerEndpointId = endpointId
}

/**
 * The index (from 1) of a row's tiered_pricing without its total_input_context among
 * the batch's shared parts. All of tiered_pricing but that one number is the same for
 * every request priced by one price version's tier, so each part is serialized once a
 * batch and sent once; PostgreSQL adds each row's context (UPSERT_USAGE). Sent whole per
 * row, it was 40% of the batch's bytes to PostgreSQL and as much JSON for it to parse.
 */
function sharedTier (tiered: TieredPricing, shared: Lookups['tieredShared']): number {
  const key = `${tiered.model_price_id}|${tiered.tier_index}`
  let index = shared.index.get(key)
  if (index === undefined) {
    const { total_input_context: _context, ...rest } = tiered
    index = shared.json.push(JSON.stringify(rest))
    shared.index.set(key, index)
  }
  return index
}

function complete (row: RowState, event: CompleteEventBody, lookups: Lookups, now: Date): void {
  applyProvider(row, event, lookups)
  if (event.api_format !== undefined) row.apiFormat = event.api_format
  if (event.is_stream !== undefined) row.isStream = event.is_stream
  if (event.target_model !== undefined) row.targetModel = event.target_model
  const providerKey = row.providerApiKeyId === null ? undefined : lookups.providerKeys.get(row.providerApiKeyId)
  const cacheTotal = event.cache_creation_input_tokens
  const split = splitCacheWrites(cacheTotal ?? 0, event.cache_creation_5m_input_tokens, event.cache_creation_1h_input_tokens, providerKey?.cache_ttl_minutes ?? null)
  const cacheWrites = split.write5m + split.write1h
  if (cacheTotal !== undefined && cacheTotal !== cacheWrites) throw new Rejection('cache_creation_input_tokens must equal the 5m and 1h parts')
  row.status = event.status
  row.statusCode = event.status_code ?? null
  row.errorMessage = event.error_message ?? null
  row.inputTokens = event.input_tokens
  row.outputTokens = event.output_tokens
  row.cacheCreationTokens = cacheWrites
  row.cacheCreation5m = split.write5m
  row.cacheCreation1h = split.write1h
  row.cacheReadTokens = event.cache_read_input_tokens ?? 0
  row.totalTokens = row.inputTokens + row.outputTokens + cacheWrites + row.cacheReadTokens
  row.responseTimeMs = event.response_time_ms ?? null
  if (event.first_byte_time_ms !== undefined) row.firstByteTimeMs = event.first_byte_time_ms
  if (event.metadata !== undefined) row.metadata = event.metadata
  row.finishedAt = event.finished_at === undefined ? now : new Date(event.finished_at)

  const provider = row.providerId === null ? undefined : lookups.providers.get(row.providerId)
  const micros = multiplierMicros(providerKey?.rate_multiplier)
  const priced = priceRequest(
    { input: row.inputTokens, output: row.outputTokens, cacheWrite5m: split.write5m, cacheWrite1h: split.write1h, cacheRead: row.cacheReadTokens },
    pickPrice(lookups.prices, row.model, row.providerId, row.createdAt),
    { success: row.status === 'completed', multiplierMicros: micros, freeTier: provider?.billing_type === 'free_tier' }
  )
  // a price × a rate multiplier can carry a cost past usage's int8 columns: refuse this event, not the batch
  if (priced.costs.total > MAX_COST_NANO || priced.actual.total > MAX_COST_NANO) throw new Rejection('the cost at this price and rate multiplier is past the largest amount stored (int8 nano-USD)')
  row.costs = priced.costs
  row.actual = priced.actual
  row.cacheCreationCost = priced.costs.cacheCreation
  row.cacheReadCost = priced.costs.cacheRead
  row.totalCost = priced.costs.total
  row.actualTotalCost = priced.actual.total
  row.snapshot = priced.snapshot
  row.pricingSource = priced.source
  row.modelPriceId = priced.tieredPricing?.model_price_id ?? null
  row.tieredPricing = priced.tieredPricing
  row.tieredShared = priced.tieredPricing === null ? undefined : sharedTier(priced.tieredPricing, lookups.tieredShared)
  row.rateMultiplier = provider?.billing_type === 'free_tier' ? '0' : (providerKey?.rate_multiplier ?? '1')
}

export interface IngestOptions {
  now?: Date
  /** the stale-request sweep: no receipts, so the real completion can still arrive and correct it */
  synthetic?: boolean
}

// first, before any row lock: a key deletion waits for the batches in flight and holds back new
// ones; one simple-protocol round trip with the BEGIN (the constant is ours, never input)
const BEGIN_BATCH = `BEGIN; SELECT pg_advisory_xact_lock_shared(${KEY_DELETION_LOCK})`

export async function ingestEvents (pool: pg.Pool, events: UsageEventBody[], options: IngestOptions = {}): Promise<EventResultBody[]> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await client.query(BEGIN_BATCH)
        const results = await ingestBatch(prepared(client), events, options)
        await client.query('COMMIT')
        return results
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

const RECEIPT_COLUMNS = new Columns<{ request_id: string, event_type: string }>([
  { name: 'request_id', type: 'text', value: (r) => r.request_id },
  { name: 'event_type', type: 'text', value: (r) => r.event_type }
])

/**
 * A row this batch read as absent was inserted by a concurrent batch before this one
 * wrote it (the upsert's WHERE on the primary key refused to overwrite it): the batch
 * is rolled back and run again, and then reads that row.
 */
class CreatedMeanwhile extends Error {}

async function ingestBatch (db: Sql, events: UsageEventBody[], options: IngestOptions): Promise<EventResultBody[]> {
  const now = options.now ?? new Date()
  const results: EventResultBody[] = events.map((e) => ({ request_id: e.request_id, type: e.type, outcome: 'recorded' }))

  // 1. receipts: which (request_id, type) pairs are new. Two batches carrying the same
  // pair serialize on its primary key: the second waits for the first to commit and
  // then finds it a duplicate.
  const fresh = new Set<number>()
  if (options.synthetic === true) {
    events.forEach((_e, i) => fresh.add(i))
  } else {
    const pairs = [...new Map(events.map((e) => [`${e.request_id}\u0000${e.type}`, { request_id: e.request_id, event_type: e.type }])).values()]
      .sort((a, b) => a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : a.event_type < b.event_type ? -1 : 1)
    const inserted = await db.query<{ request_id: string, event_type: string }>(`
      INSERT INTO gateway_events (${RECEIPT_COLUMNS.names})
      SELECT * FROM ${RECEIPT_COLUMNS.from('r')}
      ON CONFLICT DO NOTHING
      RETURNING request_id, event_type`, RECEIPT_COLUMNS.values(pairs))
    const isNew = new Set(inserted.rows.map((r) => `${r.request_id}\u0000${r.event_type}`))
    events.forEach((e, i) => {
      const id = `${e.request_id}\u0000${e.type}`
      if (isNew.delete(id)) fresh.add(i) // the first copy in the batch is new, later copies are duplicates
      else results[i]!.outcome = 'duplicate'
    })
  }
  if (fresh.size === 0) return results

  // 2. the rows these events touch, locked in request_id order. No lock can be taken on
  // a row that does not exist yet: a request another batch is creating meanwhile is
  // caught when this batch writes it (CreatedMeanwhile), except by a stream event, which
  // writes nothing without its row: those wait for such a batch first.
  const requestIds = [...new Set([...fresh].map((i) => events[i]!.request_id))].sort()
  const existingRows = await db.query<UsageRow>(READ_ROWS, [requestIds])
  const before = new Map(existingRows.rows.map((row) => [row.request_id, fromRow(row)]))
  const created = new Set([...fresh].filter((i) => events[i]!.type !== 'stream').map((i) => events[i]!.request_id))
  const orphanStreams = [...new Set([...fresh].map((i) => events[i]!).filter((e) => e.type === 'stream' && !before.has(e.request_id) && !created.has(e.request_id)).map((e) => e.request_id))].sort()
  if (orphanStreams.length > 0) {
    for (const row of (await waitForCreators(db, orphanStreams)).rows) before.set(row.request_id, fromRow(row))
  }
  const lookups = await loadLookups(db, [...fresh].map((i) => events[i]!), [...before.values()])

  // 3. apply the events in order to in-memory row states
  const states = new Map<string, RowState>()
  for (const [id, row] of before) states.set(id, structuredClone(row))
  const changed = new Set<string>()
  const candidates: Array<Record<string, unknown>> = []
  const bodies = new Map<string, Record<string, unknown>>()
  const rejectedReceipts: Array<{ request_id: string, event_type: string }> = []
  for (const i of [...fresh].sort((a, b) => a - b)) {
    // credentials in headers, bodies, metadata and error texts are masked before anything is kept
    const event = redactEvent(events[i]!)
    try {
      let row = states.get(event.request_id)
      // a sweep only times out what is still unfinished when it holds the row lock
      if (options.synthetic === true && (row === undefined || isFinished(row.status))) {
        results[i]!.outcome = 'duplicate'
        continue
      }
      if (event.type === 'start') {
        if (row === undefined) {
          row = newRow(event, lookups, now)
          states.set(event.request_id, row)
          changed.add(event.request_id)
        }
      } else if (event.type === 'stream') {
        if (row === undefined) throw new Rejection('unknown request: send its start first')
        if (row.status === 'pending') row.status = 'streaming'
        row.firstByteTimeMs ??= event.first_byte_time_ms
        changed.add(event.request_id)
      } else {
        const working = row === undefined ? newRow(event, lookups, now) : structuredClone(row)
        complete(working, event, lookups, now)
        states.set(event.request_id, working)
        changed.add(event.request_id)
        results[i]!.cost_usd = nanoToUsd(working.totalCost)
        for (const c of event.candidates ?? []) {
          candidates.push({
            request_id: event.request_id, candidate_index: c.candidate_index, retry_index: c.retry_index ?? 0,
            user_id: working.userId, api_key_id: working.apiKeyId, provider_id: c.provider_id ?? null,
            provider_endpoint_id: c.provider_endpoint_id ?? null, provider_api_key_id: c.provider_api_key_id ?? null,
            status: c.status, skip_reason: c.skip_reason ?? null, is_cached: c.is_cached ?? false, status_code: c.status_code ?? null,
            error_type: c.error_type ?? null, error_message: c.error_message ?? null, latency_ms: c.latency_ms ?? null,
            started_at: c.started_at ?? null, finished_at: c.finished_at ?? null, created_at: working.createdAt.toISOString()
          })
        }
        if (event.request_headers !== undefined || event.response_headers !== undefined || event.request_body !== undefined || event.response_body !== undefined) {
          bodies.set(event.request_id, {
            request_headers: capped(event.request_headers), response_headers: capped(event.response_headers),
            request_body: capped(event.request_body), response_body: capped(event.response_body)
          })
        }
      }
    } catch (error) {
      if (!(error instanceof Rejection)) throw error
      results[i]!.outcome = 'rejected'
      results[i]!.error = error.message
      delete results[i]!.cost_usd
      rejectedReceipts.push({ request_id: event.request_id, event_type: event.type })
    }
  }

  // 4. write rows, bodies, candidates, rollups and charges
  const rows = [...changed].sort().map((id) => states.get(id)!)
  await upsertRows(db, rows, lookups.tieredShared.json, now)
  await insertBodies(db, bodies, states)
  const sent = await insertCandidates(db, candidates)
  // after the rows (so batches of one key write them in parallel), before the totals
  await recordCacheData(db, before, rows)
  const deltas = new RollupDeltas()
  deltas.sent(sent)
  const keyCharges = new Map<string, { requests: bigint, tokens: bigint, cost: bigint }>()
  const userCharges = new Map<string, bigint>()
  for (const after of rows) {
    const prior = before.get(after.requestId) ?? null
    deltas.change(prior, after)
    const contribution = (row: RowState | null) => row !== null && isFinished(row.status)
      ? { requests: 1n, tokens: BigInt(row.totalTokens), cost: row.totalCost }
      : { requests: 0n, tokens: 0n, cost: 0n }
    const was = contribution(prior)
    const now_ = contribution(after)
    if (now_.requests === was.requests && now_.tokens === was.tokens && now_.cost === was.cost) continue
    // the key and user charged are the row's own: a row's owner never changes
    if (after.apiKeyId !== null) {
      const charge = keyCharges.get(after.apiKeyId) ?? { requests: 0n, tokens: 0n, cost: 0n }
      charge.requests += now_.requests - was.requests
      charge.tokens += now_.tokens - was.tokens
      charge.cost += now_.cost - was.cost
      keyCharges.set(after.apiKeyId, charge)
    }
    if (after.userId !== null) userCharges.set(after.userId, (userCharges.get(after.userId) ?? 0n) + now_.cost - was.cost)
  }
  if (rejectedReceipts.length > 0) {
    // a rejected event was not received: the gateway may send it again, corrected
    await db.query(`
      DELETE FROM gateway_events g USING jsonb_to_recordset($1::jsonb) AS r(request_id text, event_type text)
       WHERE g.request_id = r.request_id AND g.event_type = r.event_type`, [JSON.stringify(rejectedReceipts)])
  }
  // last, so the rows every batch contends for are locked only from here to the commit
  const byId = <T>(entries: Iterable<[string, T]>) => [...entries].sort(([a], [b]) => a < b ? -1 : 1)
  await writeTotals(db, deltas, {
    keys: byId(keyCharges).map(([id, c]) => ({ id, requests: c.requests.toString(), tokens: c.tokens.toString(), cost: c.cost.toString() })),
    users: byId(userCharges).filter(([, cost]) => cost !== 0n).map(([id, cost]) => ({ id, cost: cost.toString() }))
  }, now)
  return results
}

const json = (value: unknown) => value === null || value === undefined ? null : JSON.stringify(value)

/** A usage row's columns as ingestion writes them (usage's own names and types); `shared`: the ids and names a batch's rows repeat. */
const USAGE_COLUMNS = new Columns<RowState>([
  { name: 'id', type: 'uuid', value: (r) => r.id },
  { name: 'request_id', type: 'text', value: (r) => r.requestId },
  { name: 'user_id', type: 'uuid', value: (r) => r.userId, shared: true },
  { name: 'api_key_id', type: 'uuid', value: (r) => r.apiKeyId, shared: true },
  { name: 'provider_id', type: 'uuid', value: (r) => r.providerId, shared: true },
  { name: 'provider_endpoint_id', type: 'uuid', value: (r) => r.providerEndpointId, shared: true },
  { name: 'provider_api_key_id', type: 'uuid', value: (r) => r.providerApiKeyId, shared: true },
  { name: 'provider_name', type: 'text', value: (r) => r.providerName, shared: true },
  { name: 'model', type: 'text', value: (r) => r.model, shared: true },
  { name: 'target_model', type: 'text', value: (r) => r.targetModel },
  { name: 'api_format', type: 'text', value: (r) => r.apiFormat, shared: true },
  { name: 'is_stream', type: 'boolean', value: (r) => r.isStream },
  { name: 'status', type: 'usage_status', value: (r) => r.status },
  { name: 'status_code', type: 'int', value: (r) => r.statusCode },
  { name: 'error_message', type: 'text', value: (r) => r.errorMessage },
  { name: 'input_tokens', type: 'int', value: (r) => r.inputTokens },
  { name: 'output_tokens', type: 'int', value: (r) => r.outputTokens },
  { name: 'cache_creation_input_tokens', type: 'int', value: (r) => r.cacheCreationTokens },
  { name: 'cache_creation_5m_input_tokens', type: 'int', value: (r) => r.cacheCreation5m },
  { name: 'cache_creation_1h_input_tokens', type: 'int', value: (r) => r.cacheCreation1h },
  { name: 'cache_read_input_tokens', type: 'int', value: (r) => r.cacheReadTokens },
  { name: 'total_tokens', type: 'int', value: (r) => r.totalTokens },
  ...COST_COLUMNS.map(([field, column]): Column<RowState> => ({ name: column, type: 'bigint', value: (r) => r.costs[field] })),
  ...COST_COLUMNS.map(([field, column]): Column<RowState> => ({ name: `actual_${column}`, type: 'bigint', value: (r) => r.actual[field] })),
  { name: 'input_price_per_1m', type: 'bigint', value: (r) => r.snapshot?.input ?? null },
  { name: 'output_price_per_1m', type: 'bigint', value: (r) => r.snapshot?.output ?? null },
  { name: 'cache_write_5m_price_per_1m', type: 'bigint', value: (r) => r.snapshot?.cacheWrite5m ?? null },
  { name: 'cache_write_1h_price_per_1m', type: 'bigint', value: (r) => r.snapshot?.cacheWrite1h ?? null },
  { name: 'cache_read_price_per_1m', type: 'bigint', value: (r) => r.snapshot?.cacheRead ?? null },
  { name: 'price_per_request', type: 'bigint', value: (r) => r.snapshot?.perRequest ?? null },
  { name: 'pricing_source', type: 'text', value: (r) => r.pricingSource },
  { name: 'model_price_id', type: 'uuid', value: (r) => r.modelPriceId, shared: true },
  // whole only when not priced by this batch (a row read back); else its shared part's index and its context
  { name: 'tiered_pricing', type: 'jsonb', value: (r) => r.tieredShared === undefined ? json(r.tieredPricing) : null },
  { name: 'tiered_shared', type: 'int', value: (r) => r.tieredShared ?? null },
  { name: 'tiered_context', type: 'bigint', value: (r) => r.tieredShared === undefined ? null : (r.tieredPricing as TieredPricing).total_input_context },
  { name: 'rate_multiplier', type: 'numeric', value: (r) => r.rateMultiplier },
  { name: 'response_time_ms', type: 'int', value: (r) => r.responseTimeMs },
  { name: 'first_byte_time_ms', type: 'int', value: (r) => r.firstByteTimeMs },
  { name: 'metadata', type: 'jsonb', value: (r) => json(r.metadata) },
  { name: 'created_at', type: 'timestamptz', value: (r) => r.createdAt.toISOString() },
  { name: 'finished_at', type: 'timestamptz', value: (r) => r.finishedAt?.toISOString() ?? null }
])
/** the batch's clock, one parameter after the columns */
const UPDATED_AT = `$${USAGE_COLUMNS.count + 1}::timestamptz`
/** the columns the unnest carries only to build tiered_pricing from the batch's shared parts, two parameters after them */
const TIERED_PARTS = new Set(['tiered_shared', 'tiered_context'])
const INSERTED = USAGE_COLUMNS.list.filter((name) => !TIERED_PARTS.has(name))
const TIERED_PRICING = `COALESCE(r.tiered_pricing, ($${USAGE_COLUMNS.count + 2}::jsonb[])[r.tiered_shared] || jsonb_build_object('total_input_context', r.tiered_context))`
const UPSERT_USAGE = `
    INSERT INTO usage AS u (${INSERTED.join(', ')}, updated_at)
    SELECT ${INSERTED.map((name) => name === 'tiered_pricing' ? TIERED_PRICING : `r.${name}`).join(', ')}, ${UPDATED_AT}
      FROM ${USAGE_COLUMNS.from('r')}
    ON CONFLICT (request_id) DO UPDATE SET
      user_id = EXCLUDED.user_id, api_key_id = EXCLUDED.api_key_id, provider_id = EXCLUDED.provider_id, provider_endpoint_id = EXCLUDED.provider_endpoint_id,
      provider_api_key_id = EXCLUDED.provider_api_key_id, provider_name = EXCLUDED.provider_name, model = EXCLUDED.model, target_model = EXCLUDED.target_model,
      api_format = EXCLUDED.api_format, is_stream = EXCLUDED.is_stream, status = EXCLUDED.status, status_code = EXCLUDED.status_code,
      error_message = EXCLUDED.error_message, input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
      cache_creation_input_tokens = EXCLUDED.cache_creation_input_tokens, cache_creation_5m_input_tokens = EXCLUDED.cache_creation_5m_input_tokens,
      cache_creation_1h_input_tokens = EXCLUDED.cache_creation_1h_input_tokens, cache_read_input_tokens = EXCLUDED.cache_read_input_tokens,
      total_tokens = EXCLUDED.total_tokens, input_cost = EXCLUDED.input_cost, output_cost = EXCLUDED.output_cost,
      cache_creation_cost = EXCLUDED.cache_creation_cost, cache_read_cost = EXCLUDED.cache_read_cost, request_cost = EXCLUDED.request_cost,
      total_cost = EXCLUDED.total_cost, actual_input_cost = EXCLUDED.actual_input_cost, actual_output_cost = EXCLUDED.actual_output_cost,
      actual_cache_creation_cost = EXCLUDED.actual_cache_creation_cost, actual_cache_read_cost = EXCLUDED.actual_cache_read_cost,
      actual_request_cost = EXCLUDED.actual_request_cost, actual_total_cost = EXCLUDED.actual_total_cost,
      input_price_per_1m = EXCLUDED.input_price_per_1m, output_price_per_1m = EXCLUDED.output_price_per_1m,
      cache_write_5m_price_per_1m = EXCLUDED.cache_write_5m_price_per_1m, cache_write_1h_price_per_1m = EXCLUDED.cache_write_1h_price_per_1m,
      cache_read_price_per_1m = EXCLUDED.cache_read_price_per_1m, price_per_request = EXCLUDED.price_per_request,
      pricing_source = EXCLUDED.pricing_source, model_price_id = EXCLUDED.model_price_id, tiered_pricing = EXCLUDED.tiered_pricing,
      rate_multiplier = EXCLUDED.rate_multiplier, response_time_ms = EXCLUDED.response_time_ms, first_byte_time_ms = EXCLUDED.first_byte_time_ms,
      metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at, finished_at = EXCLUDED.finished_at, updated_at = EXCLUDED.updated_at
    -- only the row this batch read: one created meanwhile by another batch has another id (CreatedMeanwhile)
    WHERE u.id = EXCLUDED.id`

async function upsertRows (db: Sql, rows: RowState[], sharedTiers: string[], now: Date): Promise<void> {
  if (rows.length === 0) return
  // the ids are the batch's own, so only the count of rows written comes back: a row refused by the WHERE is not counted
  const written = await db.query(UPSERT_USAGE, [...USAGE_COLUMNS.values(rows), now, sharedTiers])
  if (written.rowCount !== rows.length) throw new CreatedMeanwhile('a request was created by another batch meanwhile')
}

const READ_ROWS = 'SELECT * FROM usage WHERE request_id = ANY($1::text[]) ORDER BY request_id FOR UPDATE'

/**
 * Waits for any batch still creating these requests (a start or a completion received,
 * not yet committed), then reads their rows. Inserting the creating events' receipts
 * waits on such a batch's own uncommitted receipts; the inserts are then undone.
 */
async function waitForCreators (db: Sql, requestIds: string[]): Promise<{ rows: UsageRow[] }> {
  await db.query('SAVEPOINT wait_for_creators')
  await db.query(`
    INSERT INTO gateway_events (request_id, event_type)
    SELECT r, t FROM unnest($1::text[]) AS r CROSS JOIN (VALUES ('complete'), ('start')) AS types(t) ORDER BY r, t
    ON CONFLICT DO NOTHING`, [requestIds])
  await db.query('ROLLBACK TO SAVEPOINT wait_for_creators')
  return await db.query<UsageRow>(READ_ROWS, [requestIds])
}

/** The bodies of completed requests, each under its usage row's id (the row state's own: read back, or made by the batch). */
async function insertBodies (db: Sql, bodies: Map<string, Record<string, unknown>>, states: Map<string, RowState>): Promise<void> {
  if (bodies.size === 0) return
  const payload = [...bodies].map(([requestId, body]) => ({ usage_id: states.get(requestId)!.id, ...body }))
  await db.query(`
    INSERT INTO usage_bodies (usage_id, request_headers, response_headers, request_body, response_body)
    SELECT usage_id, request_headers, response_headers, request_body, response_body
      FROM jsonb_to_recordset($1::jsonb) AS b(usage_id uuid, request_headers jsonb, response_headers jsonb, request_body jsonb, response_body jsonb)
    ON CONFLICT (usage_id) DO NOTHING`, [JSON.stringify(payload)])
}

/** Inserts the candidates; returns the executed ones actually inserted (a replayed one is not), for the attempts rollup. */
async function insertCandidates (db: Sql, candidates: Array<Record<string, unknown>>): Promise<SentCandidate[]> {
  if (candidates.length === 0) return []
  const { rows } = await db.query<SentCandidate>(`
    WITH inserted AS (
    INSERT INTO request_candidates (request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, skip_reason, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at)
    SELECT request_id, candidate_index, retry_index, user_id, api_key_id, provider_id, provider_endpoint_id, provider_api_key_id,
      status, skip_reason, is_cached, status_code, error_type, error_message, latency_ms, started_at, finished_at, created_at
      FROM jsonb_to_recordset($1::jsonb) AS c(request_id text, candidate_index int, retry_index int, user_id uuid,
        api_key_id uuid, provider_id uuid, provider_endpoint_id uuid, provider_api_key_id uuid, status candidate_status, skip_reason text,
        is_cached boolean, status_code int, error_type text, error_message text, latency_ms int, started_at timestamptz, finished_at timestamptz,
        created_at timestamptz)
    ORDER BY request_id, candidate_index, retry_index
    ON CONFLICT (request_id, candidate_index, retry_index) DO NOTHING
    RETURNING request_id, provider_id, status, latency_ms, created_at
    )
    SELECT request_id, provider_id, status::text AS status, latency_ms, created_at FROM inserted
     WHERE status NOT IN ('skipped', 'available')`, [JSON.stringify(candidates)])
  return rows
}
