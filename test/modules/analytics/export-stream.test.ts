// The export as a stream, through a real listening server over 50k rows: pages are read
// only as the client takes them (a paused client holds the reads back, so the server
// keeps a few pages at most), a client gone mid-stream stops the reads and gives every
// connection back, and a database error mid-stream ends the answer as an error (CSV cut
// off, NDJSON with an error line) while the process serves on.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import t from 'tap'
import { gateway } from '../gateway/fixtures.js'
import { waitUntil } from '../../helper.js'
import { PAGE_ROWS } from '../../../src/modules/analytics/export.js'

const ROWS = 50_000
const PAGES = ROWS / PAGE_ROWS
/** each row's error_message: about 1.4 kB a CSV row, 70 MB a body, far more than the socket's buffers hold */
const PADDING = 1000

interface Fetched { status: number, body: string, lines: number, chunks: number, complete: boolean }

/**
 * A GET over a socket. `onChunk` sees each chunk as it comes (and may pause the answer or
 * destroy the request); the body is kept only when `keep`.
 */
function fetchRaw (base: string, path: string, headers: Record<string, string>, onChunk: (res: http.IncomingMessage, req: http.ClientRequest, n: number) => void = () => {}, keep = false): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}${path}`, { headers }, (res) => {
      const parts: string[] = []
      let chunks = 0
      let lines = 0
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        chunks++
        for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) lines++
        if (keep) parts.push(chunk)
        onChunk(res, req, chunks)
      })
      res.on('error', () => {})
      res.on('close', () => resolve({ status: res.statusCode!, body: parts.join(''), lines, chunks, complete: res.complete }))
    })
    req.on('error', (error) => { if (!req.destroyed) reject(error) })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('streamed export', async (t) => {
  const g = await gateway(t)
  await g.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(g.app.server.address() as AddressInfo).port}`
  const user = await g.user({ username: 'bulk' })
  const key = await g.userKey(user.id, { name: 'bulk-key' })
  const client = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
  await client.connect()
  t.teardown(() => client.end())
  // a tie every 10 rows: rows sharing an instant must each be sent once (the keyset's id)
  await client.query(`
    INSERT INTO usage (request_id, user_id, api_key_id, model, status, status_code, error_message, input_tokens, output_tokens, total_tokens, total_cost, created_at)
    SELECT 'bulk-' || i, $1, $2, 'model-a', 'failed', 500, repeat('x', ${PADDING}), i, 1, i + 1, i * 1000, now() - make_interval(secs => (i / 10) * 5)
      FROM generate_series(1, ${ROWS}) AS i`, [user.id, key.id])
  await client.query('ANALYZE usage')

  // the export's page statements, counted as the pool runs them
  const pool = g.app.statsPg
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>
  let pages = 0
  ;(pool as unknown as { query: typeof query }).query = async (...args: unknown[]) => {
    const statement = args[0] as { text?: string }
    if (statement.text?.includes('AS cursor_at') === true) pages++
    return await query(...args)
  }
  t.teardown(() => { (pool as unknown as { query: typeof query }).query = query })
  const auditRows = async () => {
    await g.app.pipeline.readAuditsWritten()
    return (await client.query("SELECT metadata FROM audit_logs WHERE action = 'usage.export' ORDER BY created_at DESC LIMIT 1")).rows[0].metadata
  }
  // the connections of the primary's statistics pool (statsPg routes to it: no replica here)
  const stats = g.app.pools.stats
  const idle = async () => await waitUntil('every stats connection idle', async () => [stats.totalCount, stats.idleCount, stats.waitingCount], ([total, idleCount, waiting]) => total === idleCount && waiting === 0)

  await t.test('every row, in pages read only as the client takes them', async (t) => {
    pages = 0
    let pagesWhilePaused = -1
    const res = await fetchRaw(base, '/api/admin/usage/records/export?format=csv', g.admin.headers, (res, _req, n) => {
      if (n !== 1) return
      // the client stops reading: the server's reads must stop too, the socket's buffers full
      res.pause()
      setTimeout(() => { pagesWhilePaused = pages; res.resume() }, 1000)
    })
    t.equal(res.status, 200)
    t.ok(res.complete)
    t.equal(res.lines, ROWS + 1, 'the header and every row')
    t.ok(pagesWhilePaused >= 1 && pagesWhilePaused <= 15, `pages read while the client paused: ${pagesWhilePaused} of ${PAGES}`)
    t.equal(pages, PAGES + 1, 'a page per 1000 rows and the empty one after the last')
    t.ok(res.chunks > PAGES, `${res.chunks} chunks`)
    t.same(await auditRows(), { query: { format: 'csv' }, rows: ROWS, complete: true })
  })

  await t.test('ties on created_at: every row once, newest first', async (t) => {
    const res = await fetchRaw(base, '/api/admin/usage/records/export?format=ndjson', g.admin.headers, undefined, true)
    const ids = res.body.trimEnd().split('\n').map((line) => (JSON.parse(line) as { request_id: string }).request_id)
    t.equal(new Set(ids).size, ROWS)
    const numbers = ids.map((id) => Number(id.slice(5)))
    t.ok(numbers.every((n, i) => i === 0 || Math.floor(n / 10) >= Math.floor(numbers[i - 1]! / 10)), 'newest (smallest i / 10) first')
  })

  await t.test('a client gone mid-stream stops the reads and frees every connection', async (t) => {
    pages = 0
    const res = await fetchRaw(base, '/api/admin/usage/records/export?format=csv', g.admin.headers, (_res, req, n) => { if (n === 3) req.destroy() })
    t.notOk(res.complete)
    await idle()
    await sleep(300)
    const after = pages
    t.ok(after < PAGES, `${after} pages read of ${PAGES}`)
    await sleep(300)
    t.equal(pages, after, 'no page read after the client went')
    const audit = await auditRows()
    t.equal(audit.complete, false)
    t.ok(audit.rows < ROWS)
  })

  for (const format of ['csv', 'ndjson'] as const) {
    await t.test(`a database error mid-stream (${format}) ends the answer as an error; the server serves on`, async (t) => {
      let renamed: Promise<unknown> | null = null
      const res = await fetchRaw(base, `/api/admin/usage/records/export?format=${format}`, g.admin.headers, (res, _req, n) => {
        if (n !== 1) return
        res.pause()
        // the next page's statement fails: usage is gone
        renamed = client.query('ALTER TABLE usage RENAME TO usage_gone').then(() => res.resume())
      }, true)
      await renamed
      await client.query('ALTER TABLE usage_gone RENAME TO usage')
      t.equal(res.status, 200)
      if (format === 'csv') {
        t.notOk(res.complete, 'the body is cut off: the connection destroyed')
      } else {
        t.ok(res.complete)
        const last = JSON.parse(res.body.trimEnd().split('\n').at(-1)!) as { error: { code: string, rows: number } }
        t.equal(last.error.code, 'EXPORT_FAILED')
        t.equal(res.lines, last.error.rows + 1, 'complete records, then the error line')
      }
      await idle()
      t.match(await auditRows(), { rows: Number, complete: false })
      const after = await g.app.inject({ method: 'GET', url: '/api/admin/usage/records?limit=1', headers: g.admin.headers })
      t.equal(after.statusCode, 200, 'the process serves on')
    })
  }
})
