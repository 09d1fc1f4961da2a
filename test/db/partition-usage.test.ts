// usage partitioned by month (src/db/partitions.ts): a request is one row whatever month
// its events date it in and however its batches race, found by its request id in any month
// through usage_requests; a second row for a request is refused in any partition; and usage
// retention (USAGE_RETENTION_DAYS) drops whole months of rows with their candidates, bodies
// and request ids, deletes the straddling month's older rows, and leaves every total,
// balance and rollup as it was.
import t from 'tap'
import { ensureMonth, monthlyTable, monthStart, partitionName, partitionsOf } from '../../src/db/partitions.js'
import { applyRetention, cleanupLine, runCleanup } from '../../src/modules/cleanup/service.js'
import { gateway, type Gateway } from '../modules/gateway/fixtures.js'

const DAY = 86_400_000
const now = new Date()
const THIS_MONTH = monthStart(now)
const month = (n: number) => new Date(Date.UTC(THIS_MONTH.getUTCFullYear(), THIS_MONTH.getUTCMonth() + n, 1))

/** The partitions of past months (the app makes the current one and those ahead). */
async function pastMonths (g: Gateway, from: number): Promise<void> {
  for (const table of ['usage', 'request_candidates', 'usage_bodies']) for (let n = from; n < 0; n++) await ensureMonth(g.app.pg, monthlyTable(table), month(n))
}

/** Where each request's usage rows are, and its usage_requests entry (request id → whether it names that row). */
async function rowsOf (g: Gateway): Promise<Record<string, { rows: string[], indexed: boolean }>> {
  const { rows } = await g.app.pg.query<{ request_id: string, p: string, indexed: boolean }>(`
    SELECT u.request_id, u.tableoid::regclass::text AS p,
           EXISTS (SELECT 1 FROM usage_requests q WHERE q.request_id = u.request_id AND q.usage_id = u.id AND q.created_at = u.created_at) AS indexed
      FROM usage u ORDER BY 1`)
  const out: Record<string, { rows: string[], indexed: boolean }> = {}
  for (const r of rows) {
    const entry = out[r.request_id] ??= { rows: [], indexed: true }
    entry.rows.push(r.p)
    entry.indexed &&= r.indexed
  }
  return out
}

const requestIds = async (g: Gateway) => (await g.app.pg.query<{ request_id: string }>('SELECT request_id FROM usage_requests ORDER BY 1')).rows.map((r) => r.request_id)

t.test('a request is one row in its month\'s partition; its later events find it there by request id', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  await pastMonths(g, -3)
  const times = { old: new Date(month(-2).getTime() + 5 * DAY), edge: new Date(month(0).getTime() - 1), first: month(0), recent: new Date(now.getTime() - 60_000) }
  await g.send(Object.entries(times).map(([id, at]) => ({ type: 'start', request_id: id, api_key_id: key.id, model: 'm', created_at: at.toISOString() })))
  // the completions name no time: each must find its row by request id alone
  const results = await g.send(Object.keys(times).map((id) => ({ type: 'complete', request_id: id, status: 'completed', input_tokens: 1000, output_tokens: 100 })))
  t.same(results.map((r) => r.outcome), ['recorded', 'recorded', 'recorded', 'recorded'])
  t.same(await rowsOf(g), Object.fromEntries(Object.entries(times).map(([id, at]) => [id, { rows: [partitionName('usage', monthStart(at))], indexed: true }])),
    'one row each, in its start\'s month, named by usage_requests')
  const rows = await g.app.prisma.usage.findMany({ orderBy: { requestId: 'asc' } })
  t.same(rows.map((r) => [r.requestId, r.status, r.totalCost]), ['edge', 'first', 'old', 'recent'].map((id) => [id, 'completed', 4_500_000n]),
    'each completed and priced in place: 1000 × $3/M + 100 × $15/M')
  const trace = await g.adminCall('GET', '/api/admin/monitoring/trace/old')
  t.equal(trace.candidates[0].status, 'success', 'the trace finds a request two months back by its id')
})

t.test('two batches racing to create one request, dated in different months, make one row', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const key = await g.standaloneKey()
  await pastMonths(g, -1)
  const rounds = 30
  for (let round = 0; round < rounds; round++) {
    const id = `race-${round}`
    // the completion dates the request this month, the start last month: on a partitioned table without one key
    // for the request id, each batch would insert its own row in its own month
    const responses = await Promise.all([
      g.usage([{ type: 'complete', request_id: id, api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1000, output_tokens: 0, created_at: new Date(now.getTime() - 60_000).toISOString() }]),
      g.usage([{ type: 'start', request_id: id, api_key_id: key.id, model: 'm', created_at: new Date(month(0).getTime() - DAY).toISOString() }])
    ])
    t.same(responses.map((r) => r.statusCode), [200, 200], `${id}: both batches answered`)
  }
  const found = await rowsOf(g)
  t.equal(Object.keys(found).length, rounds)
  t.same(Object.entries(found).filter(([, f]) => f.rows.length !== 1 || !f.indexed).map(([id]) => id), [], 'every request one row, named by usage_requests')
  t.equal((await requestIds(g)).length, rounds, 'and no request id of a row that is not there')
  const totals = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id } })
  t.equal(totals.totalRequests, BigInt(rounds), 'each request charged once')
})

t.test('a second usage row for a request is refused in any month; a deleted row frees its request id', async (t) => {
  const g = await gateway(t)
  await pastMonths(g, -2)
  const insert = (at: Date) => g.app.pg.query("INSERT INTO usage (request_id, model, created_at) VALUES ('dup', 'm', $1) RETURNING id", [at])
  const { rows: [first] } = await insert(new Date(month(-2).getTime() + DAY))
  for (const at of [new Date(month(-2).getTime() + 2 * DAY), month(-1), now]) {
    await t.rejects(insert(at), { code: '23505', constraint: 'usage_requests_pkey' }, `refused dated ${at.toISOString()}`)
  }
  // two rows of one request in one statement: refused together, nothing written
  await t.rejects(g.app.pg.query("INSERT INTO usage (request_id, model, created_at) VALUES ('pair', 'm', $1), ('pair', 'm', $2)", [month(-1), now]), { code: '23505' })
  t.same(await requestIds(g), ['dup'])
  t.same((await g.app.pg.query('SELECT usage_id FROM usage_requests')).rows, [{ usage_id: first!.id }], 'the first row named')
  await g.app.pg.query("DELETE FROM usage WHERE request_id = 'dup'")
  t.same(await requestIds(g), [], 'the delete took its request id')
  const { rows: [again] } = await insert(now)
  t.same(await rowsOf(g), { dup: { rows: [partitionName('usage', THIS_MONTH)], indexed: true } }, 'the request made again, this month')
  t.not(again!.id, first!.id)
})

t.test('usage retention drops whole months with their candidates, bodies and request ids, deletes the straddling month\'s older rows, and changes no total', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 3, output: 15 }] })
  const user = await g.user({ quota_usd: 1000 })
  const key = await g.userKey(user.id)
  await pastMonths(g, -6)
  const days = 100
  const cutoff = new Date(now.getTime() - days * DAY)
  // every 7 days back to 180 days, and about the cutoff: a millisecond before it, on it (kept: only older goes), an hour after
  const times = [...Array.from({ length: 26 }, (_, i) => new Date(now.getTime() - i * 7 * DAY - 3_600_000)),
    new Date(cutoff.getTime() - 1), cutoff, new Date(cutoff.getTime() + 3_600_000)]
  const completion = (i: number) => ({
    type: 'complete', request_id: `r${i}`, api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 1000 + i, output_tokens: 10, created_at: times[i]!.toISOString(),
    candidates: [{ candidate_index: 0, status: 'failed', status_code: 529 }, { candidate_index: 0, retry_index: 1, status: 'success', status_code: 200 }],
    request_body: { i }
  })
  await g.send(times.map((_at, i) => completion(i)))

  // independently: a request goes when older than the cutoff; a month goes whole when it ends by the cutoff
  const kept = times.flatMap((at, i) => at >= cutoff ? [`r${i}`] : []).sort()
  const wholeMonths = [-6, -5, -4, -3, -2, -1].filter((n) => month(n + 1) <= cutoff)
  const straddling = partitionName('usage', monthStart(cutoff))
  t.ok(wholeMonths.length >= 2, `${wholeMonths.length} months wholly past the cutoff`)
  const before = await rowsOf(g)
  t.ok(times.some((at, i) => at < cutoff && before[`r${i}`]?.rows[0] === straddling) && times.some((at, i) => at >= cutoff && before[`r${i}`]?.rows[0] === straddling),
    'the straddling month holds rows on both sides')
  const figures = async () => ({
    key: await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id: key.id }, select: { totalRequests: true, totalTokens: true, totalCost: true, balanceUsed: true } }),
    user: await g.app.prisma.user.findUniqueOrThrow({ where: { id: user.id }, select: { used: true, totalUsed: true } }),
    hourly: (await g.app.pg.query('SELECT sum(requests)::text AS requests, sum(total_cost)::text AS cost FROM usage_hourly')).rows[0],
    daily: (await g.app.pg.query('SELECT sum(requests)::text AS requests, sum(total_cost)::text AS cost FROM usage_daily_key')).rows[0]
  })
  const counted = await figures()
  t.equal(counted.key.totalRequests, BigInt(times.length))

  const summary = await applyRetention(g.app.prisma, g.app.pg, { usageDays: days, bodyDays: 0, auditDays: 0 }, now)
  const removed = times.length - kept.length
  t.same([summary.usageRows, summary.candidates, summary.bodies, summary.usagePartitions], [removed, 2 * removed, removed, wholeMonths.length],
    'every removed row counted: usage, its two candidates each, its body; the whole months')
  t.same(Object.keys(await rowsOf(g)).sort(), kept, 'exactly the requests at or after the cutoff are left')
  t.same(Object.values(await rowsOf(g)).filter((f) => !f.indexed), [], 'each still named by usage_requests')
  t.same(await requestIds(g), kept, 'and no request id of a removed row is left')
  const candidates = await g.app.pg.query<{ request_id: string }>('SELECT DISTINCT request_id FROM request_candidates ORDER BY 1')
  t.same(candidates.rows.map((r) => r.request_id).sort(), kept, 'the candidates of the rows left, and only those')
  const bodies = await g.app.pg.query<{ request_id: string }>('SELECT u.request_id FROM usage_bodies b JOIN usage u ON u.id = b.usage_id AND u.created_at = b.created_at')
  t.same(bodies.rows.map((r) => r.request_id).sort(), kept, 'the bodies of the rows left, and only those')
  t.equal((await g.app.pg.query('SELECT count(*)::int AS n FROM usage_bodies')).rows[0].n, kept.length)
  for (const table of ['usage', 'request_candidates', 'usage_bodies']) {
    const names = (await partitionsOf(g.app.pg, table)).map((p) => p.name)
    t.same(wholeMonths.map((n) => partitionName(table, month(n))).filter((name) => names.includes(name)), [], `${table}: the whole months' partitions are gone`)
    t.ok(names.includes(partitionName(table, monthStart(cutoff))), `${table}: the straddling month stays`)
  }
  t.same(await figures(), counted, 'the key\'s and the user\'s totals and the rollups count what they counted')

  // a removed request's completion sent again is still a duplicate (its receipt is kept): nothing is charged twice
  const replay = await g.send([completion(0), completion(times.length - 3)])
  t.same(replay.map((r) => r.outcome), ['duplicate', 'duplicate'])
  t.same(await figures(), counted, 'the replay charged nothing')
  t.same(await applyRetention(g.app.prisma, g.app.pg, { usageDays: days, bodyDays: 0, auditDays: 0 }, now),
    { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 0, bodyPartitions: 0, auditRows: 0, auditPartitions: 0, windowSeconds: 0 }, 'a second run finds nothing')
})

t.test('body retention longer than usage retention: a body goes with its usage row; the cleanup line says what went', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  await pastMonths(g, -4)
  const old = new Date(month(-3).getTime() + DAY)
  const done = { type: 'complete', api_key_id: key.id, model: 'm', status: 'completed', input_tokens: 10, output_tokens: 5 }
  await g.send([{ ...done, request_id: 'old', created_at: old.toISOString(), request_body: { a: 1 } }, { ...done, request_id: 'new', request_body: { b: 1 } }])
  const summary = await applyRetention(g.app.prisma, g.app.pg, { usageDays: 40, bodyDays: 365, auditDays: 0 }, now)
  // the months made (four back) that end by the cutoff go whole, the old request's among them
  const whole = [-4, -3, -2, -1].filter((n) => month(n + 1).getTime() <= now.getTime() - 40 * DAY).length
  t.ok(whole >= 2)
  t.same([summary.usageRows, summary.bodies, summary.bodyPartitions], [1, 1, whole], 'the old request\'s body went with it, by its month')
  t.same(await requestIds(g), ['new'])
  const line = cleanupLine(await runCleanup(g.app.prisma, { autoDeleteExpiredKeys: false }), 0, summary)
  t.match(line, `removed 1 old usage rows and 0 candidates (${whole} monthly partitions dropped whole)`)
  t.match(line, `removed 1 old bodies (${whole} monthly partitions dropped whole)`)
})
