// /api/key-stats takes a key only from the clients it allows: its IP allow-list (the
// client address as TRUST_PROXY gives it) and its User-Agent allow-list, the rule verify
// applies; a refusal is a 403 with verify's error type, and, as every key-stats
// refusal, no audit row.
import t, { type Test } from 'tap'
import type { LightMyRequestResponse } from 'fastify'
import { gateway, type Gateway } from '../gateway/fixtures.js'

type Call = (g: Gateway, key: string, headers?: Record<string, string>, remoteAddress?: string) => Promise<LightMyRequestResponse>
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
/** every key-stats route, the key as a bearer */
const routes: Array<[string, Call]> = [
  ['user-stats', (g, key, headers = {}, remoteAddress) => g.app.inject({ method: 'POST', url: '/api/key-stats/user-stats', headers: { ...bearer(key), ...headers }, payload: {}, remoteAddress })],
  ['user-model-stats', (g, key, headers = {}, remoteAddress) => g.app.inject({ method: 'POST', url: '/api/key-stats/user-model-stats', headers, payload: { api_key: key, period: 'daily' }, remoteAddress })],
  ['daily-usage', (g, key, headers = {}, remoteAddress) => g.app.inject({ method: 'POST', url: '/api/key-stats/daily-usage', headers, payload: { apiKey: key, days: 2 }, remoteAddress })],
  ['usage-details', (g, key, headers = {}, remoteAddress) => g.app.inject({ method: 'GET', url: '/api/key-stats/usage-details', headers: { ...bearer(key), ...headers }, remoteAddress })]
]

function refused (t: Test, res: LightMyRequestResponse, type: string, label: string) {
  t.equal(res.statusCode, 403, `${label}: 403`)
  t.match(res.json(), { error: { type, message: String }, request_id: String }, `${label}: error.type ${type}`)
}

t.test('an IP allow-list: only addresses inside it read the key\'s figures, IPv4 and IPv6', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8', '2001:db8::/32'] })
  const open = await g.standaloneKey()
  const emptied = await g.standaloneKey({ allowed_ips: [] })
  for (const [name, call] of routes) {
    refused(t, await call(g, key.key, {}, '192.0.2.1'), 'ip_not_allowed', `${name} from outside the list`)
    refused(t, await call(g, key.key, {}, '2001:db9::1'), 'ip_not_allowed', `${name} from an IPv6 address outside the list`)
    t.equal((await call(g, key.key, {}, '10.1.2.3')).statusCode, 200, `${name} from inside the IPv4 range`)
    t.equal((await call(g, key.key, {}, '::ffff:10.1.2.3')).statusCode, 200, `${name} from a mapped IPv4 address inside it`)
    t.equal((await call(g, key.key, {}, '2001:db8::7')).statusCode, 200, `${name} from inside the IPv6 range`)
    t.equal((await call(g, open.key, {}, '192.0.2.1')).statusCode, 200, `${name}: a key without a list, from anywhere`)
    t.equal((await call(g, emptied.key, {}, '192.0.2.1')).statusCode, 200, `${name}: an empty list allows any address`)
  }
  const message = (await routes[0]![1](g, key.key, {}, '192.0.2.1')).json().error.message
  t.equal(message, 'client IP 192.0.2.1 is not allowed for this key')
  // the restriction follows the key's current list
  await g.adminCall('PUT', `/api/admin/api-keys/${key.id as string}`, { allowed_ips: ['192.0.2.0/24'] })
  t.equal((await routes[0]![1](g, key.key, {}, '192.0.2.1')).statusCode, 200, 'allowed once the list holds it')
  refused(t, await routes[0]![1](g, key.key, {}, '10.1.2.3'), 'ip_not_allowed', 'refused once the list no longer holds it')
  // authentication comes first: a wrong key is a 401 from anywhere
  t.equal((await routes[0]![1](g, `sk-${'A'.repeat(48)}`, {}, '192.0.2.99')).statusCode, 401)
  t.equal(await g.app.prisma.auditLog.count({ where: { path: { startsWith: '/api/key-stats' } } }), 0, 'key-stats refusals are not audited row by row')
})

t.test('behind a trusted proxy the client is X-Forwarded-For\'s; without trust the header is ignored', async (t) => {
  const trusted = await gateway(t, { TRUST_PROXY: '127.0.0.1' })
  const key = await trusted.standaloneKey({ allowed_ips: ['10.0.0.0/8'] })
  for (const [name, call] of routes) {
    t.equal((await call(trusted, key.key, { 'x-forwarded-for': '10.9.9.9' }, '127.0.0.1')).statusCode, 200, `${name}: the forwarded client is inside`)
    refused(t, await call(trusted, key.key, { 'x-forwarded-for': '192.0.2.5' }, '127.0.0.1'), 'ip_not_allowed', `${name}: the forwarded client is outside`)
    refused(t, await call(trusted, key.key, { 'x-forwarded-for': '10.9.9.9' }, '192.0.2.200'), 'ip_not_allowed', `${name}: an untrusted peer cannot claim an address`)
  }
  const untrusting = await gateway(t)
  const other = await untrusting.standaloneKey({ allowed_ips: ['10.0.0.0/8'] })
  refused(t, await routes[0]![1](untrusting, other.key, { 'x-forwarded-for': '10.9.9.9' }, '192.0.2.5'), 'ip_not_allowed', 'TRUST_PROXY=false: the header is not believed')
})

t.test('a User-Agent allow-list: only a client whose User-Agent contains an entry, case-insensitively', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ allowed_user_agents: ['MyClient', 'relay-page'] })
  for (const [name, call] of routes) {
    // light-my-request's own User-Agent is lightMyRequest; an empty one matches no entry either
    refused(t, await call(g, key.key, {}, '192.0.2.1'), 'client_not_allowed', `${name} from the default client`)
    refused(t, await call(g, key.key, { 'user-agent': '' }, '192.0.2.1'), 'client_not_allowed', `${name} with an empty User-Agent`)
    const other = await call(g, key.key, { 'user-agent': 'curl/8.0' }, '192.0.2.1')
    refused(t, other, 'client_not_allowed', `${name} from another client`)
    t.equal(other.json().error.message, 'this client (User-Agent) is not allowed for this key')
    t.equal((await call(g, key.key, { 'user-agent': 'myclient/1.2 (linux)' }, '192.0.2.1')).statusCode, 200, `${name} from an allowed client`)
    t.equal((await call(g, key.key, { 'user-agent': 'Mozilla/5.0 RELAY-PAGE' }, '192.0.2.1')).statusCode, 200, `${name} from the other allowed client`)
  }
  // both lists: the address is checked first, then the client
  const both = await g.standaloneKey({ allowed_ips: ['10.0.0.0/8'], allowed_user_agents: ['MyClient'] })
  refused(t, await routes[0]![1](g, both.key, { 'user-agent': 'MyClient' }, '192.0.2.1'), 'ip_not_allowed', 'both lists, outside address')
  refused(t, await routes[0]![1](g, both.key, { 'user-agent': 'curl' }, '10.0.0.1'), 'client_not_allowed', 'both lists, other client')
  t.equal((await routes[0]![1](g, both.key, { 'user-agent': 'MyClient' }, '10.0.0.1')).statusCode, 200, 'both lists satisfied')
})
