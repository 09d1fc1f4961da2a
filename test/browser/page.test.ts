// The key holder's page (src/web) in a real headless Chromium: it loads under its own CSP
// with nothing refused, a real key shows the figures the API answers (and hand-computed
// ones), a wrong key shows a clear message, and it works by keyboard with labelled inputs.
import { existsSync } from 'node:fs'
import t from 'tap'
import { chromium, type ConsoleMessage } from 'playwright-core'
import { gateway, type Gateway, type Json } from '../modules/gateway/fixtures.js'

// Debian's chromium package (.ci/run installs it); playwright-core brings no browser of its own
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const DAY = 86_400_000

const usd = (value: number) => new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 }).format(value)

/** Browser-side: the visible texts whose colour is below 4.5:1 against their background (WCAG's relative luminance). */
const LOW_CONTRAST = `(() => {
  const luminance = (colour) => {
    const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map((v) => { v = Number(v) / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4 })
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
  }
  const opaque = (colour) => !/^rgba\\(.*, 0\\)$/.test(colour) && colour !== 'transparent'
  const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (opaque(c)) return c } return 'rgb(255, 255, 255)' }
  const low = []
  for (const el of document.querySelectorAll('body *')) {
    if (!el.checkVisibility() || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim() !== '')) continue
    const [a, b] = [luminance(getComputedStyle(el).color), luminance(background(el))]
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)
    if (ratio < 4.5) low.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2))
  }
  return low
})()`

/** A standalone key with $5, a daily budget of $2 (UTC) and two hand-priced requests today. */
async function holder (g: Gateway) {
  await g.price({ model: 'alpha', tiers: [{ up_to: null, input: 3, output: 15 }] })
  await g.price({ model: 'beta', tiers: [{ up_to: null, input: 1, output: 2 }] })
  const key = await g.standaloneKey({ name: 'page-key', initial_balance_usd: 5 })
  await g.adminCall('POST', `/api/admin/api-keys/${key.id as string}/budgets`, { period: 'day', limit_usd: 2, time_zone: 'UTC' })
  const now = Date.now()
  const at = new Date(Math.max(now - 60_000, Math.floor(now / DAY) * DAY)).toISOString()
  const done = (id: string, model: string, input: number, output: number) =>
    ({ type: 'complete', request_id: id, api_key_id: key.id, model, created_at: at, status: 'completed', input_tokens: input, output_tokens: output })
  // alpha: 1000×3000 + 100×15000 = 4 500 000 nano-USD; beta: 2000×1000 = 2 000 000; together $0.0065, 3100 tokens
  const results = await g.send([done('p1', 'alpha', 1000, 100), done('p2', 'beta', 2000, 0)])
  for (const result of results) if (result.outcome !== 'recorded') throw new Error(JSON.stringify(result))
  return { key, today: at.slice(0, 10), nextMidnight: new Date(Math.floor(now / DAY) * DAY + DAY).toISOString() }
}

t.test('the page and its files are served under a CSP of their own', async (t) => {
  const g = await gateway(t)
  const page = await g.app.inject({ method: 'GET', url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<label for="api-key">API key<\/label>/)
  const csp = String(page.headers['content-security-policy'])
  for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "form-action 'none'", "frame-ancestors 'none'"]) {
    t.ok(csp.split(';').includes(directive), `CSP has ${directive}: ${csp}`)
  }
  t.notMatch(page.body, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script')
  for (const [file, type] of [['holder.js', /^text\/javascript/], ['holder.css', /^text\/css/], ['uplot.js', /^text\/javascript/], ['uplot.css', /^text\/css/]] as const) {
    const res = await g.app.inject({ method: 'GET', url: `/page/${file}` })
    t.equal(res.statusCode, 200, file)
    t.match(res.headers['content-type'], type, `${file}: its type`)
    t.ok(res.body.length > 100, `${file}: its content`)
  }
  t.match((await g.app.inject({ method: 'GET', url: '/page/uplot.js' })).body, /uPlot/, 'uPlot\'s own build, from node_modules')
  t.equal((await g.app.inject({ method: 'GET', url: '/page/../package.json' })).statusCode, 404, 'nothing else is served')
  t.equal((await g.app.inject({ method: 'GET', url: '/page/routes.js' })).statusCode, 404)
  // the API keeps its own CSP, which allows nothing
  t.equal((await g.app.inject({ method: 'GET', url: '/health' })).headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'")
})

t.test('in Chromium: a real key shows the API\'s figures, a wrong key a clear message, all by keyboard', { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}: apt-get install chromium (see .ci/run)` }, async (t) => {
  const g = await gateway(t)
  const { key, today, nextMidnight } = await holder(g)
  const address = await g.app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('console', (message: ConsoleMessage) => { if (message.type() === 'error' && !/401/.test(message.text())) problems.push(message.text()) })
  page.on('pageerror', (error) => { problems.push(error.message) })
  const apiCalls: Array<{ url: string, authorization: string | undefined }> = []
  page.on('request', (request) => { if (request.url().includes('/api/')) apiCalls.push({ url: request.url(), authorization: request.headers().authorization }) })

  const loaded = await page.goto(`${address}/`)
  t.equal(loaded?.status(), 200)
  t.equal(await page.title(), 'Your API key\'s usage — keymeter')
  // every input, select and textarea has a label
  // (browser-side code as text: this project's TypeScript has no DOM library)
  const unlabelled = await page.evaluate<number>("[...document.querySelectorAll('input, select, textarea')].filter((field) => field.labels.length === 0).length")
  t.equal(unlabelled, 0, 'every field has a label')
  t.equal(await page.getByLabel('API key').getAttribute('type'), 'password')

  // by keyboard: Tab reaches the key field first, Enter submits
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate<string>('document.activeElement.id'), 'api-key', 'the first Tab reaches the key field')
  await page.keyboard.type(key.key as string)
  await page.keyboard.press('Enter')
  await page.locator('#figures').waitFor({ state: 'visible' })

  const [stats, daily] = await Promise.all(['user-stats', 'daily-usage'].map(async (path) =>
    (await g.app.inject({ method: 'POST', url: `/api/key-stats/${path}`, headers: { authorization: `Bearer ${key.key as string}` }, payload: {} })).json() as Json))
  const figure = (name: string) => page.locator(`[data-figure="${name}"]`).first().textContent()
  t.equal(await figure('name'), 'page-key')
  t.equal(await figure('status'), 'active')
  t.equal(await figure('requests'), String(stats!.usage.requests))
  t.equal(await figure('requests'), '2', 'two requests, by hand')
  t.equal(await figure('tokens'), '3,100', '1100 + 2000 tokens, by hand')
  t.equal(await figure('cost'), usd(stats!.usage.cost_usd))
  t.equal(await figure('cost'), '$0.0065', '$0.0045 + $0.002, by hand')
  t.equal(await figure('balance'), usd(stats!.limits.remaining_balance_usd))
  t.equal(await figure('balance'), '$4.9935', '$5 − $0.0065, by hand')
  t.equal(await figure('held'), '$0.00')
  t.equal(await figure('time-zone'), daily!.time_zone)
  t.equal(await figure('period-cost'), '$0.0065')

  // the limits' table: the rate window and today's spend as user-stats answers them
  const limits = await page.$$eval('#limits tbody tr', (rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)))
  t.match(limits[0], [/^Requests per \d+ s$/, String(stats!.limits.current_window_requests), 'unlimited'])
  t.same(limits[3], ['Spend today', usd(stats!.limits.today_cost_usd), 'unlimited', 'at midnight (UTC)'])
  // the budget's window: spent, left, and its reset at the next UTC midnight
  const budget = await page.$$eval('#budgets tbody tr', (rows) => rows.map((row) => [...row.children].map((cell) => cell.querySelector('time')?.dateTime ?? cell.textContent)))
  t.same(budget, [['This key: Daily', '$0.0065', '$0.00', '$2.00', '$1.9935', nextMidnight]], 'the day budget resets at the next UTC midnight')
  t.equal(stats!.budgets[0].resets_at, nextMidnight)

  // thirty days in the table, today's figures, and the chart drawn by uPlot
  const days = await page.$$eval('#days tbody tr', (rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)))
  t.equal(days.length, 30)
  t.same(days.map((row) => row[0]), daily!.days.map((day: Json) => day.date))
  t.same(days.at(-1), [today, '2', '3,100', '$0.0065'])
  t.ok(days.slice(0, -1).every((row) => row[3] === '$0.00'), 'the other days are zero')
  t.equal(await page.locator('#chart canvas').count(), 1, 'uPlot drew its canvas')
  const models = await page.$$eval('#models tbody tr', (rows) => rows.map((row) => [...row.children].map((cell) => cell.textContent)))
  t.same(models, [['alpha', '1', '1,000', '100', '0 / 0', '$0.0045'], ['beta', '1', '2,000', '0', '0 / 0', '$0.002']])

  // contrast: every visible text at least 4.5:1 against its nearest opaque background (WCAG AA)
  t.same(await page.evaluate<string[]>(LOW_CONTRAST), [], 'no text below 4.5:1')

  // the key went as a bearer header, never in a URL or in the browser's storage
  t.ok(apiCalls.length >= 2 && apiCalls.every((call) => call.authorization === `Bearer ${key.key as string}` && !call.url.includes(key.key as string)), 'bearer only')
  t.same([...new Set(apiCalls.map((call) => new URL(call.url).pathname))].sort(), ['/api/key-stats/daily-usage', '/api/key-stats/user-stats'], 'the key holder endpoints only, never the admin API')
  t.notMatch(page.url(), /sk-/)
  t.same(await page.evaluate('[localStorage.length, sessionStorage.length, document.cookie]'), [0, 0, ''])

  // a wrong key: a clear message in an alert, no figures
  await page.getByRole('button', { name: 'Forget the key' }).click()
  t.equal(await page.locator('#figures').isHidden(), true)
  await page.getByLabel('API key').fill(`sk-${'W'.repeat(48)}`)
  await page.getByLabel('API key').press('Enter')
  const alert = page.getByRole('alert')
  await alert.waitFor({ state: 'visible' })
  t.match(await alert.textContent(), /This key was not accepted: it is unknown, disabled or expired/)
  t.equal(await page.locator('#figures').isHidden(), true, 'no figures for a wrong key')
  // an empty field: asked for, not sent
  const before = apiCalls.length
  await page.getByLabel('API key').fill('')
  await page.getByRole('button', { name: 'Show my usage' }).click()
  t.equal(await alert.textContent(), 'Enter your API key first.')
  t.equal(apiCalls.length, before, 'nothing sent')

  t.same(problems, [], 'no script error and no CSP refusal in the console')
})
