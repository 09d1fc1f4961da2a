// Per-key client restrictions: the IP allow-list (CIDRs) and the User-Agent allow-list,
// validated when written and checked by verify (advisory and reserving) before any hold.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { ipAllowed, ipMatcher, parseCidr, userAgentAllowed, userAgentMatcher } from '../../../src/modules/keys/restrictions.js'
import { gateway } from '../gateway/fixtures.js'

function refused (t: Test, res: LightMyRequestResponse, status: number, type: string, what: string) {
  t.equal(res.statusCode, status, `${what}: ${status}`)
  t.equal(res.json().error?.type, type, `${what}: ${type}`)
}

t.test('parseCidr: addresses and prefixes of both families, nothing else', async (t) => {
  t.same(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', family: 'ipv4', prefix: 8 })
  t.same(parseCidr('192.168.1.7'), { address: '192.168.1.7', family: 'ipv4', prefix: 32 })
  t.same(parseCidr('2001:db8::/32'), { address: '2001:db8::', family: 'ipv6', prefix: 32 })
  t.same(parseCidr('::1'), { address: '::1', family: 'ipv6', prefix: 128 })
  t.same(parseCidr('::ffff:10.1.2.3/32'), { address: '10.1.2.3', family: 'ipv4', prefix: 32 }, 'an IPv4-mapped address is its IPv4 address')
  t.same(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', family: 'ipv4', prefix: 0 })
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/-1', '10.0.0.0/08x', 'nope', '300.1.1.1', '', '10.0.0.0/1000']) {
    t.equal(parseCidr(bad), null, `${JSON.stringify(bad)} is refused`)
  }
})

t.test('the matchers: no list allows all; a list needs a matching value', async (t) => {
  t.ok(ipAllowed(ipMatcher(null), undefined))
  t.ok(ipAllowed(ipMatcher([]), '1.2.3.4'))
  const ips = ipMatcher(['10.0.0.0/8', '2001:db8::/32', 'not-a-cidr'])
  t.ok(ipAllowed(ips, '10.255.0.1'))
  t.ok(ipAllowed(ips, '::FFFF:10.0.0.1'), 'IPv4-mapped IPv6')
  t.ok(ipAllowed(ips, '2001:db8:ffff::1'))
  t.notOk(ipAllowed(ips, '11.0.0.1'))
  t.notOk(ipAllowed(ips, '2001:db9::1'))
  t.notOk(ipAllowed(ips, undefined), 'no address: refused')
  t.notOk(ipAllowed(ips, 'garbage'))
  t.ok(userAgentAllowed(userAgentMatcher(null), undefined))
  const agents = userAgentMatcher(['Claude-CLI/', 'MyApp'])
  t.ok(userAgentAllowed(agents, 'claude-cli/1.0.3 (external, cli)'), 'case-insensitive substring')
  t.ok(userAgentAllowed(agents, 'Mozilla/5.0 myapp'))
  t.notOk(userAgentAllowed(agents, 'curl/8.5.0'))
  t.notOk(userAgentAllowed(agents, undefined))
})

t.test('written through the admin API: validated, bounded, shown, cleared by [] or null', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'], allowed_user_agents: ['claude-cli/'] })
  t.same(key.allowed_ips, ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'])
  t.same(key.allowed_user_agents, ['claude-cli/'])
  const user = await g.user()

  const bad: Array<[string, object]> = [
    ['/api/admin/api-keys', { name: 'x', allowed_ips: ['10.0.0.0/33'] }],
    ['/api/admin/api-keys', { name: 'x', allowed_ips: ['example.com'] }],
    ['/api/admin/api-keys', { name: 'x', allowed_ips: Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`) }],
    ['/api/admin/api-keys', { name: 'x', allowed_ips: ['10.0.0.1', '10.0.0.1'] }],
    ['/api/admin/api-keys', { name: 'x', allowed_user_agents: ['a'.repeat(201)] }],
    ['/api/admin/api-keys', { name: 'x', allowed_user_agents: [''] }],
    ['/api/admin/api-keys', { name: 'x', allowed_user_agents: Array.from({ length: 51 }, (_, i) => `agent-${i}`) }],
    [`/api/admin/users/${user.id}/api-keys`, { name: 'x', allowed_ips: ['1.2.3.4/8/1'] }]
  ]
  for (const [url, payload] of bad) {
    const res = await g.app.inject({ method: 'POST', url, headers: g.admin.headers, payload })
    t.equal(res.statusCode, 400, `${JSON.stringify(payload).slice(0, 80)} → 400`)
    t.type(res.json().detail, 'string', 'with its reason')
  }
  const named = await g.app.inject({ method: 'POST', url: '/api/admin/api-keys', headers: g.admin.headers, payload: { name: 'x', allowed_ips: ['10.0.0.0/8', 'nope'] } })
  t.match(named.json(), { error: { type: 'invalid_input', field: 'body.allowed_ips' }, detail: /"nope" is not an IPv4 or IPv6 address or CIDR/ })
  t.equal(await g.app.prisma.apiKey.count({ where: { name: 'x' } }), 0, 'no key written by a refusal')

  const put = await g.app.inject({ method: 'PUT', url: `/api/admin/api-keys/${key.id}`, headers: g.admin.headers, payload: { allowed_ips: ['::1/129'] } })
  t.equal(put.statusCode, 400, 'an update is validated too')
  t.same((await g.adminCall('GET', `/api/admin/api-keys/${key.id}`)).allowed_ips, ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'], 'and changed nothing')

  const cleared = await g.adminCall('PUT', `/api/admin/api-keys/${key.id}`, { allowed_ips: [], allowed_user_agents: null })
  t.equal(cleared.allowed_ips, null, '[] allows every address')
  t.equal(cleared.allowed_user_agents, null)
  t.equal((await g.verify({ key: key.key })).statusCode, 200, 'no restriction left')
})

t.test('verify: client_ip in the list, user_agent containing an entry; missing values refused; order', async (t) => {
  // a long cache: a restriction written through this process must apply at once anyway
  const g = await gateway(t, { VERIFY_CACHE_TTL_MS: '60000' })
  const ips = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8', '2001:db8::/32', '192.168.1.7'] })
  for (const ip of ['10.1.2.3', '::ffff:10.1.2.3', '2001:db8::1', '192.168.1.7']) {
    t.equal((await g.verify({ key: ips.key, client_ip: ip })).statusCode, 200, `${ip} allowed`)
  }
  for (const ip of ['11.0.0.1', '2001:db9::1', '192.168.1.8']) refused(t, await g.verify({ key: ips.key, client_ip: ip }), 403, 'ip_not_allowed', ip)
  const missing = await g.verify({ key: ips.key })
  refused(t, missing, 403, 'ip_not_allowed', 'no client_ip')
  t.match(missing.json().error.message, /client_ip is required/)
  const malformed = await g.verify({ key: ips.key, client_ip: '10.0.0.256' })
  t.equal(malformed.statusCode, 400, 'a client_ip that is no address is a 400')

  const agents = await g.standaloneKey({ allowed_user_agents: ['claude-cli/', 'MyApp'] })
  t.equal((await g.verify({ key: agents.key, user_agent: 'Claude-CLI/1.0.3 (external, cli)' })).statusCode, 200)
  refused(t, await g.verify({ key: agents.key, user_agent: 'curl/8.5.0' }), 403, 'client_not_allowed', 'another client')
  refused(t, await g.verify({ key: agents.key }), 403, 'client_not_allowed', 'no user_agent')
  t.equal((await g.verify({ key: agents.key, client_ip: '8.8.8.8', user_agent: 'myapp/2' })).statusCode, 200, 'a client_ip is ignored by a key without an IP list')

  // order: disabled (401) before the IP check, the IP check before the model list
  const both = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8'], allowed_user_agents: ['myapp'], allowed_models: ['m'] })
  refused(t, await g.verify({ key: both.key, client_ip: '11.0.0.1', user_agent: 'curl', model: 'other' }), 403, 'ip_not_allowed', 'IP first')
  refused(t, await g.verify({ key: both.key, client_ip: '10.0.0.1', user_agent: 'curl', model: 'other' }), 403, 'client_not_allowed', 'then the client')
  refused(t, await g.verify({ key: both.key, client_ip: '10.0.0.1', user_agent: 'myapp', model: 'other' }), 403, 'model_not_allowed', 'then the model')
  await g.adminCall('PATCH', `/api/admin/api-keys/${both.id}`)
  refused(t, await g.verify({ key: both.key, client_ip: '11.0.0.1' }), 401, 'key_disabled', 'a disabled key says so first')

  // a change through the admin API applies to the next verify, although the state was cached
  const open = await g.standaloneKey()
  t.equal((await g.verify({ key: open.key, client_ip: '11.0.0.1' })).statusCode, 200, 'cached while open')
  await g.adminCall('PUT', `/api/admin/api-keys/${open.id}`, { allowed_ips: ['10.0.0.0/8'] })
  refused(t, await g.verify({ key: open.key, client_ip: '11.0.0.1' }), 403, 'ip_not_allowed', 'the new list applies at once')
})

t.test('a reservation refused by a restriction takes no hold', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8'], allowed_user_agents: ['myapp'] })
  refused(t, await g.verify({ key: key.key, request_id: 'r-ip', user_agent: 'myapp', client_ip: '11.0.0.1' }), 403, 'ip_not_allowed', 'reserve, wrong IP')
  refused(t, await g.verify({ key: key.key, request_id: 'r-ua', client_ip: '10.0.0.1' }), 403, 'client_not_allowed', 'reserve, no user_agent')
  t.equal(await g.app.prisma.admissionHold.count(), 0, 'no hold taken')
  const ok = await g.verify({ key: key.key, request_id: 'r-ok', client_ip: '10.0.0.1', user_agent: 'MyApp/1' })
  t.equal(ok.statusCode, 200)
  t.equal(await g.app.prisma.admissionHold.count(), 1, 'an allowed client holds')
})
