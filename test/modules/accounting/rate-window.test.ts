// The rate window (accounting/read/counters.ts) reads its whole seconds from
// usage_key_seconds and only the part-second at its start from usage. What it reads must
// be what counting the key's usage rows directly gives: requests created in the window
// (any status), their tokens and the oldest one — for random requests (started only,
// completed, started then completed) at random instants, and windows of 1 s to an hour,
// each compared in one snapshot with a plain count over usage.
import t from 'tap'
import { keyStateQuery, keyStatesOf } from '../../../src/modules/keys/counters.js'
import { gateway } from '../gateway/fixtures.js'
import { mulberry32, testSeed } from '../../prng.js'

const settings = { timeZone: 'UTC', pendingTimeoutMinutes: 30 }

t.test('the window read from per-second counts equals a count over the usage rows', async (t) => {
  const random = mulberry32(testSeed(t))
  const g = await gateway(t)
  const key = await g.standaloneKey({ rate_limit: 1_000_000, token_limit: 1_000_000_000 })
  const other = await g.standaloneKey({ rate_limit: 1_000_000 })
  const now = Date.now()
  const events: object[] = []
  for (let i = 0; i < 300; i++) {
    // instants over the last 100 s (a third of them on a whole second), a few seconds ahead (a gateway's clock)
    let at = now - Math.floor(random() * 100_000) + 3_000
    if (random() < 0.33) at -= at % 1000
    const owner = random() < 0.8 ? key : other
    const base = { request_id: `w-${i}`, api_key_id: owner.id, model: 'unpriced', created_at: new Date(at).toISOString() }
    const kind = random()
    const tokens = { input_tokens: Math.floor(random() * 500), output_tokens: Math.floor(random() * 500) }
    if (kind < 0.3) events.push({ type: 'start', ...base })
    else if (kind < 0.6) events.push({ type: 'complete', ...base, status: 'completed', status_code: 200, ...tokens })
    else events.push({ type: 'start', ...base }, { type: 'complete', ...base, status: random() < 0.2 ? 'failed' : 'completed', status_code: 200, ...tokens })
  }
  // in batches of 50, so the starts and their completions often land in different batches
  for (let i = 0; i < events.length; i += 50) await g.send(events.slice(i, i + 50))

  for (const seconds of [1, 7, 30, 60, 95, 3600]) {
    await g.app.pg.query('UPDATE api_keys SET rate_window_seconds = $1 WHERE id = $2', [seconds, key.id])
    const client = await g.app.pg.connect()
    try {
      // one snapshot and one now() for both reads
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
      const query = keyStateQuery({ id: key.id as string }, settings)
      const [state] = await keyStatesOf((await client.query(query.text, query.values)).rows, async (budgets) => (await client.query(budgets.text, budgets.values)).rows)
      const { rows: [direct] } = await client.query(`
        SELECT count(*)::int AS requests, COALESCE(sum(total_tokens), 0)::text AS tokens, min(created_at) AS oldest
          FROM usage WHERE api_key_id = $1 AND created_at > now() - make_interval(secs => $2)`, [key.id, seconds])
      await client.query('COMMIT')
      t.same({ requests: state!.counters.window_requests, tokens: state!.counters.window_tokens.toString(), oldest: state!.counters.window_oldest },
        direct, `a ${seconds} s window: ${direct.requests as number} requests`)
    } finally {
      client.release()
    }
  }
})
