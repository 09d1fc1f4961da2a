// The bench's Aether baselines on a handful of hand-placed rows: the daily stats table its
// heatmap reads (built per business zone), the heatmap's two reads, the records' count,
// page and follow-up steps, /stats' three statements, and the comparisons printed beside
// them; plus the environment hand-back that lets `npm run bench -- stats cache` run both.
import pg from 'pg'
import t, { type Test } from 'tap'
import { cases, localDay, runSetups, runSteps, sameDays, samePage, sameTotals, withEnv, type Case, type Row } from '../../bench/stats.js'
import { createDatabase } from '../helper.js'

const END = new Date('2026-06-15T12:00:00Z')
const START = new Date(END.getTime() - 30 * 86_400_000)

/** usage rows by hand: [request id, created_at, status, status_code, error_message, total_tokens, total_cost] */
const ROWS: Array<[string, string, string, number | null, string | null, number, number]> = [
  ['r-old', '2025-06-01T10:00:00Z', 'completed', 200, null, 10, 1_000], // before the heatmap's 365 days
  ['r-13', '2026-06-13T10:00:00Z', 'pending', null, null, 0, 0], // in flight: Aether still counts it
  ['r-14-fail', '2026-06-14T20:00:00Z', 'failed', 500, 'upstream', 5, 0],
  ['r-14-late', '2026-06-14T23:30:00Z', 'completed', 200, null, 20, 3_000],
  ['r-15-msg', '2026-06-15T01:00:00Z', 'completed', 200, 'warned', 7, 700], // an error to Aether by its message alone
  ['r-15-pm', '2026-06-15T13:00:00Z', 'completed', 200, null, 8, 800] // later today than END: Aether's today runs to midnight
]

async function seeded (t: Test): Promise<{ db: pg.Client, ids: Map<string, string> }> {
  const db = new pg.Client({ connectionString: await createDatabase(t) })
  await db.connect()
  t.teardown(() => db.end())
  const ids = new Map<string, string>()
  for (const [requestId, at, status, code, message, tokens, cost] of ROWS) {
    const { rows: [row] } = await db.query(`INSERT INTO usage (request_id, model, provider_name, created_at, status, status_code, error_message, total_tokens, total_cost, actual_total_cost)
      VALUES ($1, 'claude-sonnet-4', 'p1', $2, $3, $4, $5, $6, $7, $7) RETURNING id`, [requestId, at, status, code, message, tokens, cost])
    ids.set(requestId, row.id as string)
  }
  // r-14-late fell back: two candidates sent; one skipped candidate for r-15-pm is no fallback
  await db.query(`INSERT INTO request_candidates (request_id, candidate_index, status, created_at) VALUES
    ('r-14-late', 0, 'failed', '2026-06-14T23:30:00Z'), ('r-14-late', 1, 'success', '2026-06-14T23:30:01Z'),
    ('r-15-pm', 0, 'skipped', '2026-06-15T13:00:00Z'), ('r-15-pm', 1, 'success', '2026-06-15T13:00:01Z')`)
  return { db, ids }
}
const named = (all: Case[], name: string) => all.find((c) => c.name === name)!

t.test('the heatmap baseline: Aether\'s daily table per business zone, its past days, and today live', async (t) => {
  const { db, ids } = await seeded(t)
  const all = cases(START, END, ids.get('r-14-late')!)
  const said: string[] = []
  await runSetups(db, all, (text) => said.push(text))
  t.equal(said.length, 2, 'each zone\'s table built once')

  const utc = await runSteps(db, named(all, 'heatmap (UTC)').raw)
  const day = (r: Row) => (r.date as Date).toISOString()
  t.same(utc[0]!.map((r) => [day(r), Number(r.total_requests), Number(r.error_requests), Number(r.success_requests), Number(r.fallback_count)]).sort(), [
    ['2026-06-13T00:00:00.000Z', 1, 0, 1, 0],
    ['2026-06-14T00:00:00.000Z', 2, 1, 1, 1]
  ], 'past days from the table: every status, errors by code or message, the fallback counted; not today, not before the 365 days')
  t.same(utc[1]!.map((r) => [Number(r.requests), Number(r.total_tokens)]), [[2, 15]], 'today live, to midnight')

  // Asia/Kolkata (+05:30): 06-14 20:00Z, 23:30Z and 06-15 01:00Z, 13:00Z are all 06-15 there, whose start (06-14 18:30Z) is before UTC midnight
  const kolkata = await runSteps(db, named(all, 'heatmap (Asia/Kolkata)').raw)
  t.same(kolkata[0]!.map((r) => [day(r), Number(r.total_requests), Number(r.error_requests)]).sort(), [
    ['2026-06-12T18:30:00.000Z', 1, 0],
    ['2026-06-14T18:30:00.000Z', 4, 2]
  ], 'a local day starts at its local midnight')

  const api = (days: Array<[string, number]>) => ({ days: days.map(([date, requests]) => ({ date, requests })) })
  t.equal(sameDays('UTC')(api([['2026-06-12', 0], ['2026-06-13', 1], ['2026-06-14', 2], ['2026-06-15', 2]]), utc),
    '3 past days same; today 2 / 2 (Aether: every status)')
  t.equal(sameDays('UTC')(api([['2026-06-13', 0], ['2026-06-14', 2], ['2026-06-15', 1]]), utc),
    '1 of 2 past days differ, e.g. 2026-06-13: 0 / 1 (Aether counts every status); today 1 / 2 (Aether: every status)')
  t.equal(sameDays('Asia/Kolkata')(api([['2026-06-13', 1], ['2026-06-14', 0], ['2026-06-15', 4]]), kolkata),
    '2 past days same; today 4 / 2 (Aether: the UTC day, every status); Aether labels each day by its start\'s UTC date, here the day before')
  t.equal(localDay(new Date('2026-06-14T18:30:00Z'), 'Asia/Kolkata'), '2026-06-15')
})

t.test('the records baseline: count, page, then the page\'s candidates and providers built from it', async (t) => {
  const { db, ids } = await seeded(t)
  const all = cases(START, END, ids.get('r-14-late')!)
  const errors = await runSteps(db, named(all, 'records, first page (status = error)').raw)
  t.equal(Number(errors[0]![0]!.count), 2, 'Aether\'s errors: status code ≥ 400 or a message, whatever the status')
  t.same(errors[1]!.map((r) => r.request_id), ['r-15-msg', 'r-14-fail'], 'newest first')
  t.equal(errors[2]!.length, 0, 'no candidates sent for those two')
  const page = await runSteps(db, named(all, 'records, first page (no filter)').raw)
  t.same(page[1]!.map((r) => r.request_id), ['r-15-pm', 'r-15-msg', 'r-14-late', 'r-14-fail', 'r-13', 'r-old'])
  t.same(page[2]!.map((r) => `${r.request_id}/${r.candidate_index}`).sort(), ['r-14-late/0', 'r-14-late/1', 'r-15-pm/1'], 'the sent candidates of the page\'s requests')
  const model = await runSteps(db, named(all, 'records, first page (model = claude-sonnet-4)').raw)
  t.equal(Number(model[0]![0]!.count), 6, 'ILIKE over the model')

  const apiPage = (requestIds: string[], total: number, estimate = false) =>
    ({ records: requestIds.map((r) => ({ id: page[1]!.find((row) => row.request_id === r)!.id })), total, total_is_estimate: estimate })
  const order = page[1]!.map((r) => r.request_id as string)
  t.equal(samePage()(apiPage(order, 6), page), null)
  t.equal(samePage('why')(apiPage(order, 5), page), 'total 5, Aether\'s count 6 (why)')
  t.equal(samePage()(apiPage(order, 5, true), page), null, 'an estimated total is not compared')
  t.equal(samePage()(apiPage([...order].reverse(), 6), page), 'same rows, ties on created_at in another order (Aether orders by it alone)')
  t.equal(samePage()(apiPage(order.slice(1), 6), page), 'another page of records')
})

t.test('the /stats baseline: three statements over every row of the window', async (t) => {
  const { db, ids } = await seeded(t)
  const stats = await runSteps(db, named(cases(START, END, ids.get('r-14-late')!), 'stats (30 days)').raw)
  // the window is [END - 30 days, END]: r-13, r-14-fail, r-14-late, r-15-msg (r-15-pm is after END, r-old before)
  t.same([Number(stats[0]![0]!.requests), Number(stats[0]![0]!.tokens), Number(stats[0]![0]!.cost)], [4, 32, 3_700])
  t.equal(stats[1]!.length, 1, 'the cache sums')
  t.equal(Number(stats[2]![0]!.count), 2, 'errors: r-14-fail by code, r-15-msg by message')
  const api = { total_requests: 4, total_tokens: 32, total_cost: 3.7e-6, total_actual_cost: 3.7e-6, error_count: 2 }
  t.equal(sameTotals(api, stats), null)
  t.equal(sameTotals({ ...api, total_requests: 3, error_count: 1 }, stats),
    'requests 3 / 4, errors 1 / 2 (Aether: every status in the window; errors by status code ≥ 400 or a message)')
})

t.test('the detail baseline reads the row, then its references by the ids it holds', async (t) => {
  const { db, ids } = await seeded(t)
  const detail = await runSteps(db, named(cases(START, END, ids.get('r-14-late')!), 'detail (a fallback with candidates)').raw)
  t.equal(detail[0]![0]!.request_id, 'r-14-late')
  t.same(detail.slice(1).map((rows) => rows.length), [0, 0, 0, 0], 'no user, key, provider or provider key on the hand-made row')
})

t.test('withEnv puts the variable back, so the next bench in the command starts its own database', async (t) => {
  delete process.env.KEYMETER_BENCH_TEST
  t.equal(await withEnv('KEYMETER_BENCH_TEST', 'a', async () => process.env.KEYMETER_BENCH_TEST), 'a')
  t.equal(process.env.KEYMETER_BENCH_TEST, undefined, 'unset again')
  process.env.KEYMETER_BENCH_TEST = 'before'
  await t.rejects(withEnv('KEYMETER_BENCH_TEST', 'b', async () => { throw new Error('boom') }), /boom/)
  t.equal(process.env.KEYMETER_BENCH_TEST, 'before', 'the earlier value, after a failure too')
  delete process.env.KEYMETER_BENCH_TEST
})
