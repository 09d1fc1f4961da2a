// Issue 14, item 3: a time zone is valid when both PostgreSQL (pg_timezone_names, read
// at boot) and Intl accept it, since day boundaries are cut in SQL and in Node. Zones
// Intl knows but PostgreSQL does not gave 500 on the heatmap, and as APP_TIMEZONE
// passed the boot check and then failed every gateway verify.
import t from 'tap'
import pg from 'pg'
import { buildApp } from '../../src/app.js'
import { ConfigError } from '../../src/config.js'
import { buildTestApp, createDatabase, signIn, testConfig } from '../helper.js'
import { spawnServer } from './input-server.js'

const NODE_ONLY = ['SST', 'CAT', 'US/Pacific-New', 'Canada/East-Saskatchewan']

async function pgZoneNames (url: string): Promise<Set<string>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return new Set((await client.query<{ name: string }>('SELECT name FROM pg_timezone_names')).rows.map((r) => r.name.toLowerCase()))
  } finally {
    await client.end()
  }
}

const intlAccepts = (zone: string) => {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: zone }).resolvedOptions().timeZone !== ''
  } catch {
    return false
  }
}

t.test('the zones under test are accepted by Intl and absent from PostgreSQL\'s names', async (t) => {
  const url = await createDatabase(t)
  const names = await pgZoneNames(url)
  for (const zone of NODE_ONLY) {
    t.ok(intlAccepts(zone), `Intl accepts ${zone}`)
    t.notOk(names.has(zone.toLowerCase()), `pg_timezone_names lacks ${zone}`)
  }
})

t.test('every endpoint taking a timezone refuses a zone PostgreSQL does not know with a 400 naming the field', async (t) => {
  const { app } = await buildTestApp(t)
  const admin = await signIn(app, 'admin')
  const key = (await app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: admin.headers, payload: { name: 'zoned' } })).json()
  const endpoints = ['/api/admin/usage/heatmap', `/api/admin/api-keys/${key.id}/stats`]
  for (const path of endpoints) {
    for (const zone of NODE_ONLY) {
      const res = await app.inject({ method: 'GET', url: `${path}?timezone=${encodeURIComponent(zone)}`, headers: admin.headers })
      t.equal(res.statusCode, 400, `${path} timezone=${zone}`)
      t.match(res.json(), { error: { type: 'invalid_input', field: 'query.timezone', message: new RegExp(`unknown time zone "${zone.replace('/', '\\/')}"`) }, request_id: String })
    }
    // zones both accept still work, in any case
    for (const zone of ['Europe/Paris', 'europe/paris', 'UTC', 'America/Regina', 'Asia/Kathmandu']) {
      const res = await app.inject({ method: 'GET', url: `${path}?timezone=${encodeURIComponent(zone)}`, headers: admin.headers })
      t.equal(res.statusCode, 200, `${path} timezone=${zone}`)
    }
  }
})

t.test('APP_TIMEZONE that PostgreSQL does not know stops buildApp with a ConfigError naming the variable', async (t) => {
  const url = await createDatabase(t)
  for (const zone of NODE_ONLY) {
    const refused = await buildApp(testConfig(url, { APP_TIMEZONE: zone })).then(async (app) => { await app.close(); return null }, (error: unknown) => error)
    t.ok(refused instanceof ConfigError, `APP_TIMEZONE=${zone} is a ConfigError`)
    t.match((refused as Error | null)?.message, `APP_TIMEZONE: "${zone}" is not a time zone name PostgreSQL knows`)
  }
  const { app } = await buildTestApp(t, { url, env: { APP_TIMEZONE: 'asia/kolkata' } })
  t.equal(app.config.APP_TIMEZONE, 'asia/kolkata', 'a zone both accept, in any case, boots')
})

t.test('the server process refuses APP_TIMEZONE=SST at boot with code 1 and a message naming the variable', async (t) => {
  const url = await createDatabase(t)
  const server = await spawnServer(t, url, { APP_TIMEZONE: 'SST' })
  // the old boot passed and served (every verify then answered 500): listening fails the test
  const outcome = await Promise.race([server.exited.then((exit) => ({ exit })), server.listening().then(() => ({ exit: null }), () => ({ exit: null }))])
  t.notOk(/Server listening/.test(server.stdout()), 'never listens')
  t.same(outcome.exit, { code: 1, signal: null })
  t.match((JSON.parse(server.stderr()) as { msg: string }).msg, /keymeter failed to start: invalid configuration: APP_TIMEZONE: "SST" is not a time zone name PostgreSQL knows/)
})
