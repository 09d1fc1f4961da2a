// Aether's usage pages (AETHER.md §4.1, §6): the stats carry the heatmap the page reads,
// the admin's global, a user's their own (no actual_total_cost), in APP_TIMEZONE days
// cut at a local midnight that is not on a UTC hour (Asia/Kolkata, 18:30 UTC).
import t from 'tap'
import { gateway, type Json } from '../gateway/fixtures.js'
import { signIn } from '../../helper.js'

const DAY = 86_400_000
const ZONE = 'Asia/Kolkata'
const dateOf = (ms: number) => new Date(ms).toISOString().slice(0, 10)
const localToday = () => new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date())

/** 365 zero days ending today (local), with the given days' values laid over them. */
function expectedDays (given: Record<string, Json>, withActual: boolean) {
  const today = localToday()
  return Array.from({ length: 365 }, (_, i) => {
    const date = dateOf(Date.parse(`${today}T00:00:00Z`) - (364 - i) * DAY)
    return { date, requests: 0, total_tokens: 0, total_cost: 0, ...(withActual && { actual_total_cost: 0 }), ...given[date] }
  })
}

t.test('the usage stats carry the heatmap: global for admins, one\'s own for users', async (t) => {
  const g = await gateway(t, { APP_TIMEZONE: ZONE })
  const provider = await g.provider('alpha')
  const providerKey = await g.providerKey(provider.id, { rate_multiplier: 2 })
  await g.price({ model: 'claude-x', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const ann = await signIn(g.app, 'user', 'ann')
  const bob = await signIn(g.app, 'user', 'bob')
  const annKey = await g.userKey(ann.id)
  const bobKey = await g.userKey(bob.id)
  // three UTC days ago: 18:30 UTC there is the local midnight that starts d1
  const t0 = Math.floor(Date.now() / DAY) * DAY - 3 * DAY
  const [d0, d1] = [dateOf(t0), dateOf(t0 + DAY)]
  const at = (ms: number) => new Date(t0 + ms).toISOString()
  const hm = (h: number, m: number, s = 0, msec = 0) => ((h * 60 + m) * 60 + s) * 1000 + msec
  let n = 0
  // 1000 in, 100 out at 3 and 15 USD per 1M: 0.003 + 0.0015 = 0.0045 USD, twice that actual (rate 2)
  const done = (keyId: string, ms: number, more: object = {}) => ({
    type: 'complete', request_id: `r${++n}`, api_key_id: keyId, model: 'claude-x', provider_id: provider.id, provider_api_key_id: providerKey.id,
    created_at: at(ms), status: 'completed', status_code: 200, input_tokens: 1000, output_tokens: 100, response_time_ms: 1000, ...more
  })
  await g.send([
    done(annKey.id, hm(18, 10)), // d0
    done(annKey.id, hm(18, 29, 59, 999)), // d0, the last millisecond before the local midnight
    done(annKey.id, hm(18, 30)), // d1
    done(annKey.id, hm(18, 45), { status: 'failed', status_code: 502, output_tokens: 0 }), // d1, failed still counts
    done(annKey.id, hm(18, 50), { provider_id: undefined, provider_api_key_id: undefined }), // d1, reached no provider: still a request
    { type: 'start', request_id: 'inflight', api_key_id: annKey.id, model: 'claude-x', created_at: at(hm(18, 20)) }, // counted nowhere
    done(bobKey.id, hm(18, 15)), // bob's: d0
    done(bobKey.id, hm(19, 0)) // bob's: d1
  ])

  const get = async (url: string, headers: { authorization: string }) => {
    const res = await g.app.inject({ method: 'GET', url, headers })
    t.equal(res.statusCode, 200, url)
    return res.json()
  }
  // by hand: a completed request 1100 tokens, 0.0045 USD (0.009 actual); the failed one 1000 tokens, 0.003 USD (0.006); the one without provider unpriced at rate 1
  const unpricedNoProvider = await g.app.prisma.usage.findUniqueOrThrow({ where: { requestId: 'r5' } })
  const noProviderCost = Number(unpricedNoProvider.totalCost) / 1e9
  t.equal(noProviderCost, 0.0045, 'priced by its model, no provider key')
  const annDays = {
    [d0]: { requests: 2, total_tokens: 2200, total_cost: 0.009 },
    [d1]: { requests: 3, total_tokens: 3200, total_cost: 0.012 }
  }
  const own = await get('/api/users/me/usage/stats', ann.headers)
  t.same(own.activity_heatmap, {
    start_date: expectedDays({}, false)[0]!.date, end_date: localToday(), total_days: 365, max_requests: 3, days: expectedDays(annDays, false)
  }, 'ann\'s own days in Asia/Kolkata, cut at 18:30 UTC, without actual_total_cost')
  t.equal(own.total_requests, 5, 'the totals are hers too')
  const bobs = await get('/api/users/me/usage/stats', bob.headers)
  t.same(bobs.activity_heatmap.days.filter((d: Json) => d.requests > 0), [
    { date: d0, requests: 1, total_tokens: 1100, total_cost: 0.0045 }, { date: d1, requests: 1, total_tokens: 1100, total_cost: 0.0045 }
  ], 'bob sees only his')

  const admin = await get('/api/admin/usage/stats', g.admin.headers)
  const heatmap = await get('/api/admin/usage/heatmap', g.admin.headers)
  t.same(admin.activity_heatmap, heatmap, 'the admin\'s is exactly the heatmap\'s body')
  t.same(admin.activity_heatmap.days.filter((d: Json) => d.requests > 0), [
    { date: d0, requests: 3, total_tokens: 3300, total_cost: 0.0135, actual_total_cost: 0.027 },
    { date: d1, requests: 4, total_tokens: 4300, total_cost: 0.0165, actual_total_cost: 0.0285 }
  ], 'everyone\'s, with actual_total_cost')
  const narrow = await get(`/api/admin/usage/stats?start_date=${encodeURIComponent(at(hm(18, 0)))}&end_date=${encodeURIComponent(at(hm(18, 12)))}`, g.admin.headers)
  t.equal(narrow.total_requests, 1, 'the range shapes the totals')
  t.same(narrow.activity_heatmap, heatmap, 'but not the heatmap: the 365 days ending today, whatever the range')
})
