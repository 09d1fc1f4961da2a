// loadConfig, requireSecrets and openRuntime's refusal of an external database without secrets.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig, requireSecrets } from '../src/config.js'
import { openRuntime } from '../src/runtime.js'

const SECRET = 'a-secret-of-at-least-32-characters-long'
const DATABASE_URL = 'postgresql://keymeter:pw@127.0.0.1:1/keymeter'

t.test('defaults apply when nothing is set', async (t) => {
  const config = loadConfig({})
  t.equal(config.PORT, 3000)
  t.equal(config.APP_TIMEZONE, 'UTC')
  t.equal(config.MIGRATE_ON_START, true)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.LOG_LEVEL, 'info')
  t.equal(config.DATABASE_URL, undefined)
  t.equal(config.SESSION_SECRET, undefined)
  t.equal(config.VERIFY_CACHE_TTL_MS, 1000, 'gateway verify reuses a read for at most a second')
  t.equal(config.USAGE_RETENTION_DAYS, 0, 'usage rows are kept unless the operator says otherwise')
})

t.test('an empty string counts as unset', async (t) => {
  const config = loadConfig({ PORT: '', MIGRATE_ON_START: '' })
  t.equal(config.PORT, 3000)
  t.equal(config.MIGRATE_ON_START, true)
})

t.test('strings are coerced to the schema types', async (t) => {
  const config = loadConfig({ MIGRATE_ON_START: 'false', PORT: '8080', TRUST_PROXY: '10.0.0.2', SESSION_TTL_HOURS: '48', VERIFY_CACHE_TTL_MS: '0' })
  t.equal(config.MIGRATE_ON_START, false)
  t.equal(config.PORT, 8080)
  t.equal(config.TRUST_PROXY, '10.0.0.2', 'the proxies, parsed by parseTrustProxy')
  t.equal(config.SESSION_TTL_HOURS, 48)
  t.equal(config.VERIFY_CACHE_TTL_MS, 0, '0 turns the verify cache off')
})

t.test('valid values are kept', async (t) => {
  const config = loadConfig({ DATABASE_URL, APP_TIMEZONE: 'Europe/Berlin', LOG_LEVEL: 'warn', SESSION_SECRET: SECRET })
  t.equal(config.DATABASE_URL, DATABASE_URL)
  t.equal(config.APP_TIMEZONE, 'Europe/Berlin')
  t.equal(config.LOG_LEVEL, 'warn')
  t.equal(config.SESSION_SECRET, SECRET)
})

const invalid: Array<[string, string]> = [
  ['PORT', 'abc'],
  ['PORT', '70000'],
  ['PORT', '80.5'],
  ['LOG_LEVEL', 'loud'],
  ['APP_TIMEZONE', 'Mars/Base'],
  ['SESSION_SECRET', 'too-short'],
  ['ENCRYPTION_KEY', 'too-short'],
  ['DATABASE_URL', 'mysql://x'],
  ['MIGRATE_ON_START', 'maybe'],
  ['VERIFY_CACHE_TTL_MS', '-1'],
  ['VERIFY_CACHE_TTL_MS', '60001'],
  ['VERIFY_CACHE_TTL_MS', '1.5'],
  ['USAGE_RETENTION_DAYS', '-1'],
  ['USAGE_RETENTION_DAYS', '36501'],
  ['USAGE_RETENTION_DAYS', '1.5'],
  ['USAGE_RETENTION_DAYS', 'forever']
]
for (const [name, value] of invalid) {
  t.test(`${name}=${value} throws a ConfigError naming ${name}`, async (t) => {
    t.throws(() => loadConfig({ [name]: value }), { name: 'ConfigError', message: new RegExp(`\\b${name}\\b`) })
    t.throws(() => loadConfig({ [name]: value }), ConfigError)
  })
}

t.test('every invalid variable is named in one error', async (t) => {
  t.throws(() => loadConfig({ PORT: 'abc', MIGRATE_ON_START: 'maybe' }), { message: /PORT.*MIGRATE_ON_START|MIGRATE_ON_START.*PORT/ })
})

t.test('requireSecrets names each missing secret', async (t) => {
  const config = loadConfig({ DATABASE_URL })
  t.throws(() => requireSecrets(config), { name: 'ConfigError', message: /SESSION_SECRET.*ENCRYPTION_KEY/ })
  t.throws(() => requireSecrets(config), ConfigError)
  t.throws(() => requireSecrets(loadConfig({ DATABASE_URL, SESSION_SECRET: SECRET })), {
    message: /ENCRYPTION_KEY/
  }, 'only the one still missing')
  t.notMatch(captureMessage(() => requireSecrets(loadConfig({ DATABASE_URL, SESSION_SECRET: SECRET }))), /SESSION_SECRET/)
})

t.test('requireSecrets passes a complete config through', async (t) => {
  const config = requireSecrets(loadConfig({ DATABASE_URL, SESSION_SECRET: SECRET, ENCRYPTION_KEY: SECRET }))
  t.equal(config.DATABASE_URL, DATABASE_URL)
  t.equal(config.SESSION_SECRET, SECRET)
  t.equal(config.ENCRYPTION_KEY, SECRET)
})

t.test('openRuntime refuses an external database without secrets and starts nothing', async (t) => {
  const parent = await mkdtemp(join(tmpdir(), 'keymeter-config-'))
  t.teardown(() => rm(parent, { recursive: true, force: true }))
  const dataDir = join(parent, 'data')
  const lines: string[] = []
  await t.rejects(openRuntime(loadConfig({ DATABASE_URL, DATA_DIR: dataDir }), (line) => lines.push(line)), {
    name: 'ConfigError', message: /SESSION_SECRET.*ENCRYPTION_KEY/
  })
  t.notOk(existsSync(dataDir), 'no data directory, so no generated secrets and no embedded cluster')
  t.same(lines, [], 'nothing logged (no embedded PostgreSQL started)')
})

t.test('openRuntime with an external database and its secrets uses that database', async (t) => {
  const runtime = await openRuntime(loadConfig({ DATABASE_URL, SESSION_SECRET: SECRET, ENCRYPTION_KEY: SECRET }), () => {})
  t.teardown(() => runtime.close())
  t.equal(runtime.embedded, false)
  t.equal(runtime.config.DATABASE_URL, DATABASE_URL)
})

function captureMessage (fn: () => unknown): string {
  try {
    fn()
    return ''
  } catch (error) {
    return (error as Error).message
  }
}

t.test('a refused value is answered with what the variable accepts and what was given', async (t) => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ LOG_LEVEL: 'verbose' }, "LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent; got 'verbose'"],
    [{ MIGRATE_ON_START: 'maybe' }, "MIGRATE_ON_START: must be true or false; got 'maybe'"],
    [{ AUTO_DELETE_EXPIRED_KEYS: 'yes please' }, "AUTO_DELETE_EXPIRED_KEYS: must be true or false; got 'yes please'"],
    [{ PORT: '70000' }, "PORT: must be a whole number from 0 to 65535; got '70000'"],
    [{ PORT: '80.5' }, "PORT: must be a whole number from 0 to 65535; got '80.5'"],
    [{ SHUTDOWN_GRACE_MS: 'soon' }, "SHUTDOWN_GRACE_MS: must be a whole number from 1000 to 600000; got 'soon'"],
    [{ SHUTDOWN_GRACE_MS: '0' }, "SHUTDOWN_GRACE_MS: must be a whole number from 1000 to 600000; got '0'"],
    [{ ADMIN_EMAIL: 'nobody' }, "ADMIN_EMAIL: must be an email address; got 'nobody'"]
  ]
  for (const [env, expected] of cases) t.equal(captureMessage(() => loadConfig(env)), `invalid configuration: ${expected}`)
  t.equal(captureMessage(() => loadConfig({ LOG_LEVEL: 'loud', PORT: 'abc' })),
    "invalid configuration: PORT: must be a whole number from 0 to 65535; got 'abc'; LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent; got 'loud'",
    'one line per variable, each named once')
})

t.test('a refused secret is described, never echoed', async (t) => {
  for (const [name, value] of <Array<[string, string]>>[['SESSION_SECRET', 'short-secret-1'], ['ENCRYPTION_KEY', 'short-secret-2'], ['ADMIN_PASSWORD', 'pw1'], ['DATABASE_URL', 'mysql://u:hunter2@x/db']]) {
    const message = captureMessage(() => loadConfig({ [name]: value }))
    t.match(message, new RegExp(`${name}: must `))
    t.notMatch(message, value, `${name}'s value is not in the message`)
  }
  t.equal(captureMessage(() => loadConfig({ SESSION_SECRET: 'x' })), 'invalid configuration: SESSION_SECRET: must have at least 32 characters')
})

t.test('SHUTDOWN_GRACE_MS: ten seconds by default, at least one', async (t) => {
  t.equal(loadConfig({}).SHUTDOWN_GRACE_MS, 10_000)
  t.equal(loadConfig({ SHUTDOWN_GRACE_MS: '1000' }).SHUTDOWN_GRACE_MS, 1000)
})
