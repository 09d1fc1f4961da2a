// @fastify/helmet: every JSON answer (success, refusal, unknown path) carries the security
// headers with a CSP that lets nothing load; the Swagger UI at /docs keeps the CSP that its
// self-hosted scripts, inline styles and data: icons need, and still loads.
import t from 'tap'
import { buildTestApp } from '../helper.js'

const API_CSP = "default-src 'none';frame-ancestors 'none'"

t.test('security headers on JSON answers, a page that loads at /docs', async (t) => {
  const { app } = await buildTestApp(t)

  for (const [url, status] of [['/health', 200], ['/api/admin/users', 401], ['/no/such/path', 404]] as const) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, status, url)
    t.match(res.headers['content-type'], /^application\/json/, `${url}: JSON`)
    t.equal(res.headers['content-security-policy'], API_CSP, `${url}: a CSP allowing nothing`)
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${url}: not framed elsewhere`)
    t.match(res.headers['strict-transport-security'], /^max-age=\d+/, `${url}: HSTS`)
    t.equal(res.headers['referrer-policy'], 'no-referrer', `${url}: no referrer`)
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', `${url}: COOP`)
    t.equal(res.headers['x-powered-by'], undefined, `${url}: no x-powered-by`)
  }

  const page = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(page.statusCode, 200, '/docs/ answers')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<div id="swagger-ui">/, 'the Swagger UI page')
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /(^|;)script-src 'self'(;|$)/, 'its own scripts may run')
  t.match(csp, /(^|;)style-src 'self' https: 'unsafe-inline'(;|$)/, 'inline styles are allowed')
  t.match(csp, /(^|;)img-src 'self' data:(;|$)/, 'data: icons are allowed')
  t.equal(page.headers['x-content-type-options'], 'nosniff', 'the other headers too')
  // every script the page loads is its own and is served, so the CSP's 'self' lets the page run
  const scripts = [...page.body.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!)
  t.ok(scripts.length >= 3, `scripts: ${scripts.join(', ')}`)
  for (const src of scripts) {
    t.notMatch(src, /^(https?:)?\/\//, `${src} is same-origin`)
    const script = await app.inject({ method: 'GET', url: new URL(src, 'http://x/docs/').pathname })
    t.equal(script.statusCode, 200, `${src} served`)
  }
  t.notMatch(page.body, /<script>(?!\s*<\/script>)/, 'no inline script the CSP would block')
  const redirect = await app.inject({ method: 'GET', url: '/docs' })
  t.ok([200, 302].includes(redirect.statusCode), `/docs answers ${redirect.statusCode}`)
})

t.test('the gateway\'s server-to-server calls carry no browser-protection headers', async (t) => {
  const { app } = await buildTestApp(t)
  const res = await app.inject({ method: 'POST', url: '/api/gateway/keys/verify', payload: { key: 'sk-x', model: 'm' } })
  t.equal(res.statusCode, 401, 'refused without the gateway token')
  t.equal(res.headers['content-security-policy'], undefined, 'no CSP')
  t.equal(res.headers['strict-transport-security'], undefined, 'no HSTS')
  t.equal(res.headers['x-content-type-options'], undefined, 'no nosniff')
  t.ok(res.headers['x-request-id'], 'the request id still')
})
