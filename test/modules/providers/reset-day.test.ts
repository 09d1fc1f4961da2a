// A provider's quota period starts on its quota_reset_day (00:00 UTC, clamped to the
// month's last day): the TypeScript rule the readers use and the SQL ingestion and the
// alerts use agree on every day of two years for every kind of reset day; ingestion's
// monthly_used, the quota read, the quota-usage statistics and the alert's window follow
// it. Expected periods are worked out by hand.
import t from 'tap'
import { PROVIDER_MONTH } from '../../../src/modules/accounting/model.js'
import { quotaUsage } from '../../../src/modules/providers/quota.js'
import { gateway, type Json } from '../gateway/fixtures.js'

const DAY = 86_400_000
const at = (iso: string) => new Date(`${iso}T00:00:00.000Z`)
const day = (date: Date) => date.toISOString().slice(0, 10)

t.test('the period by hand: reset days past a month\'s end land on its last day', async (t) => {
  const cases: Array<[instant: string, resetDay: number, start: string, end: string]> = [
    ['2027-02-15T12:00:00.000Z', 31, '2027-01-31', '2027-02-28'],
    ['2027-02-28T00:00:00.000Z', 31, '2027-02-28', '2027-03-31'],
    ['2027-02-27T23:59:59.999Z', 31, '2027-01-31', '2027-02-28'],
    ['2028-02-29T00:00:00.000Z', 31, '2028-02-29', '2028-03-31'],
    ['2028-02-28T23:59:59.999Z', 30, '2028-01-30', '2028-02-29'],
    ['2027-03-01T00:00:00.000Z', 30, '2027-02-28', '2027-03-30'],
    ['2027-04-30T00:00:00.000Z', 31, '2027-04-30', '2027-05-31'],
    ['2027-12-31T23:59:59.999Z', 15, '2027-12-15', '2028-01-15'],
    ['2027-01-14T23:59:59.999Z', 15, '2026-12-15', '2027-01-15'],
    ['2027-01-15T00:00:00.000Z', 15, '2027-01-15', '2027-02-15'],
    ['2027-01-01T00:00:00.000Z', 1, '2027-01-01', '2027-02-01'],
    ['2026-12-31T23:59:59.999Z', 1, '2026-12-01', '2027-01-01']
  ]
  for (const [instant, resetDay, start, end] of cases) {
    const period = PROVIDER_MONTH.period(new Date(instant), resetDay)
    t.same([day(period.start), day(period.end)], [start, end], `${instant}, reset day ${resetDay}`)
  }
  const configs: Array<[unknown, number]> = [[null, 1], [{}, 1], [{ quota_reset_day: 15 }, 15], [{ quota_reset_day: 30 }, 30], [{ quota_reset_day: 365 }, 31],
    [{ quota_reset_day: 0 }, 1], [{ quota_reset_day: 7.9 }, 7], [{ quota_reset_day: '15' }, 1], [{ quota_reset_day: null }, 1], ['text', 1]]
  for (const [config, expected] of configs) t.equal(PROVIDER_MONTH.resetDay(config), expected, `reset day of ${JSON.stringify(config)}`)
})

t.test('the SQL rule equals the TypeScript one on every day of 2027 and 2028', async (t) => {
  const g = await gateway(t)
  const resetDays = [1, 2, 15, 28, 29, 30, 31]
  const rows = await g.app.prisma.$queryRawUnsafe<Array<{ day: string, reset: number, start: string, end: string }>>(`
    SELECT d::date::text AS day, r AS reset, ${PROVIDER_MONTH.periodStartSql('d::date', 'r')}::text AS start,
           ${PROVIDER_MONTH.periodEndSql(PROVIDER_MONTH.periodStartSql('d::date', 'r'), 'r')}::text AS "end"
      FROM generate_series('2027-01-01'::date, '2028-12-31'::date, interval '1 day') AS d, unnest('{${resetDays.join(',')}}'::int[]) AS r`)
  t.equal(rows.length, 731 * resetDays.length)
  let differ = 0
  for (const row of rows) {
    const period = PROVIDER_MONTH.period(at(row.day), row.reset)
    // every instant of the day falls in the same period (periods start at midnight)
    const late = PROVIDER_MONTH.period(new Date(at(row.day).getTime() + DAY - 1), row.reset)
    if (day(period.start) !== row.start || day(period.end) !== row.end || late.start.getTime() !== period.start.getTime()) {
      differ++
      t.fail(`${row.day} reset ${row.reset}: SQL ${row.start}–${row.end}, TypeScript ${day(period.start)}–${day(period.end)}`)
    }
  }
  t.equal(differ, 0, 'no day differs')
  const configs = await g.app.prisma.$queryRawUnsafe<Array<{ day: number }>>(`
    SELECT ${PROVIDER_MONTH.resetDaySql('c')} AS day FROM unnest(ARRAY['{}', '{"quota_reset_day": 15}', '{"quota_reset_day": 365}', '{"quota_reset_day": 0}',
      '{"quota_reset_day": 7.9}', '{"quota_reset_day": "15"}', '{"quota_reset_day": null}', 'null']::jsonb[]) WITH ORDINALITY AS x(c, n) ORDER BY n`)
  t.same(configs.map((row) => row.day), [1, 15, 31, 1, 7, 1, 1, 1], 'the reset day read from config as in TypeScript')
})

t.test('a quota read at an instant counts the period since the last reset day', async (t) => {
  const USD = 1_000_000_000n
  const now = new Date('2027-02-20T00:00:00.000Z')
  const config = { quota_reset_day: 31 }
  // the period is [Jan 31, Feb 28): 20 days in, 10 of 100 USD spent → at 0.5 a day, 100 after 200 days: past the end
  const usage = quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 10n * USD, monthlyUsedMonth: '2027-01-31', config }, now)
  t.same([usage.monthStart.toISOString(), usage.monthEnd.toISOString(), usage.used, usage.percent, usage.exhaustAt], ['2027-01-31T00:00:00.000Z', '2027-02-28T00:00:00.000Z', 10n * USD, 10, null])
  // 60 USD in 20 days: 3 a day reaches 100 after 33⅓ days → past Feb 28 too; 90 USD: 4.5 a day → 22.2 days, Feb 22 05:20
  const fast = quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 90n * USD, monthlyUsedMonth: '2027-01-31', config }, now)
  t.equal(fast.exhaustAt?.toISOString(), '2027-02-22T05:20:00.000Z')
  // a total kept under the 1st (the calendar month) is another period: nothing spent in this one
  t.equal(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 10n * USD, monthlyUsedMonth: '2027-02-01', config }, now).used, 0n)
})

t.test('ingestion, the provider record, the quota-usage statistics and the alert window follow the reset day', async (t) => {
  const g = await gateway(t, { ALERT_DELIVERY_INTERVAL_MS: '0' })
  const today = new Date(Math.floor(Date.now() / DAY) * DAY)
  const resetDay = today.getUTCDate()
  // the period starts at today's midnight; it ends on the same day next month, or that month's last day
  const nextMonthDays = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() + 2, 0)).getUTCDate()
  const end = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth() + 1, Math.min(resetDay, nextMonthDays)))
  const provider = await g.adminCall('POST', '/api/admin/providers', { name: 'reset', billing_type: 'monthly_quota', monthly_quota_usd: 10, quota_reset_day: resetDay })
  const providerKey = await g.providerKey(provider.id)
  await g.price({ model: 'm', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey()
  await g.adminCall('POST', '/api/admin/alerts/rules', { subject_kind: 'provider', subject_id: provider.id, limit_kind: 'quota', thresholds: [50] })
  let n = 0
  const done = (createdAt: Date, usd: number): Json => ({
    type: 'complete', request_id: `r-${++n}`, api_key_id: key.id, model: 'm', provider_id: provider.id, provider_api_key_id: providerKey.id,
    created_at: createdAt.toISOString(), status: 'completed', input_tokens: usd * 1_000_000, output_tokens: 0
  })
  const row = async () => (await g.app.prisma.$queryRawUnsafe<Json[]>(`SELECT monthly_used::text AS used, monthly_used_month::text AS month FROM providers WHERE id = '${provider.id as string}'`))[0]
  // one batch across the reset: yesterday's 3 USD are the previous period's, today's 2 + 4 USD this one's
  await g.send([done(new Date(today.getTime() - 1000), 3), done(new Date(today.getTime() + 1000), 2), done(new Date(today.getTime() + 2000), 4)])
  t.same(await row(), { used: '6000000000', month: day(today) }, 'the newest period, from the reset day')
  // a late row of the previous period leaves this one alone
  await g.send([done(new Date(today.getTime() - DAY), 1)])
  t.same(await row(), { used: '6000000000', month: day(today) })

  const expected = { monthly_used_usd: 6, monthly_remaining_usd: 4, monthly_usage_percent: 60, monthly_period_start: today.toISOString(), monthly_period_end: end.toISOString() }
  t.match(await g.adminCall('GET', `/api/admin/providers/${provider.id as string}`), expected, 'the provider record')
  const stats = await g.adminCall('GET', '/api/admin/stats/providers/quota-usage')
  t.match(stats.providers[0], { id: provider.id, used_usd: 6, remaining_usd: 4, usage_percent: 60, ...expected }, 'the quota-usage statistics')

  const alerts = await g.app.prisma.$queryRawUnsafe<Json[]>('SELECT window_key, window_start, window_end, threshold, used FROM alerts')
  t.same(alerts.map((a) => [a.window_key, a.window_start.toISOString(), a.window_end.toISOString(), a.threshold, a.used]),
    [[`period:${day(today)}:quota:10000000000`, today.toISOString(), end.toISOString(), 50, 6_000_000_000n]], 'the 50 % alert, once, in the reset day\'s period')
})
