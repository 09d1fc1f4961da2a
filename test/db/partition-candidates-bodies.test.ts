// request_candidates and usage_bodies partitioned by month (src/db/partitions.ts): a
// request's candidates and body land in the partition of its own created_at month, a
// replayed completion adds nothing in any partition, the detail view reads them back from
// any month, and body retention drops whole months and deletes only the straddling
// month's older bodies: the bodies a plain row delete would leave, usage rows untouched.
import t from 'tap'
import { ensureMonth, monthlyTable, monthStart, partitionName, partitionsOf } from '../../src/db/partitions.js'
import { applyRetention } from '../../src/modules/cleanup/service.js'
import { gateway, type Gateway } from '../modules/gateway/fixtures.js'

const DAY = 86_400_000
const now = new Date()
const THIS_MONTH = monthStart(now)
const month = (n: number) => new Date(Date.UTC(THIS_MONTH.getUTCFullYear(), THIS_MONTH.getUTCMonth() + n, 1))

/** A completion with two candidates (a failed try and its retry) and a body, dated `at`. */
const completion = (id: string, keyId: string, at: Date) => ({
  type: 'complete', request_id: id, api_key_id: keyId, model: 'm', status: 'completed', input_tokens: 10, output_tokens: 5, created_at: at.toISOString(),
  candidates: [{ candidate_index: 0, status: 'failed', status_code: 529 }, { candidate_index: 0, retry_index: 1, status: 'success', status_code: 200 }],
  request_body: { id }
})

/** Where each stored candidate and body of the requests is: request id → partitions. */
async function placed (g: Gateway): Promise<Record<string, { candidates: string[], body: string[] }>> {
  const candidates = await g.app.pg.query<{ request_id: string, p: string }>(
    'SELECT request_id, tableoid::regclass::text AS p FROM request_candidates ORDER BY request_id, candidate_index, retry_index')
  const bodies = await g.app.pg.query<{ request_id: string, p: string }>(
    'SELECT u.request_id, b.tableoid::regclass::text AS p FROM usage_bodies b JOIN usage u ON u.id = b.usage_id ORDER BY 1')
  const out: Record<string, { candidates: string[], body: string[] }> = {}
  for (const r of candidates.rows) (out[r.request_id] ??= { candidates: [], body: [] }).candidates.push(r.p)
  for (const r of bodies.rows) (out[r.request_id] ??= { candidates: [], body: [] }).body.push(r.p)
  return out
}

t.test('candidates and bodies land in their request\'s month, once however often the completion is sent, and read back from any month', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  for (const table of ['request_candidates', 'usage_bodies']) for (const n of [-3, -2, -1]) await ensureMonth(g.app.pg, monthlyTable(table), month(n))
  // mid-month three months back, the last millisecond of last month, the first of this one, now
  const times = { old: new Date(month(-3).getTime() + 14 * DAY), edge: new Date(month(0).getTime() - 1), first: month(0), recent: new Date(now.getTime() - 60_000) }
  const events = Object.entries(times).map(([id, at]) => completion(id, key.id, at))
  await g.send(events)
  const expected = Object.fromEntries(Object.entries(times).map(([id, at]) => [id, {
    candidates: [partitionName('request_candidates', monthStart(at)), partitionName('request_candidates', monthStart(at))],
    body: [partitionName('usage_bodies', monthStart(at))]
  }]))
  t.same(await placed(g), expected, 'each in its request\'s month')

  const again = await g.send(events)
  t.same(again.map((r) => r.outcome), events.map(() => 'duplicate'), 'the replay is a duplicate')
  t.same(await placed(g), expected, 'nothing added by the replay')

  const old = await g.app.prisma.usage.findFirstOrThrow({ where: { requestId: 'old' } })
  const detail = await g.adminCall('GET', `/api/admin/usage/${old.id}`)
  t.same(detail.request_body, { id: 'old' }, 'the body of a request three months back')
  t.same(detail.candidates.map((c: { retry_index: number, status: string }) => [c.retry_index, c.status]), [[0, 'failed'], [1, 'success']], 'and its candidates')
})

t.test('body retention drops whole months and deletes only the straddling month\'s older bodies; usage rows stay', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey()
  const bodies = monthlyTable('usage_bodies')
  for (let n = -6; n <= -1; n++) await ensureMonth(g.app.pg, bodies, month(n))
  const days = 100
  const cutoff = new Date(now.getTime() - days * DAY)
  // every 7 days back to 180 days, and about the cutoff: a millisecond before it, on it (kept: only older goes), an hour after
  const times = [...Array.from({ length: 26 }, (_, i) => new Date(now.getTime() - i * 7 * DAY - 3_600_000)),
    new Date(cutoff.getTime() - 1), cutoff, new Date(cutoff.getTime() + 3_600_000)]
  await g.send(times.map((at, i) => completion(`r${i}`, key.id, at)))

  // independently: a body goes when older than the cutoff; a month's partition goes whole when its month ends by the cutoff
  const kept = times.flatMap((at, i) => at >= cutoff ? [`r${i}`] : []).sort()
  const wholeMonths = [-6, -5, -4, -3, -2, -1].filter((n) => month(n + 1) <= cutoff).map((n) => partitionName('usage_bodies', month(n)))
  const straddling = partitionName('usage_bodies', monthStart(cutoff))
  t.ok(wholeMonths.length >= 2, `${wholeMonths.join(', ')} wholly past the cutoff`)
  const before = await placed(g)
  t.ok(times.some((at, i) => at < cutoff && before[`r${i}`]?.body[0] === straddling) && times.some((at, i) => at >= cutoff && before[`r${i}`]?.body[0] === straddling),
    'the straddling month holds bodies on both sides')

  const summary = await applyRetention(g.app.prisma, g.app.pg, { usageDays: 0, bodyDays: days, auditDays: 0 }, now)
  t.equal(summary.bodies, times.length - kept.length, 'every removed body counted')
  t.equal(summary.bodyPartitions, wholeMonths.length, 'the whole months dropped')
  const after = await placed(g)
  t.same(Object.entries(after).filter(([, p]) => p.body.length > 0).map(([id]) => id).sort(), kept, 'exactly the bodies at or after the cutoff are left')
  const names = (await partitionsOf(g.app.pg, 'usage_bodies')).map((p) => p.name)
  t.same(wholeMonths.filter((name) => names.includes(name)), [], 'their partitions are gone')
  t.ok(names.includes(straddling), 'the straddling month stays')
  t.equal(await g.app.prisma.usage.count(), times.length, 'every usage row stays: they are the accounting')
  t.equal(Object.values(after).reduce((n, p) => n + p.candidates.length, 0), 2 * times.length, 'and every candidate (theirs is usage retention, off here)')
  t.same(await applyRetention(g.app.prisma, g.app.pg, { usageDays: 0, bodyDays: days, auditDays: 0 }, now), { usageRows: 0, usagePartitions: 0, candidates: 0, bodies: 0, bodyPartitions: 0, auditRows: 0, auditPartitions: 0, windowSeconds: 0 },
    'a second run finds nothing')
})
