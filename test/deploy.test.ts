// Deployment (issue 18, item 8): what the image and compose promise, read from the files
// they are built from, and the two behaviours they rely on run for real: a database
// password of any characters through PGPASSWORD, and .env read by the server.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t from 'tap'
import { ConfigSchema } from '../src/config.js'
import { readEnvFile } from '../src/env-file.js'
import { createDatabase } from './helper.js'
import { spawnServerProcess } from './process.js'
import { clusterState } from './setup/cluster.js'

const root = new URL('../', import.meta.url)
const text = (file: string) => readFile(new URL(file, root), 'utf8')

/** The app service's block of docker-compose.yml, and the names its environment sets. */
async function composeApp (): Promise<{ block: string, names: string[] }> {
  const compose = await text('docker-compose.yml')
  const block = compose.slice(compose.indexOf('\n  app:\n'), compose.indexOf('\nvolumes:'))
  const environment = block.slice(block.indexOf('    environment:\n'), block.indexOf('\n    volumes:'))
  return { block, names: [...environment.matchAll(/^ {6}([A-Z_][A-Z0-9_]*):/gm)].map((match) => match[1]!) }
}

t.test('compose passes every setting the app knows, and the database password apart from the URL', async (t) => {
  const { names } = await composeApp()
  t.same(names.filter((name) => !(name in ConfigSchema.properties)).sort(), ['PGPASSWORD'], 'nothing but the password beside the settings')
  t.same(Object.keys(ConfigSchema.properties).filter((name) => !names.includes(name)), [], 'no setting left out')
  const { block } = await composeApp()
  t.match(block, /DATABASE_URL: postgresql:\/\/keymeter@db:5432\/keymeter\n/, 'no password in the URL')
})

t.test('compose publishes the port on 127.0.0.1 unless told otherwise, and waits out the drain', async (t) => {
  const { block } = await composeApp()
  t.match(block, /- "\$\{KEYMETER_BIND:-127\.0\.0\.1\}:\$\{PORT:-3000\}:\$\{PORT:-3000\}"/)
  const grace = /stop_grace_period: \$\{KEYMETER_STOP_GRACE:-(\d+)s\}/.exec(block)
  t.ok(grace, 'a stop grace period')
  t.ok(Number(grace![1]) * 1000 > (ConfigSchema.properties.SHUTDOWN_GRACE_MS as unknown as { default: number }).default + 5000, 'longer than the drain, with time to close the pools')
})

t.test('the image: a supported LTS, a health check that follows PORT, a data volume, only what runs', async (t) => {
  const dockerfile = await text('Dockerfile')
  const stages = dockerfile.split(/^FROM /m).slice(1)
  t.equal(stages.length, 2, 'a build stage and a runtime stage')
  for (const stage of stages) {
    const major = Number(/^node:(\d+)-/.exec(stage)?.[1])
    // Node 20 left maintenance in April 2026; even majors are the LTS lines
    t.ok(major >= 22 && major % 2 === 0, `node:${major} is a supported LTS`)
  }
  const runtime = stages[1]!
  t.match(runtime, /HEALTHCHECK [^\n]*process\.env\.PORT/, 'the health check asks the port the server listens on')
  t.match(runtime, /DATA_DIR=\/data/, 'without DATABASE_URL the embedded database lives in /data')
  t.match(runtime, /VOLUME \/data/)
  t.match(runtime, /chown node:node \/data/, 'writable by the user the server runs as')
  t.notMatch(runtime, /COPY --from=build \/app\/src/, 'no TypeScript sources')
  t.match(stages[0]!, /npm prune --omit=dev/, 'the dev dependencies are pruned before the copy')
  const { dependencies } = JSON.parse(await text('package.json')) as { dependencies: Record<string, string> }
  for (const tool of ['prisma', 'typescript', 'tsx', '@prisma/internals', 'tap']) t.notOk(tool in dependencies, `${tool} is not a runtime dependency`)
})

t.test('.env: its variables are set unless the environment has them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-env-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, '.env')
  await writeFile(file, 'A=from-file\nB="quoted value"\n# a comment\nC=from-file\n')
  const env: NodeJS.ProcessEnv = { C: 'from-environment' }
  t.same(readEnvFile(file, env), ['A', 'B'])
  t.same(env, { A: 'from-file', B: 'quoted value', C: 'from-environment' })
  t.equal(readEnvFile(join(dir, 'missing.env'), env), null, 'no file: nothing read')
})

t.test('the server reads .env from its working directory; the environment wins', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-env-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const url = await createDatabase(t)
  const metricsToken = `metrics-${randomBytes(12).toString('hex')}`
  // PORT here would move the server off the port the test gave it: the environment's must win
  await writeFile(join(dir, '.env'), [`DATABASE_URL=${url}`, 'SESSION_SECRET=env-file-session-secret-0123456789', 'ENCRYPTION_KEY=env-file-encryption-key-0123456789',
    `METRICS_TOKEN=${metricsToken}`, 'PORT=1', 'LOG_FORMAT=json'].join('\n'))
  const server = await spawnServerProcess(t, { LOG_LEVEL: 'info' }, { cwd: dir })
  await server.waitFor(/Server listening/)
  t.equal((await fetch(`${server.base}/ready`)).status, 200, 'ready on the port from the environment, with the database from .env')
  t.equal((await fetch(`${server.base}/metrics`)).status, 401, 'METRICS_TOKEN from .env guards /metrics')
  t.equal((await fetch(`${server.base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).status, 200)
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})

t.test('a database password of any characters, given apart from the URL (PGPASSWORD), as compose gives it', async (t) => {
  const url = new URL(await createDatabase(t))
  const role = `km_odd_${randomBytes(4).toString('hex')}`
  const password = `p@ss:w/rd#?%& é'"${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: clusterState().adminUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD ${admin.escapeLiteral(password)}`)
  const bare = `postgresql://${role}@${url.host}${url.pathname}`
  const server = await spawnServerProcess(t, {
    LOG_LEVEL: 'info', DATABASE_URL: bare, PGPASSWORD: password,
    SESSION_SECRET: 'pgpassword-session-secret-0123456789', ENCRYPTION_KEY: 'pgpassword-encryption-key-0123456789'
  })
  await server.waitFor(/Server listening/)
  t.equal((await fetch(`${server.base}/ready`)).status, 200, 'connected with the password as given')
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})
