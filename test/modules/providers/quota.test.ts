// A provider's monthly quota at an instant (providers/quota.ts), without a database:
// expected instants and amounts worked out by hand.
import t from 'tap'
import { quotaUsage } from '../../../src/modules/providers/quota.js'

const USD = 1_000_000_000n
// 10 days into December 2026 (31 days): the month is [12-01, 2027-01-01)
const NOW = new Date('2026-12-11T00:00:00.000Z')
const DECEMBER = '2026-12-01'

t.test('the month counted is the UTC calendar month of the instant', async (t) => {
  const usage = quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 20n * USD, monthlyUsedMonth: DECEMBER }, NOW)
  t.equal(usage.monthStart.toISOString(), '2026-12-01T00:00:00.000Z')
  t.equal(usage.monthEnd.toISOString(), '2027-01-01T00:00:00.000Z')
  const february = quotaUsage({ monthlyQuota: null, monthlyUsed: 0n, monthlyUsedMonth: null }, new Date('2027-02-28T23:59:59.999Z'))
  t.equal(february.monthStart.toISOString(), '2027-02-01T00:00:00.000Z')
  t.equal(february.monthEnd.toISOString(), '2027-03-01T00:00:00.000Z')
})

t.test('spent, remaining, percent; the projection at the month\'s rate so far', async (t) => {
  // 20 USD in 10 days: 2 a day reaches 100 after 50 days, past the month's end → null
  t.same(pick(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 20n * USD, monthlyUsedMonth: DECEMBER }, NOW)),
    { used: 20n * USD, remaining: 80n * USD, percent: 20, exhaustAt: null })
  // 50 USD in 10 days: 5 a day reaches 100 after 20 days → December 21st
  t.same(pick(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 50n * USD, monthlyUsedMonth: new Date('2026-12-01T00:00:00.000Z') }, NOW)),
    { used: 50n * USD, remaining: 50n * USD, percent: 50, exhaustAt: '2026-12-21T00:00:00.000Z' })
  // a third: percent to two decimals
  t.equal(quotaUsage({ monthlyQuota: 3n, monthlyUsed: 1n, monthlyUsedMonth: DECEMBER }, NOW).percent, 33.33)
})

t.test('a quota already spent: nothing remains, exhausted now', async (t) => {
  t.same(pick(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 120n * USD, monthlyUsedMonth: DECEMBER }, NOW)),
    { used: 120n * USD, remaining: 0n, percent: 120, exhaustAt: NOW.toISOString() })
})

t.test('an older month reads as nothing spent: the quota resets without a job', async (t) => {
  t.same(pick(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 30n * USD, monthlyUsedMonth: '2026-11-01' }, NOW)),
    { used: 0n, remaining: 100n * USD, percent: 0, exhaustAt: null })
  t.same(pick(quotaUsage({ monthlyQuota: 100n * USD, monthlyUsed: 0n, monthlyUsedMonth: null }, NOW)),
    { used: 0n, remaining: 100n * USD, percent: 0, exhaustAt: null })
})

t.test('no quota: the month\'s spend only', async (t) => {
  t.same(pick(quotaUsage({ monthlyQuota: null, monthlyUsed: 5n * USD, monthlyUsedMonth: DECEMBER }, NOW)),
    { used: 5n * USD, remaining: null, percent: null, exhaustAt: null })
})

function pick (usage: ReturnType<typeof quotaUsage>) {
  return { used: usage.used, remaining: usage.remaining, percent: usage.percent, exhaustAt: usage.exhaustAt?.toISOString() ?? null }
}
