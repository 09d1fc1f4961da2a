// Two server processes on one database enforce one key's limits exactly: no counter in
// a process decides admission, the key's advisory lock in PostgreSQL does.
import t from 'tap'
import { GATEWAY_TOKEN, testConfig, waitUntil } from '../../helper.js'
import { spawnServerProcess } from '../../process.js'
import { gateway, GATEWAY } from './fixtures.js'

t.test('200 concurrent reservations over two instances against room for 5: exactly 5 admitted', async (t) => {
  const env = { ADMISSION_DEFAULT_HOLD_USD: '0.01' }
  const g = await gateway(t, env)
  const config = testConfig(g.url, env)
  const key = await g.standaloneKey({ initial_balance_usd: 0.05 })
  const instances = await Promise.all([0, 1].map(async () => {
    const server = await spawnServerProcess(t, {
      DATABASE_URL: g.url, GATEWAY_TOKEN, SESSION_SECRET: config.SESSION_SECRET!, ENCRYPTION_KEY: config.ENCRYPTION_KEY!,
      ADMISSION_DEFAULT_HOLD_USD: '0.01', MIGRATE_ON_START: 'false', LOG_LEVEL: 'warn', CLEANUP_CRON: 'off'
    })
    await waitUntil(`instance on ${server.port} ready`, async () => (await fetch(`${server.base}/ready`).catch(() => null))?.status, (status) => status === 200, { timeoutMs: 120_000, intervalMs: 100 })
    return server
  }))
  const statuses = await Promise.all(Array.from({ length: 200 }, async (_v, i) => {
    const res = await fetch(`${instances[i % 2]!.base}/api/gateway/keys/verify`, {
      method: 'POST', headers: { ...GATEWAY, 'content-type': 'application/json' }, body: JSON.stringify({ key: key.key, request_id: `two-${i}` })
    })
    return [i % 2, res.status] as const
  }))
  const admitted = statuses.filter(([, status]) => status === 200)
  t.equal(admitted.length, 5, 'five admitted in all')
  t.equal(statuses.filter(([, status]) => status === 402).length, 195, 'the rest refused 402')
  t.comment(`admitted by instances ${admitted.map(([instance]) => instance).join(', ')}`)
  const { rows } = await g.app.pg.query<{ n: number, held: string }>('SELECT count(*)::int AS n, sum(amount)::text AS held FROM admission_holds WHERE api_key_id = $1', [key.id])
  t.same(rows[0], { n: 5, held: '50000000' }, 'five holds of 0.01 in the database')
})
