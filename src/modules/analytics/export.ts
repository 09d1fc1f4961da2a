// Usage records exported as CSV or NDJSON, with the records page's filters (its one
// owner: stats/service.ts recordFilter), streamed: keyset pages of PAGE_ROWS rows are read
// only as the client takes them (Fastify pipes the stream, so a slow reader holds back the
// reads, and memory is about one page whatever the size), no connection is held between
// pages, and a client that goes away destroys the stream, which stops the reads.
// A database error after the first page: NDJSON ends with one {"error": …} line; CSV has
// no place for one, so the connection is destroyed (the chunked body never terminates,
// which every HTTP client reports as an error).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import { finished } from 'node:stream/promises'
import Type from 'typebox'
import type { Sql } from '../../db/prisma.js'
import { route } from '../../http/pipeline.js'
import { errorResponses } from '../../http/schemas.js'
import { nanoToUsdString } from '../../lib/money.js'
import { dateRange, type Range } from '../../lib/time.js'
import { isOperatorField, seesOperatorCost, visibleTo, type Viewer } from '../accounting/visibility.js'
import { exportPage, type ExportCursor, type RecordRow, type ResolvedFilter } from '../stats/queries.js'
import { OwnRecordsQuery, RecordsQuery, UsageRecord } from '../stats/schemas.js'
import { recordFilter, resolveFilter, toRecord } from '../stats/service.js'

/** rows read per statement: large enough that a page's round trip is small beside its rows, small enough to hold in memory */
export const PAGE_ROWS = 1000
const DEFAULT_DAYS = 30
const MAX_DAYS = 366

const Format = Type.Union([Type.Literal('csv'), Type.Literal('ndjson')], { default: 'csv', description: 'csv (a header row, RFC 4180) or ndjson (one record per line, as the records page shows it)' })
// the records' filters without their paging: the export has none
const { limit: _limit, offset: _offset, ...adminFilters } = RecordsQuery.properties
const { limit: _ownLimit, offset: _ownOffset, ...ownFilters } = OwnRecordsQuery.properties
const range = { description: 'default: the last 30 days; at most 366' }
export const ExportQuery = Type.Object({ ...adminFilters, format: Format }, { additionalProperties: false, ...range })
export const OwnExportQuery = Type.Object({ ...ownFilters, format: Format }, { additionalProperties: false, ...range })
/** the body's media types, so the API document says what the file is */
const ExportBody = {
  description: 'the records, newest first, as the format asked',
  content: {
    'text/csv': { schema: Type.String({ description: 'a header row, then a record per CRLF-ended line' }) },
    'application/x-ndjson': { schema: Type.String({ description: 'a record per line, as the records page shows it' }) }
  }
}

type Shown = ReturnType<typeof toRecord>
/** text: a value from outside (names, models, messages), which the formula guard covers; the others are numbers, booleans, ids and times we write */
interface Column { name: string, text: boolean, value: (record: Shown, row: RecordRow) => string | number | boolean | null }

const text = (name: string, value: Column['value']): Column => ({ name, text: true, value })
const plain = (name: string, value: Column['value']): Column => ({ name, text: false, value })

/** The records page's fields, its api_key object flattened; money as exact USD decimals from nano-USD. */
export const CSV_COLUMNS: readonly Column[] = [
  plain('id', (r) => r.id),
  text('request_id', (r) => r.request_id),
  plain('created_at', (r) => r.created_at),
  plain('user_id', (r) => r.user_id),
  text('username', (r) => r.username),
  text('user_email', (r) => r.user_email),
  plain('api_key.id', (r) => r.api_key?.id ?? null),
  text('api_key.name', (r) => r.api_key?.name ?? null),
  text('api_key.display', (r) => r.api_key?.display ?? null),
  text('provider', (r) => r.provider),
  text('api_key_name', (r) => r.api_key_name),
  plain('rate_multiplier', (_r, row) => row.rate_multiplier),
  text('model', (r) => r.model),
  text('target_model', (r) => r.target_model),
  text('api_format', (r) => r.api_format),
  plain('is_stream', (r) => r.is_stream),
  plain('status', (r) => r.status),
  plain('status_code', (r) => r.status_code),
  text('error_message', (r) => r.error_message),
  plain('input_tokens', (r) => r.input_tokens),
  plain('output_tokens', (r) => r.output_tokens),
  plain('cache_creation_input_tokens', (r) => r.cache_creation_input_tokens),
  plain('cache_read_input_tokens', (r) => r.cache_read_input_tokens),
  plain('total_tokens', (r) => r.total_tokens),
  plain('cost', (_r, row) => nanoToUsdString(BigInt(row.total_cost))),
  plain('actual_cost', (_r, row) => nanoToUsdString(BigInt(row.actual_total_cost))),
  plain('response_time_ms', (r) => r.response_time_ms),
  plain('first_byte_time_ms', (r) => r.first_byte_time_ms),
  plain('has_fallback', (r) => r.has_fallback),
  text('request_metadata', (r) => r.request_metadata === null ? null : JSON.stringify(r.request_metadata))
]

/** A cell starting with one of these is taken for a formula by spreadsheets (=, +, -, @, and tab and CR, which some strip first). */
const FORMULA_START = /^[=+\-@\t\r]/

/**
 * One CSV cell: RFC 4180 (quoted when it holds a quote, comma, CR or LF; quotes doubled).
 * A text cell that a spreadsheet would run as a formula is prefixed with a single quote
 * (OWASP's CSV injection advice); numbers, booleans, ids and times are ours and never are.
 */
export function csvCell (value: string | number | boolean | null, isText: boolean): string {
  if (value === null) return ''
  let cell = String(value)
  if (isText && FORMULA_START.test(cell)) cell = `'${cell}`
  return /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell
}

interface Export {
  /** the body, in pages */
  stream: Readable
  /** rows sent so far, and whether every one was (false after a database error or a client gone) */
  progress: { rows: number, complete: boolean }
}

/**
 * The export's body. The first page is read before anything is sent, so a failure then
 * is an ordinary error answer; later pages are read as the client takes the earlier ones.
 */
async function exportStream (db: Sql, filter: ResolvedFilter | null, format: 'csv' | 'ndjson', viewer: Viewer, log: { error: (obj: object, msg: string) => void }): Promise<Export> {
  const operator = seesOperatorCost(viewer)
  const columns = CSV_COLUMNS.filter((column) => operator || !isOperatorField(column.name))
  const line = format === 'csv'
    ? (row: RecordRow) => { const record = toRecord(row); return `${columns.map((c) => csvCell(c.value(record, row), c.text)).join(',')}\r\n` }
    : (row: RecordRow) => `${JSON.stringify(visibleTo(viewer, UsageRecord, toRecord(row)))}\n`
  const read = async (after: ExportCursor | null) => filter === null ? [] : await exportPage(db, filter, after, PAGE_ROWS)
  const progress = { rows: 0, complete: false }
  const first = await read(null)

  async function * body (): AsyncGenerator<string> {
    if (format === 'csv') yield `${columns.map((c) => c.name).join(',')}\r\n`
    let rows = first
    for (;;) {
      if (rows.length > 0) yield rows.map(line).join('')
      progress.rows += rows.length
      if (rows.length < PAGE_ROWS) break
      const last = rows[rows.length - 1]!
      try {
        rows = await read({ at: last.cursor_at, id: last.id })
      } catch (error) {
        log.error({ err: error, rows: progress.rows }, 'usage export failed mid-stream')
        if (format === 'csv') throw error
        // NDJSON's reader sees the end was not the data's: the last line is this, not a record
        yield `${JSON.stringify({ error: { code: 'EXPORT_FAILED', message: 'the export stopped: a database error; the lines before this one are complete records', rows: progress.rows } })}\n`
        return
      }
    }
    progress.complete = true
  }
  // byte mode: pipe() holds further reads while the socket is full
  return { stream: Readable.from(body(), { objectMode: false }), progress }
}

/** A file name for the range, e.g. usage-records-20250301T000000Z-20250401T000000Z.csv */
const fileName = (range: Range, format: string) => {
  const stamp = (at: Date) => at.toISOString().replace(/\.\d{3}/, '').replace(/[-:]/g, '')
  return `usage-records-${stamp(range.start)}-${stamp(range.end)}.${format}`
}

const CONTENT_TYPES = { csv: 'text/csv; charset=utf-8', ndjson: 'application/x-ndjson; charset=utf-8' } as const
const tags = ['usage']
const description = 'The records page\'s filters over a range (default the last 30 days, at most 366), newest first, streamed in pages as the client reads. ' +
  'CSV: a header row, RFC 4180 quoting, CRLF line ends, the api_key object as api_key.id, api_key.name and api_key.display columns, request_metadata as JSON text, money as exact USD decimals; a text cell starting with =, +, -, @, tab or CR is prefixed with a single quote so no spreadsheet runs it. ' +
  'NDJSON: one record per line, as the records page shows it. ' +
  'A database error after the first rows: NDJSON ends with a line {"error": {"code": "EXPORT_FAILED", …}}; CSV ends with the connection destroyed before the body\'s end, which HTTP clients report as an error. ' +
  'The audit row records the rows sent and whether the export was complete.'

const exportRoutes: FastifyPluginAsyncTypebox = async (app) => {
  /** Sends the export and waits for its end, so the audit row says how many rows went. */
  async function send (ctx: { query: { start_date?: string, end_date?: string, format: 'csv' | 'ndjson' }, reply: FastifyReply, request: FastifyRequest, audit: (m: Record<string, unknown>) => void }, viewer: Viewer, filter: (range: Range) => ReturnType<typeof recordFilter>): Promise<never> {
    const range = dateRange(ctx.query, DEFAULT_DAYS, MAX_DAYS)
    const resolved = await resolveFilter(app.statsPg, filter(range))
    const { stream, progress } = await exportStream(app.statsPg, resolved, ctx.query.format, viewer, ctx.request.log)
    ctx.reply
      .header('content-type', CONTENT_TYPES[ctx.query.format])
      .header('content-disposition', `attachment; filename="${fileName(range, ctx.query.format)}"`)
      .header('cache-control', 'no-store')
    void ctx.reply.send(stream)
    // a client gone or a failed CSV: the stream ends in an error Fastify has already handled (logged, connection destroyed)
    await finished(stream).catch(() => undefined)
    ctx.audit({ rows: progress.rows, complete: progress.complete })
    // already sent: nothing more for Fastify to send
    return undefined as never
  }
  const at = (range: Range) => ({ start_date: range.start.toISOString(), end_date: range.end.toISOString() })

  route(app, {
    method: 'GET',
    url: '/admin/usage/records/export',
    schema: { tags, summary: 'Usage records as a CSV or NDJSON file, streamed', description, querystring: ExportQuery, response: { 200: ExportBody, ...errorResponses() } },
    action: 'usage.export',
    mode: 'admin',
    handle: async (ctx) => await send(ctx, ctx.user, (range) => recordFilter({ ...ctx.query, ...at(range) }))
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/records/export',
    schema: { tags, summary: 'Your usage records as a CSV or NDJSON file, streamed', description: `Your own requests only; the operator's fields are left out unless you are an admin. ${description}`, querystring: OwnExportQuery, response: { 200: ExportBody, ...errorResponses() } },
    action: 'own_usage.export',
    mode: 'user',
    handle: async (ctx) => await send(ctx, ctx.user, (range) => ({ ...recordFilter({ ...ctx.query, ...at(range) }), userId: ctx.user.id }))
  })
}

export default exportRoutes
