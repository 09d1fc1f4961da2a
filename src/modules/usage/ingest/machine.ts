// The event state machine: a batch's new events applied in order to the current rows of
// the requests they name. Pure: no database, no I/O, no clock (the batch's time is given).
// A request goes pending (start) → streaming (stream) → completed / failed / cancelled
// (complete); a completion may come first (it then carries the start fields), and a late
// completion replaces a timed-out one (the sweep's synthetic failure). An event that
// cannot apply is rejected alone; the rest of the batch is recorded.
import { isFinished } from '../../accounting/rules.js'
import { uuidv7 } from '../../../lib/crypto.js'
import { nanoToUsd } from '../../../lib/money.js'
import { redactEvent } from '../../../lib/redact.js'
import { pickPrice } from '../../prices/service.js'
import { multiplierMicros, priceRequest, splitCacheWrites } from '../../accounting/pricing.js'
import type { Charges } from '../../accounting/rollups.js'
import type { CompleteEventBody, EventResultBody, UsageEventBody } from '../schemas.js'
import { ZERO_COSTS, type Lookups, type Receipt, type RowState, type StartFields } from './row.js'

/** Bodies and headers kept per request, at most this many bytes each (as JSON). */
export const BODY_CAP_BYTES = 64 * 1024

/** usage's cost columns are int8 nano-USD */
const MAX_COST_NANO = 2n ** 63n - 1n

/** Why one event cannot apply: it is answered `rejected` with this message, and the batch goes on. */
class Rejection extends Error {}

export interface MachineInput {
  /** the batch's events not received before, in the batch's order */
  events: UsageEventBody[]
  /** the current rows of the requests they name, by request_id (left unchanged) */
  rows: Map<string, RowState>
  lookups: Lookups
  /** the batch's time: a new row's created_at and a completion's finished_at when the event has none */
  now: Date
  /** the stale-request sweep's timeouts: applied only to rows still unfinished */
  synthetic?: boolean
  /** a new row's id from its created_at (ms) */
  newId?: (createdAtMs: number) => string
}

/** A completed request's headers and bodies, under its usage row's id. */
export interface BodyRow { usage_id: string, created_at: string, request_headers: unknown, response_headers: unknown, request_body: unknown, response_body: unknown }

/** A request candidate as request_candidates stores it. */
export interface CandidateRow {
  request_id: string
  candidate_index: number
  retry_index: number
  user_id: string | null
  api_key_id: string | null
  provider_id: string | null
  provider_endpoint_id: string | null
  provider_api_key_id: string | null
  status: string
  skip_reason: string | null
  is_cached: boolean
  status_code: number | null
  error_type: string | null
  error_message: string | null
  latency_ms: number | null
  started_at: string | null
  finished_at: string | null
  created_at: string
}

export interface MachineOutput {
  /** one per event, in the events' order */
  results: EventResultBody[]
  /** the rows the events changed or created, in request_id order */
  rows: RowState[]
  bodies: BodyRow[]
  candidates: CandidateRow[]
  /** the receipts of the rejected events: a rejected event was not received */
  rejected: Receipt[]
  /** what the keys and users are charged, the rows' finished contributions after minus before */
  charges: Charges
}

/** Caps a stored body: past the cap only its size is kept. */
function capped (value: unknown): unknown {
  if (value === undefined) return null
  const text = JSON.stringify(value)
  const bytes = Buffer.byteLength(text)
  return bytes <= BODY_CAP_BYTES ? value : { truncated: true, bytes }
}

export function applyEvents (input: MachineInput): MachineOutput {
  const { events, lookups, now } = input
  const newId = input.newId ?? uuidv7
  const results: EventResultBody[] = events.map((e) => ({ request_id: e.request_id, type: e.type, outcome: 'recorded' }))
  const states = new Map<string, RowState>()
  for (const [id, row] of input.rows) states.set(id, structuredClone(row))
  const changed = new Set<string>()
  const candidates: CandidateRow[] = []
  const bodies = new Map<string, Omit<BodyRow, 'usage_id' | 'created_at'>>()
  const rejected: Receipt[] = []

  events.forEach((original, i) => {
    // credentials in headers, bodies, metadata and error texts are masked before anything is kept
    const event = redactEvent(original)
    try {
      let row = states.get(event.request_id)
      // a sweep only times out what is still unfinished when it holds the row lock
      if (input.synthetic === true && (row === undefined || isFinished(row.status))) {
        results[i]!.outcome = 'duplicate'
        return
      }
      if (event.type === 'start') {
        if (row === undefined) {
          row = newRow(event, lookups, now, newId)
          states.set(event.request_id, row)
          changed.add(event.request_id)
        }
      } else if (event.type === 'stream') {
        if (row === undefined) throw new Rejection('unknown request: send its start first')
        if (row.status === 'pending') row.status = 'streaming'
        row.firstByteTimeMs ??= event.first_byte_time_ms
        changed.add(event.request_id)
      } else {
        const working = row === undefined ? newRow(event, lookups, now, newId) : structuredClone(row)
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
      rejected.push({ request_id: event.request_id, event_type: event.type })
    }
  })

  const rows = [...changed].sort().map((id) => states.get(id)!)
  return {
    results,
    rows,
    // each under its row's final id (read back, or made by this batch)
    // keyed with the request's created_at (the table's partition key), as its candidates are
    bodies: [...bodies].map(([requestId, body]) => ({ usage_id: states.get(requestId)!.id, created_at: states.get(requestId)!.createdAt.toISOString(), ...body })),
    candidates,
    rejected,
    charges: chargesOf(input.rows, rows)
  }
}

/** A new pending row from start fields (a `start`, or a `complete` that carries them). */
function newRow (event: StartFields, lookups: Lookups, now: Date, newId: (createdAtMs: number) => string): RowState {
  if (event.api_key_id === undefined || event.model === undefined) throw new Rejection('unknown request: send its start, or api_key_id and model with the completion')
  const key = lookups.keys.get(event.api_key_id)
  if (key === undefined) throw new Rejection(`unknown api_key_id ${event.api_key_id}`)
  const createdAt = event.created_at === undefined ? now : new Date(event.created_at)
  const row: RowState = {
    id: newId(createdAt.getTime()),
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
    modelPriceId: null,
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
  row.modelPriceId = priced.tieredPricing?.model_price_id ?? null
  row.rateMultiplier = provider?.billing_type === 'free_tier' ? '0' : (providerKey?.rate_multiplier ?? '1')
}

/** A row's charge: one request, its tokens and cost once it is finished, nothing before. */
const contribution = (row: RowState | null) => row !== null && isFinished(row.status)
  ? { requests: 1n, tokens: BigInt(row.totalTokens), cost: row.totalCost }
  : { requests: 0n, tokens: 0n, cost: 0n }

/** The keys' and users' charges of the changed rows (after minus before), in id order. */
function chargesOf (before: Map<string, RowState>, rows: RowState[]): Charges {
  const keyCharges = new Map<string, { requests: bigint, tokens: bigint, cost: bigint }>()
  const userCharges = new Map<string, bigint>()
  for (const after of rows) {
    const was = contribution(before.get(after.requestId) ?? null)
    const is = contribution(after)
    if (is.requests === was.requests && is.tokens === was.tokens && is.cost === was.cost) continue
    // the key and user charged are the row's own: a row's owner never changes
    if (after.apiKeyId !== null) {
      const charge = keyCharges.get(after.apiKeyId) ?? { requests: 0n, tokens: 0n, cost: 0n }
      charge.requests += is.requests - was.requests
      charge.tokens += is.tokens - was.tokens
      charge.cost += is.cost - was.cost
      keyCharges.set(after.apiKeyId, charge)
    }
    if (after.userId !== null) userCharges.set(after.userId, (userCharges.get(after.userId) ?? 0n) + is.cost - was.cost)
  }
  const byId = <T>(entries: Iterable<[string, T]>) => [...entries].sort(([a], [b]) => a < b ? -1 : 1)
  return {
    keys: byId(keyCharges).map(([id, c]) => ({ id, requests: c.requests.toString(), tokens: c.tokens.toString(), cost: c.cost.toString() })),
    users: byId(userCharges).filter(([, cost]) => cost !== 0n).map(([id, cost]) => ({ id, cost: cost.toString() }))
  }
}
