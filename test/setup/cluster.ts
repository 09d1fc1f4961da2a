// The PostgreSQL the test run uses: TEST_DATABASE_URL when given, else an embedded
// server started once for the whole run (tap `before`) and stopped after it (tap
// `after`). It runs in its own session so it outlives the `before` script; its address
// is passed to the test files through a state file.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { freePort, initCluster, postgresUser, spawnPostmaster } from '../../src/db/embedded.js'
import { applyMigrations } from '../../src/db/migrate.js'

const STATE_DIR = resolve('.data/test')
// keyed by the tap runner's pid (the parent of `before`, `after` and every test file), so runs side by side don't collide
const STATE_FILE = join(STATE_DIR, `cluster-${process.ppid}.json`)
export const TEMPLATE_DB = `keymeter_test_template_${process.ppid}`

export interface ClusterState { adminUrl: string, pid?: number, dataDir?: string }

export function clusterState (): ClusterState {
  if (process.env.TEST_DATABASE_URL !== undefined && !existsSync(STATE_FILE)) return { adminUrl: process.env.TEST_DATABASE_URL }
  return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as ClusterState
}

/** The same server, another database. */
export function databaseUrl (adminUrl: string, database: string): string {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return url.toString()
}

async function waitForServer (url: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const client = new pg.Client({ connectionString: url })
    try {
      await client.connect()
      await client.end()
      return
    } catch {
      await sleep(100)
    }
  }
  throw new Error(`test PostgreSQL did not come up at ${url}`)
}

async function startDetached (): Promise<ClusterState> {
  const dataDir = join(STATE_DIR, `pg-${process.pid}`)
  const password = 'keymeter-test'
  const port = await freePort()
  const ids = await postgresUser()
  await initCluster(dataDir, password, ids)
  // durability is pointless for a throwaway cluster; these make CREATE DATABASE and commits fast
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=300']
  // in its own session, as the server's: it outlives the `before` script
  const pid = await spawnPostmaster(dataDir, port, flags, ids)
  const adminUrl = `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`
  await waitForServer(adminUrl)
  return { adminUrl, pid, dataDir }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Servers left behind by runs that were killed before their `after` step. */
async function reapAbandoned (): Promise<void> {
  for (const name of await readdir(STATE_DIR)) {
    const runner = /^cluster-(\d+)\.json$/.exec(name)?.[1]
    if (runner === undefined || alive(Number(runner))) continue
    const state = JSON.parse(readFileSync(join(STATE_DIR, name), 'utf8')) as ClusterState
    if (state.pid !== undefined && alive(state.pid)) process.kill(state.pid, 'SIGINT')
    if (state.dataDir !== undefined) await rm(state.dataDir, { recursive: true, force: true })
    await rm(join(STATE_DIR, name), { force: true })
  }
}

export async function setUpCluster (): Promise<void> {
  await mkdir(STATE_DIR, { recursive: true })
  await reapAbandoned()
  const state = process.env.TEST_DATABASE_URL !== undefined ? { adminUrl: process.env.TEST_DATABASE_URL } : await startDetached()
  await writeFile(STATE_FILE, JSON.stringify(state))
  const admin = new pg.Client({ connectionString: state.adminUrl })
  await admin.connect()
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`)
    await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`)
  } finally {
    await admin.end()
  }
  await applyMigrations(databaseUrl(state.adminUrl, TEMPLATE_DB))
}

export async function tearDownCluster (): Promise<void> {
  if (!existsSync(STATE_FILE)) return
  const state = clusterState()
  if (state.pid !== undefined) {
    try { process.kill(state.pid, 'SIGINT') } catch { /* already gone */ }
    for (let i = 0; i < 100; i++) {
      try { process.kill(state.pid, 0) } catch { break }
      await sleep(100)
    }
    if (state.dataDir !== undefined) await rm(state.dataDir, { recursive: true, force: true })
  } else {
    const admin = new pg.Client({ connectionString: state.adminUrl })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`)
    await admin.end()
  }
  await rm(STATE_FILE, { force: true })
}
