// GATEWAY_TOKEN: the 16-character minimum holds for each comma-separated token (not for
// the list), the boot names the problem without printing a token, and tokens are
// compared by digest (a prefix, an extension or a short token never matches).
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { randomBase62 } from '../../src/lib/crypto.js'
import { gatewayDigests, gatewayPrincipal } from '../../src/modules/auth/service.js'
import { createDatabase, testConfig } from '../helper.js'

const LONG = `gw-${randomBase62(33)}` // 36 characters

t.test('a short token beside a long one stops the boot, naming the variable and not the tokens', async (t) => {
  for (const value of [`${LONG},b`, `b,${LONG}`, `${LONG}, ${'x'.repeat(15)}`]) {
    let message = ''
    t.throws(() => { try { loadConfig({ GATEWAY_TOKEN: value }) } catch (error) { message = (error as Error).message; throw error } }, ConfigError, `"${value.replace(LONG, '<long>')}" refused`)
    t.match(message, /GATEWAY_TOKEN: token \d of 2 is \d+ characters; each comma-separated token must have at least 16/)
    t.notOk(message.includes(LONG), 'the long token is not printed')
    t.notOk(message.includes('x'.repeat(15)), 'the short token is not printed')
  }
  t.throws(() => loadConfig({ GATEWAY_TOKEN: ' , ' }), { name: 'ConfigError', message: /GATEWAY_TOKEN: no token given/ })
  t.same(loadConfig({ GATEWAY_TOKEN: `${LONG}, ${'y'.repeat(16)}` }).GATEWAY_TOKEN, `${LONG}, ${'y'.repeat(16)}`, 'two tokens of 16+ characters are accepted')
})

t.test('a short token is never a gateway credential, even if the configuration let it through', async (t) => {
  const url = await createDatabase(t)
  // built without loadConfig's check, as a caller of buildApp could
  const app = await buildApp({ ...testConfig(url), GATEWAY_TOKEN: `${LONG},b` })
  t.teardown(() => app.close())
  await app.ready()
  const verify = (token: string) => app.inject({ method: 'POST', url: '/api/gateway/keys/verify', headers: { authorization: `Bearer ${token}` }, payload: { key: `sk-${'A'.repeat(48)}` } })
  const short = await verify('b')
  t.equal(short.statusCode, 401)
  t.equal(short.json().error.type, 'unauthorized', 'Bearer b is refused as a gateway credential')
  const long = await verify(LONG)
  t.equal(long.statusCode, 401)
  t.equal(long.json().error.type, 'key_invalid', 'the long token authenticates (the unknown key is what is refused)')
})

t.test('tokens are compared whole: prefixes, extensions, case and other lengths are refused', async (t) => {
  const other = `second-${randomBase62(20)}`
  const digests = gatewayDigests([LONG, other, 'short'])
  t.equal(digests.length, 2, 'the short token is dropped')
  t.same(gatewayPrincipal(digests, LONG), { kind: 'gateway' })
  t.same(gatewayPrincipal(digests, other), { kind: 'gateway' })
  for (const wrong of ['short', LONG.slice(0, -1), `${LONG}x`, LONG.toUpperCase(), '', other.slice(0, 16), `${LONG},${other}`]) {
    t.equal(gatewayPrincipal(digests, wrong), null, `${JSON.stringify(wrong.replace(LONG, '<long>'))} refused`)
  }
  t.equal(gatewayPrincipal([], LONG), null, 'no token configured: nobody is the gateway')
})
