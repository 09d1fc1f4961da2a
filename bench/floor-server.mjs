// The floor's server (bench/floor.ts): the least a server can do for each case, on
// Fastify and node-postgres as keymeter does, and nothing else — no authentication,
// hashing, validation schema, hooks, logging or metrics. Its JSON argument names the case,
// the database and the keys; it listens on a free port, sends its URL, and answers the
// harness's IPC 'cpu' question like serve.mjs.
import Fastify from 'fastify'
import pg from 'pg'

const { mode, databaseUrl, keys } = JSON.parse(process.argv[2])
// keymeter's verify pool's size (DB_POOL_VERIFY's default)
const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 })

// holds: the requests waiting for the next batch; one batch at a time (the reserver's default)
let waiting = []
let inBatch = false

/** One batch of reservations in one transaction: the keys locked, their live holds summed, a hold inserted per request. */
async function reserve () {
  if (inBatch || waiting.length === 0) return
  inBatch = true
  const batch = waiting
  waiting = []
  const client = await pool.connect()
  try {
    const keyIds = [...new Set(batch.map((r) => r.key.id))].sort()
    await client.query('BEGIN')
    await client.query({ name: 'lock', text: 'SELECT id, balance_used FROM api_keys WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', values: [keyIds] })
    await client.query({ name: 'held', text: 'SELECT api_key_id, sum(amount) AS held, count(*) AS n FROM admission_holds WHERE api_key_id = ANY($1::uuid[]) AND expires_at > now() GROUP BY 1', values: [keyIds] })
    await client.query({
      name: 'hold',
      text: `INSERT INTO admission_holds (request_id, api_key_id, user_id, amount, expires_at)
             SELECT r, k, u, 1000000, now() + interval '10 minutes' FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS x(r, k, u)`,
      values: [batch.map((r) => r.requestId), batch.map((r) => r.key.id), batch.map((r) => r.key.userId)]
    })
    await client.query('COMMIT')
    for (const r of batch) r.resolve()
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    for (const r of batch) r.reject(error)
  } finally {
    client.release()
    inBatch = false
    void reserve()
  }
}

// every 50 ms (as the bench's settler) the holds taken since are settled, one statement at a
// time: deleted (holds), or deleted and written as usage rows (holds+usage: copies of one real
// completed row, every index and trigger of usage paid) — no HTTP, receipts, rollups or cache data
const columns = mode === 'holds+usage'
  ? (await pool.query("SELECT attname FROM pg_attribute WHERE attrelid = 'usage'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")).rows.map((r) => r.attname)
  : []
const fromHold = { id: 'gen_random_uuid()', request_id: 's.request_id', api_key_id: 's.api_key_id', user_id: 's.user_id', created_at: 's.created_at', finished_at: 'now()', updated_at: 'now()' }
const SETTLE = mode === 'holds+usage'
  ? `
  WITH s AS (DELETE FROM admission_holds RETURNING request_id, api_key_id, user_id, created_at)
  INSERT INTO usage (${columns.join(', ')})
  SELECT ${columns.map((c) => fromHold[c] ?? `t.${c}`).join(', ')}
    FROM s CROSS JOIN (SELECT * FROM usage WHERE status = 'completed' LIMIT 1) t`
  : 'DELETE FROM admission_holds'
let settling = false
if (mode === 'holds' || mode === 'holds+usage') {
  setInterval(() => {
    if (settling) return
    settling = true
    pool.query(SETTLE).catch((error) => console.error(`floor settle: ${error.message}`)).finally(() => { settling = false })
  }, 50)
}

const app = Fastify({ logger: false })
app.post('/verify', async (request) => {
  const { key: n, request_id: requestId } = request.body
  const key = keys[n % keys.length]
  if (mode === 'statement') await pool.query({ name: 'key', text: 'SELECT id, user_id, balance_used FROM api_keys WHERE id = $1', values: [key.id] })
  if (mode === 'holds' || mode === 'holds+usage') await new Promise((resolve, reject) => { waiting.push({ key, requestId, resolve, reject }); void reserve() })
  return { valid: true, key_id: key.id, user_id: key.userId }
})
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.(url)
process.on('message', (message) => {
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage() })
})
process.once('SIGTERM', () => { void app.close().then(() => pool.end()).then(() => process.exit(0)) })
