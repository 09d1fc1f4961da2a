// TRUST_PROXY: only the listed proxies' X-Forwarded-For is believed. A client that is
// not a trusted proxy cannot choose its address (management tokens' IP allow-lists and
// the login throttle hold), a trusted proxy's X-Forwarded-For is used, and the audit
// log's ip column holds only parsed addresses.
import t from 'tap'
import { loadConfig, parseTrustProxy } from '../../src/config.js'
import { LoginThrottle } from '../../src/modules/auth/service.js'
import { buildTestApp, signIn } from '../helper.js'

const PROXY = '10.0.0.2'
const CLIENT = '198.51.100.9'

t.test('TRUST_PROXY: false, or a list of addresses and CIDRs; true and hop counts are refused with a reason', async (t) => {
  t.equal(loadConfig({}).TRUST_PROXY, 'false', 'default: no proxy trusted')
  t.equal(parseTrustProxy('false'), false)
  t.same(parseTrustProxy('10.0.0.2, 10.1.0.0/16,::1,fd00::/8,loopback'), ['10.0.0.2', '10.1.0.0/16', '::1', 'fd00::/8', 'loopback'])
  t.throws(() => loadConfig({ TRUST_PROXY: 'true' }), { name: 'ConfigError', message: /TRUST_PROXY: "true" would trust every hop.*list the proxies' addresses or CIDRs/ })
  t.throws(() => loadConfig({ TRUST_PROXY: '2' }), { name: 'ConfigError', message: /TRUST_PROXY: a hop count cannot tell a proxy from a client/ })
  for (const bad of ['proxy.internal', '10.0.0.0/33', '10.0.0.1/8/1', '10.0.0.256', '10.0.0.2,,10.0.0.3', '::1/129']) {
    t.throws(() => loadConfig({ TRUST_PROXY: bad }), { name: 'ConfigError', message: /TRUST_PROXY: not an IP address or CIDR/ }, `${bad} refused`)
  }
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.2,10.1.0.0/16' }).TRUST_PROXY, '10.0.0.2,10.1.0.0/16')
})

t.test('a client cannot set its address with X-Forwarded-For; a trusted proxy can; only parsed addresses are stored', async (t) => {
  const { app } = await buildTestApp(t, { env: { TRUST_PROXY: `${PROXY},10.9.0.0/16` } })
  const admin = await signIn(app, 'admin')
  const created = await app.inject({ method: 'POST', url: '/api/users/me/management-tokens', headers: admin.headers, payload: { name: 'pinned', allowed_ips: ['192.0.2.50'] } })
  t.equal(created.statusCode, 201)
  const pinned = { authorization: `Bearer ${created.json().token as string}` }
  const call = (remoteAddress: string, forwardedFor: string | undefined, requestId: string) => app.inject({
    method: 'GET', url: '/api/admin/users', remoteAddress,
    headers: { ...pinned, 'x-request-id': requestId, ...(forwardedFor !== undefined && { 'x-forwarded-for': forwardedFor }) }
  })
  const auditIp = async (requestId: string) => {
    await app.pipeline.readAuditsWritten()
    return (await app.prisma.auditLog.findFirstOrThrow({ where: { requestId } })).ip
  }

  // a direct client claiming the allowed address
  const spoofed = await call(CLIENT, '192.0.2.50', 'spoofed')
  t.equal(spoofed.statusCode, 401, 'the allow-list holds against a forged X-Forwarded-For')
  t.equal(await auditIp('spoofed'), CLIENT, 'the audit row has the socket address')

  // the same client through the trusted proxy: the proxy appends the client's real address
  const throughProxy = await call(PROXY, `192.0.2.50, ${CLIENT}`, 'through-proxy')
  t.equal(throughProxy.statusCode, 401, 'a forged entry before the proxy\'s own is not believed either')
  t.equal(await auditIp('through-proxy'), CLIENT)

  // the allowed client through the trusted proxy (and through a second, trusted hop)
  t.equal((await call(PROXY, '192.0.2.50', 'allowed')).statusCode, 200, 'the trusted proxy\'s X-Forwarded-For is used')
  t.equal(await auditIp('allowed'), '192.0.2.50')
  t.equal((await call(PROXY, '192.0.2.50, 10.9.1.1', 'two-hops')).statusCode, 200, 'every trusted hop is skipped')
  t.equal(await auditIp('two-hops'), '192.0.2.50')
  const token = await app.prisma.managementToken.findFirstOrThrow({ where: { name: 'pinned' } })
  t.equal(token.lastUsedIp, '192.0.2.50')

  // a proxy passing on whatever the client wrote: the string is not stored as an address
  const junk = await app.inject({ method: 'GET', url: '/api/admin/users', remoteAddress: PROXY, headers: { ...admin.headers, 'x-request-id': 'junk', 'x-forwarded-for': '<script>alert(1)</script>' } })
  t.equal(junk.statusCode, 200)
  t.equal(await auditIp('junk'), null, 'an unparsable address is stored as null')
  const ips = await app.prisma.$queryRaw<Array<{ ip: string }>>`SELECT DISTINCT ip FROM audit_logs WHERE ip IS NOT NULL`
  t.ok(ips.length > 0 && ips.every(({ ip }) => /^[\d.]+$|^[\da-f:]+$/i.test(ip)), `audit ips are addresses: ${ips.map((r) => r.ip).join(' ')}`)
})

t.test('the login throttle cannot be escaped with X-Forwarded-For', async (t) => {
  const { app } = await buildTestApp(t, { env: { TRUST_PROXY: PROXY } })
  for (let i = 0; i < LoginThrottle.LIMIT; i++) app.loginThrottle.fail(CLIENT)
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: CLIENT, headers: { 'x-forwarded-for': `203.0.113.${i}` }, payload: { email: 'someone', password: 'guess' } })
    t.equal(res.statusCode, 429, `a new X-Forwarded-For (${i}) is still the same address`)
  }
})
