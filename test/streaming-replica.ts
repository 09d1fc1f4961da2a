// A real streaming replica for the tests, from the embedded PostgreSQL binaries, which
// carry no pg_basebackup: a cluster of its own (the shared test cluster is too busy to
// copy), a physical slot, then PostgreSQL's low-level base backup — pg_backup_start, a
// copy of the data directory without its WAL, pg_backup_stop's label as backup_label —
// started as a hot standby that streams from the slot.
import { spawn } from 'node:child_process'
import { appendFile, chmod, chown, cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import type { Test } from 'tap'
import { freePort, postgresBinaries, postgresUser, startEmbedded, stopPostmaster, type PostgresIds } from '../src/db/embedded.js'
import { applyMigrations } from '../src/db/migrate.js'
import { waitUntil } from './helper.js'

export interface StreamingPair {
  /** the migrated database on the primary */
  primaryUrl: string
  /** the same database on the hot standby */
  replicaUrl: string
  /** stops replaying WAL on the standby: it keeps answering, further and further behind */
  pauseReplay: () => Promise<void>
  resumeReplay: () => Promise<void>
  /** resolves once the standby has replayed everything the primary had written when called */
  caughtUp: () => Promise<void>
  /** one statement on the standby, on a connection of its own (the test's own looks) */
  onStandby: <T extends pg.QueryResultRow>(text: string) => Promise<T[]>
  /** kills the standby at once (SIGQUIT: PostgreSQL's immediate shutdown, a crash to its clients) */
  crash: () => Promise<void>
  /** starts the standby again on the same port; resolves once it accepts connections (it then streams and replays) */
  restart: () => Promise<void>
}

const PASSWORD = 'replica-test'
const DATABASE = 'keymeter'

/** the files a base backup leaves out: the running postmaster's, its log and the WAL (streamed instead) */
const copied = (root: string) => (path: string) => {
  const rel = path.slice(root.length + 1)
  return !['postmaster.pid', 'postmaster.opts', 'postgres.log'].includes(rel) && !(rel.startsWith('pg_wal/') && rel !== 'pg_wal/archive_status')
}

async function chownTree (dir: string, ids: PostgresIds): Promise<void> {
  if (ids.uid === undefined) return
  await chown(dir, ids.uid, ids.gid ?? ids.uid)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) await chownTree(path, ids)
    else await chown(path, ids.uid, ids.gid ?? ids.uid)
  }
}

/** `standbyFlags`: settings the standby starts with (e.g. `-c max_standby_streaming_delay=0`) */
export async function streamingPair (t: Test, standbyFlags: string[] = []): Promise<StreamingPair> {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-replica-'))
  await chmod(dir, 0o755) // PostgreSQL runs as the postgres user when we are root
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const primaryDir = join(dir, 'primary')
  const replicaDir = join(dir, 'replica')
  const primary = await startEmbedded({ dataDir: primaryDir, password: PASSWORD, database: DATABASE, persistent: false })
  t.teardown(primary.stop)
  await applyMigrations(primary.url)

  const admin = new pg.Client({ connectionString: primary.url })
  await admin.connect()
  try {
    await admin.query("SELECT pg_create_physical_replication_slot('test_replica', true)")
    await admin.query("SELECT pg_backup_start('test_replica', true)")
    await cp(primaryDir, replicaDir, { recursive: true, preserveTimestamps: true, filter: copied(primaryDir) })
    const { rows: [label] } = await admin.query<{ labelfile: string }>('SELECT labelfile FROM pg_backup_stop(true)')
    await writeFile(join(replicaDir, 'backup_label'), label!.labelfile)
  } finally {
    await admin.end()
  }
  const primaryPort = new URL(primary.url).port
  await writeFile(join(replicaDir, 'standby.signal'), '')
  await appendFile(join(replicaDir, 'postgresql.auto.conf'),
    `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=postgres password=${PASSWORD}'\nprimary_slot_name = 'test_replica'\n`)
  const ids = await postgresUser()
  await chownTree(replicaDir, ids)

  const { postgres } = await postgresBinaries()
  const port = await freePort()
  let pid: number | undefined
  const launch = () => {
    const child = spawn(postgres, ['-D', replicaDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', ...standbyFlags], { ...ids, detached: true, stdio: 'ignore' })
    child.unref()
    pid = child.pid
  }
  launch()
  // a standby's postmaster file says "standby", not "ready": wait for it to answer instead
  t.teardown(async () => { if (pid !== undefined) await stopPostmaster(pid).catch(() => {}) })
  const replicaUrl = `postgresql://postgres:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`
  const onReplica = async <T extends pg.QueryResultRow>(text: string): Promise<T[]> => {
    const client = new pg.Client({ connectionString: replicaUrl })
    client.on('error', () => {})
    await client.connect()
    try { return (await client.query<T>(text)).rows } finally { await client.end() }
  }
  const accepting = async () => {
    await waitUntil('the standby to accept connections', () => onReplica<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby').catch(() => []), (rows) => rows[0]?.standby === true, { timeoutMs: 60_000 })
  }
  await accepting()

  const caughtUp = async () => {
    const primaryClient = new pg.Client({ connectionString: primary.url })
    await primaryClient.connect()
    const { rows: [head] } = await primaryClient.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn').finally(() => primaryClient.end())
    await waitUntil('the standby to replay the primary\'s WAL', () => onReplica<{ behind: boolean }>(`SELECT pg_last_wal_replay_lsn() < '${head!.lsn}'::pg_lsn AS behind`), (rows) => rows[0]?.behind === false, { timeoutMs: 30_000 })
  }
  await caughtUp()
  return {
    primaryUrl: primary.url,
    replicaUrl,
    pauseReplay: async () => { await onReplica('SELECT pg_wal_replay_pause()') },
    resumeReplay: async () => { await onReplica('SELECT pg_wal_replay_resume()') },
    caughtUp,
    onStandby: onReplica,
    crash: async () => {
      if (pid === undefined) return
      process.kill(pid, 'SIGQUIT')
      await waitUntil('the standby to be gone', async () => { try { process.kill(pid!, 0); return false } catch { return true } }, (gone) => gone, { timeoutMs: 20_000 })
      pid = undefined
    },
    restart: async () => {
      launch()
      await accepting()
    }
  }
}
