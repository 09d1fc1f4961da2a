// A read replica for the tests, without a streaming replica (the embedded binaries carry no
// pg_basebackup): a second database whose public pg_is_in_recovery() and
// pg_last_xact_replay_timestamp(), found before pg_catalog's through the database's
// search_path, tell the lag a table says; and a TCP proxy in front of the server, closed to
// make the replica unreachable and opened again to bring it back. docs/scaling.md.
import net from 'node:net'
import pg from 'pg'
import type { KeymeterApp } from '../../src/app.js'
import type { Signed } from '../helper.js'

export interface FakeStandby {
  /** the replica is `ms` behind: its last replayed transaction committed that long ago (null: none replayed yet) */
  lag: (ms: number | null) => Promise<void>
  /** a primary (not in recovery): no lag whatever the timestamp */
  promote: () => Promise<void>
}

/** Makes the database at `url` answer the lag probe as a standby `initialMs` behind; call before any pool connects to it. */
export async function fakeStandby (url: string, initialMs: number | null = 0): Promise<FakeStandby> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`
      CREATE TABLE km_fake_standby (in_recovery boolean NOT NULL, lag_ms float8);
      INSERT INTO km_fake_standby VALUES (true, 0);
      CREATE FUNCTION public.pg_is_in_recovery() RETURNS boolean LANGUAGE sql STABLE AS 'SELECT in_recovery FROM public.km_fake_standby';
      -- relative to the probe's now(): a fixed lag, not one that grows as a still replica's would
      CREATE FUNCTION public.pg_last_xact_replay_timestamp() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT now() - lag_ms * interval ''1 ms'' FROM public.km_fake_standby'`)
    const { rows: [db] } = await client.query<{ name: string }>('SELECT current_database() AS name')
    await client.query(`ALTER DATABASE "${db!.name}" SET search_path = public, pg_catalog`)
  } finally {
    await client.end()
  }
  const run = async (text: string, values: unknown[] = []) => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    try { await c.query(text, values) } finally { await c.end() }
  }
  const standby: FakeStandby = {
    lag: async (ms) => { await run('UPDATE km_fake_standby SET in_recovery = true, lag_ms = $1', [ms]) },
    promote: async () => { await run('UPDATE km_fake_standby SET in_recovery = false, lag_ms = NULL') }
  }
  await standby.lag(initialMs)
  return standby
}

export interface Proxy {
  /** `url` with its host and port replaced by the proxy's */
  url: string
  /** refuses new connections and cuts the open ones, as a replica host going down */
  down: () => Promise<void>
  /** listens again on the same port */
  up: () => Promise<void>
}

/** A TCP proxy on a free local port to the server of `url`, closed at teardown. */
export async function tcpProxy (t: { teardown: (fn: () => Promise<void> | void) => void }, url: string): Promise<Proxy> {
  const target = new URL(url)
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => { sockets.delete(socket); client.destroy(); upstream.destroy() })
    }
    client.pipe(upstream).pipe(client)
  })
  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
  await listen(0)
  const port = (server.address() as net.AddressInfo).port
  const down = async () => {
    if (!server.listening) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    for (const socket of sockets) socket.destroy()
    await closed
  }
  t.teardown(down)
  const proxied = new URL(url)
  proxied.hostname = '127.0.0.1'
  proxied.port = String(port)
  return { url: proxied.toString(), down, up: () => listen(port) }
}

/** The admin usage statistics' total_requests: which database answered shows in it. */
export const totalRequests = async (app: KeymeterApp, admin: Signed) => {
  const res = await app.inject({ method: 'GET', url: '/api/admin/usage/stats', headers: admin.headers })
  if (res.statusCode !== 200) throw new Error(res.body)
  return res.json().total_requests as number
}
