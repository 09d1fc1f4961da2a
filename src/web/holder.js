// The key holder's page: the key lives in `key` below only (never storage, never the URL),
// goes out as a bearer header to /api/key-stats, and every figure shown is the API's.

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 })
const count = new Intl.NumberFormat('en-US')
const when = new Intl.DateTimeFormat('en-GB', { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' })
const PERIODS = { day: 'Daily', week: 'Weekly', month: 'Monthly' }

const $ = (selector) => document.querySelector(selector)
const form = $('#key-form')
const input = $('#api-key')
const forget = $('#forget')
const status = $('#status')
const error = $('#error')
const figures = $('#figures')

let key = null
let chart = null

/** The API's answer, or an Error whose message the holder can act on. */
async function call (path, body) {
  let res
  try {
    res = await fetch(`/api/key-stats/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit'
    })
  } catch {
    throw new Error('The server could not be reached. Check your connection and try again.')
  }
  if (res.ok) return res.json()
  if (res.status === 401) throw new Error('This key was not accepted: it is unknown, disabled or expired. Check that you pasted the whole key.')
  if (res.status === 429) throw new Error(`Too many attempts from your address. Try again in ${res.headers.get('retry-after') ?? 'a few'} seconds.`)
  const reason = await res.json().then((b) => b?.error?.message, () => undefined)
  throw new Error(`The server answered ${res.status}${reason ? `: ${reason}` : ''}.`)
}

function show (selector, text) {
  for (const el of document.querySelectorAll(`[data-figure="${selector}"]`)) el.textContent = text
}

/** A cell with text, or with a <time> when given an instant. */
function cell (row, value, header = false) {
  const td = document.createElement(header ? 'th' : 'td')
  if (header) td.scope = 'row'
  if (value instanceof Date) {
    const time = document.createElement('time')
    time.dateTime = value.toISOString()
    time.textContent = when.format(value)
    td.append(time)
  } else {
    td.textContent = value
  }
  row.append(td)
}

function fill (table, rows) {
  const body = $(`${table} tbody`)
  body.replaceChildren()
  for (const values of rows) {
    const row = document.createElement('tr')
    values.forEach((value, i) => cell(row, value, i === 0))
    body.append(row)
  }
}

const money = (value) => value === null ? 'unlimited' : usd.format(value)
const limit = (value, format = count.format) => value === null ? 'unlimited' : format(value)

function renderKey (stats, timeZone, answeredAt) {
  const { usage, limits } = stats
  show('name', stats.name)
  show('status', stats.is_active ? 'active' : 'disabled')
  show('expires', stats.expires_at === null ? 'never' : when.format(new Date(stats.expires_at)))
  show('requests', count.format(usage.requests))
  show('tokens', count.format(usage.total_tokens))
  show('cost', usd.format(usage.cost_usd))
  show('balance', money(limits.remaining_balance_usd))
  show('held', usd.format(limits.held_usd))
  const windowReset = limits.current_window_requests === 0 ? 'now (empty)' : new Date(answeredAt + limits.window_resets_in_seconds * 1000)
  const rows = [
    [`Requests per ${limits.rate_window_seconds} s`, count.format(limits.current_window_requests), limit(limits.rate_limit), windowReset],
    [`Tokens per ${limits.rate_window_seconds} s`, count.format(limits.current_window_tokens), limit(limits.token_limit), windowReset],
    ['Requests at once', '—', limit(limits.concurrent_limit), '—'],
    ['Spend today', usd.format(limits.today_cost_usd), money(limits.daily_cost_limit_usd), `at midnight (${timeZone})`],
    ['Spend in total', usd.format(usage.cost_usd), money(limits.total_cost_limit_usd), 'never']
  ]
  fill('#limits', rows)
  const budgets = stats.budgets.map((b) => [
    `${b.scope === 'key' ? 'This key' : 'Your account'}: ${b.period === 'rolling' ? `rolling ${Math.round(b.duration_seconds / 3600 * 10) / 10} h` : PERIODS[b.period]}${b.model === null ? '' : `, ${b.model}`}`,
    usd.format(b.spent_usd), usd.format(b.held_usd), usd.format(b.limit_usd), usd.format(b.remaining_usd),
    b.resets_at === null ? 'slides (rolling)' : new Date(b.resets_at)
  ])
  fill('#budgets', budgets)
  $('#budgets').hidden = budgets.length === 0
  $('#no-budgets').hidden = budgets.length > 0
}

function renderDays (daily) {
  show('time-zone', daily.time_zone)
  show('period-cost', usd.format(daily.days.reduce((sum, day) => sum + day.cost_usd, 0)))
  show('period-requests', count.format(daily.days.reduce((sum, day) => sum + day.requests, 0)))
  fill('#days', daily.days.map((day) => [day.date, count.format(day.requests), count.format(day.total_tokens), usd.format(day.cost_usd)]))
  fill('#models', daily.models.map((m) => [m.model, count.format(m.requests), count.format(m.input_tokens), count.format(m.output_tokens),
    `${count.format(m.cache_creation_tokens)} / ${count.format(m.cache_read_tokens)}`, usd.format(m.cost_usd)]))
  $('#models').hidden = daily.models.length === 0
  $('#no-models').hidden = daily.models.length > 0
  drawChart(daily.days)
}

function drawChart (days) {
  const target = $('#chart')
  chart?.destroy()
  chart = null
  const UPlot = globalThis.uPlot // uPlot's own script, loaded before this module
  if (typeof UPlot !== 'function') { target.textContent = 'The chart could not be drawn; the table below has the same figures.'; return }
  // each local day at UTC midnight, drawn in UTC, so the labels are the API's dates whatever the browser's zone
  const xs = days.map((day) => Date.parse(`${day.date}T00:00:00Z`) / 1000)
  // half a day of margin each side of the x scale, so the first and last days' bars show whole
  const width = Math.max(300, Math.min(900, target.clientWidth || 900))
  chart = new UPlot({
    width,
    height: 280,
    tzDate: (ts) => UPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    scales: { x: { time: true, range: (_u, min, max) => [min - 43_200, max + 43_200] }, usd: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] }, req: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [
      { label: 'Day', value: (_u, ts) => ts === null ? '—' : new Date(ts * 1000).toISOString().slice(0, 10) },
      { label: 'Spend', scale: 'usd', value: (_u, v) => v === null ? '—' : usd.format(v), fill: 'rgba(0, 82, 155, 0.55)', stroke: '#00529b', width: 1, paths: UPlot.paths.bars({ size: [0.7, 40] }) },
      { label: 'Requests', scale: 'req', value: (_u, v) => v === null ? '—' : count.format(v), stroke: '#a33a00', width: 2, points: { show: true } }
    ],
    axes: [
      { stroke: '#222' },
      { scale: 'usd', stroke: '#222', values: (_u, ticks) => ticks.map((v) => usd.format(v)), size: 70 },
      { scale: 'req', side: 1, stroke: '#222', grid: { show: false }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6, 1e7], values: (_u, ticks) => ticks.map((v) => count.format(v)) }
    ]
  }, [xs, days.map((day) => day.cost_usd), days.map((day) => day.requests)], target)
}

async function load () {
  error.hidden = true
  status.textContent = 'Loading your figures…'
  try {
    const [stats, daily] = await Promise.all([call('user-stats', {}), call('daily-usage', { days: 30 })])
    renderKey(stats, daily.time_zone, Date.now())
    renderDays(daily)
    figures.hidden = false
    forget.hidden = false
    status.textContent = `Figures loaded at ${when.format(new Date())}.`
    $('#key-heading').focus()
  } catch (failure) {
    figures.hidden = true
    status.textContent = ''
    error.textContent = failure.message
    error.hidden = false
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  const given = input.value.trim()
  if (given === '') {
    error.textContent = 'Enter your API key first.'
    error.hidden = false
    input.focus()
    return
  }
  key = given
  void load()
})

forget.addEventListener('click', () => {
  key = null
  input.value = ''
  chart?.destroy()
  chart = null
  figures.hidden = true
  forget.hidden = true
  status.textContent = 'The key is forgotten.'
  input.focus()
})
