// The real server process logs in one format: every line of its output, from the first
// migration to the stop, is JSON with a level, a time and a message; each request is one
// line with its method, route pattern, status, duration and request id; credentials sent
// in headers never appear. And the readable form a terminal gets.
import t from 'tap'
import { createLogger, envLogFormat, prettyLine } from '../../src/http/logging.js'
import { createDatabase, logCapture } from '../helper.js'
import { spawnServerProcess } from '../process.js'

interface Line { level: number, time: number, msg: string, request_id?: string, method?: string, route?: string, status?: number, duration_ms?: number, err?: unknown }

t.test('the server process: startup, migration, request and shutdown lines are all JSON; no secret from a header', async (t) => {
  const url = await createDatabase(t, { migrated: false })
  const password = 'first-admin-password-logged-never'
  const server = await spawnServerProcess(t, {
    LOG_LEVEL: 'info',
    DATABASE_URL: url,
    SESSION_SECRET: 'logging-test-session-secret-0123456789',
    ENCRYPTION_KEY: 'logging-test-encryption-key-0123456789',
    ADMIN_PASSWORD: password
  })
  await server.waitFor(/Server listening/)
  const secrets = {
    authorization: 'Bearer kms_headersecret0123456789abcdef',
    cookie: 'km_session=cookiesecret0123456789abcdef',
    'x-api-key': 'sk-xapikeysecret0123456789abcdef',
    'x-forwarded-for': '203.0.113.77',
    forwarded: 'for=198.51.100.9'
  }
  const refused = await fetch(`${server.base}/api/users/me`, { headers: { ...secrets, 'x-request-id': 'log-test-1' } })
  t.equal(refused.status, 401)
  t.equal((await fetch(`${server.base}/api/admin/users/00000000-0000-4000-8000-000000000000`, { headers: { 'x-request-id': 'log-test-2' } })).status, 401)
  const login = await fetch(`${server.base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'log-test-3' }, body: JSON.stringify({ email: 'admin', password }) })
  t.equal(login.status, 200)
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 0, signal: null })
  t.equal(server.stderr(), '', 'nothing on stderr: no error')

  const out = server.stdout()
  const lines = out.split('\n').filter((line) => line !== '')
  const entries: Line[] = []
  for (const line of lines) {
    let entry: Line | undefined
    t.doesNotThrow(() => { entry = JSON.parse(line) as Line }, `JSON: ${line.slice(0, 80)}`)
    if (entry === undefined) continue
    t.ok(typeof entry.level === 'number' && typeof entry.time === 'number' && typeof entry.msg === 'string', `level, time and message: ${entry.msg}`)
    entries.push(entry)
  }
  const messages = entries.map((e) => e.msg)
  t.ok(messages.some((m) => /^applied migration \d+_init$/.test(m)), 'a migration line')
  t.ok(messages.includes('migrations: applied ' + String(messages.filter((m) => m.startsWith('applied migration ')).length)), 'the migrations\' summary')
  t.ok(messages.some((m) => m.startsWith('Server listening at http://127.0.0.1:')), 'the listening line')
  t.ok(messages.includes('SIGTERM: draining requests and stopping'), 'the stop')
  t.equal(messages.at(-1), 'stopped', 'the last line says it stopped')

  const requests = entries.filter((e) => e.msg === 'request completed')
  t.match(requests, [
    { request_id: 'log-test-1', method: 'GET', route: '/api/users/me', status: 401, duration_ms: Number },
    { request_id: 'log-test-2', method: 'GET', route: '/api/admin/users/:id', status: 401, duration_ms: Number },
    { request_id: 'log-test-3', method: 'POST', route: '/api/auth/login', status: 200, duration_ms: Number }
  ], 'one line per request, with its route pattern')
  t.equal(requests.length, 3, 'and no other request line')
  for (const [name, value] of Object.entries(secrets)) t.notOk(out.includes(value.slice(-12)), `the ${name} header is not in the output`)
  t.notOk(out.includes(password), 'nor the password')
})

t.test('a start that fails says so in one JSON line on stderr', async (t) => {
  const server = await spawnServerProcess(t, { PORT: 'not-a-port', LOG_FORMAT: 'json' })
  t.same(await server.exited, { code: 1, signal: null })
  t.equal(server.stdout(), '')
  const lines = server.stderr().trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  const entry = JSON.parse(lines[0]!) as Line
  t.equal(entry.level, 60, 'fatal')
  t.match(entry.msg, /^keymeter failed to start: invalid configuration: PORT: must be a whole number/)
})

t.test('the readable form: time, level, message, fields, and an error\'s stack indented below', async (t) => {
  const time = Date.UTC(2026, 11, 2, 13, 4, 5, 67)
  t.equal(prettyLine(JSON.stringify({ level: 30, time, pid: 1, hostname: 'h', msg: 'request completed', request_id: 'r1', status: 200, route: { a: 1 } })),
    '13:04:05.067 INFO  request completed request_id=r1 status=200 route={"a":1}\n')
  t.equal(prettyLine(JSON.stringify({ level: 50, time, msg: 'boom', err: { stack: 'Error: x\n    at y' } })), '13:04:05.067 ERROR boom\n    Error: x\n        at y\n')
  t.equal(prettyLine(JSON.stringify({ level: 60, time, msg: 'no stack', err: { message: 'just this' } })), '13:04:05.067 FATAL no stack\n    just this\n')
  t.equal(prettyLine(JSON.stringify({ level: 35, msg: 'odd' })), ' 35    odd\n', 'an unknown level and no time')
  t.equal(prettyLine(JSON.stringify({ level: 50, time, err: {} })), '13:04:05.067 ERROR \n    \n', 'no message, an error without a stack or message')
  t.equal(prettyLine('not json'), 'not json', 'a line that is not JSON passes as is')

  // LOG_FORMAT=pretty (or auto on a terminal): the process's own streams get readable lines
  const written: string[] = []
  const capture = t.capture(process.stdout, 'write', (chunk: string) => { written.push(String(chunk)); return true })
  const errors: string[] = []
  const captureErr = t.capture(process.stderr, 'write', (chunk: string) => { errors.push(String(chunk)); return true })
  const pretty = createLogger({ level: 'info', format: 'auto', terminal: true })
  pretty.info({ status: 204 }, 'readable')
  pretty.error('an error')
  pretty.debug('below the level')
  capture.restore?.()
  captureErr.restore?.()
  t.match(written.join(''), /^\d\d:\d\d:\d\d\.\d{3} INFO {2}readable status=204\n$/)
  t.match(errors.join(''), /^\d\d:\d\d:\d\d\.\d{3} ERROR an error\n$/, 'errors on stderr')

  t.same(['json', 'pretty', 'auto', 'JSON', 'verbose', undefined].map((value) => envLogFormat(value)), ['json', 'pretty', 'auto', 'auto', 'auto', 'auto'], 'LOG_FORMAT before the configuration: an invalid one is auto')

  // a test's stream gets every line as JSON
  const logs = logCapture()
  createLogger({ level: 'info', format: 'pretty', stream: logs.stream }).warn('to the stream')
  const forced: string[] = []
  const captureForced = t.capture(process.stdout, 'write', (chunk: string) => { forced.push(String(chunk)); return true })
  createLogger({ level: 'info', format: 'pretty', terminal: false }).info('pretty even off a terminal')
  captureForced.restore?.()
  t.match(forced.join(''), /INFO {2}pretty even off a terminal\n$/)
  t.match(JSON.parse(logs.lines[0]!), { level: 40, msg: 'to the stream' })
  const key = 'sk-requestkey0123456789abcdef'
  createLogger({ level: 'info', format: 'json', stream: logs.stream }).info({ req: { method: 'GET', url: `/x?api_key=${key}`, ip: '192.0.2.1', headers: { authorization: 'Bearer raw' } } }, 'a request logged whole')
  t.same(JSON.parse(logs.lines[1]!).req, { method: 'GET', url: '/x?api_key=sk-r[redacted]', ip: '192.0.2.1' }, 'a request object: its method, scrubbed URL and address, never its headers')
})
