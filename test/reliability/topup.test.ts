// Balance top-ups (issue 14, items 8 and 14): a top-up is always accepted, an
// overdrawn key included (charges arrive after the fact), as long as the balance fits
// its int8 column; past it the call is a 400 and nothing changes. A deduction may
// still not take the remaining balance below zero. Amounts are checked in nano-USD.
import t from 'tap'
import { assertConsistent, gateway, type Gateway } from '../modules/gateway/fixtures.js'

const NANO = 1_000_000_000n

async function balanceOf (g: Gateway, id: string) {
  const row = await g.app.prisma.apiKey.findUniqueOrThrow({ where: { id } })
  return { current: row.currentBalance, used: row.balanceUsed }
}

const adjust = (g: Gateway, id: string, amountUsd: number) =>
  g.app.inject({ method: 'PATCH', url: `/api/admin/api-keys/${id}/balance`, headers: g.admin.headers, payload: { amount_usd: amountUsd } })

t.test('a key granted USD 1e9, then nine top-ups of USD 1e9: eight fit int8 nano-USD, the ninth is a 400 that changes nothing', async (t) => {
  const g = await gateway(t)
  const key = await g.standaloneKey({ initial_balance_usd: 1e9 })
  for (let i = 1; i <= 8; i++) {
    const res = await adjust(g, key.id, 1e9)
    t.equal(res.statusCode, 200, `top-up ${i}: ${res.body.slice(0, 120)}`)
  }
  t.same(await balanceOf(g, key.id), { current: 9n * 10n ** 18n, used: 0n }, 'eight top-ups: 9e18 nano')
  const ninth = await adjust(g, key.id, 1e9)
  t.equal(ninth.statusCode, 400, ninth.body)
  t.match(ninth.json(), { error: { type: 'invalid_input', message: /int8/, field: 'body.amount_usd' }, request_id: String })
  t.same(await balanceOf(g, key.id), { current: 9n * 10n ** 18n, used: 0n }, 'the refused top-up changed nothing')
  const smaller = await adjust(g, key.id, 1e9 - 1)
  t.equal(smaller.statusCode, 400, 'USD 999,999,999 more (9.999999999e18 nano, past 2^63 − 1 ≈ 9.223e18) is refused too')
  const fits = await adjust(g, key.id, 1e8)
  t.equal(fits.statusCode, 200, 'a top-up that still fits is taken')
  t.same(await balanceOf(g, key.id), { current: 9n * 10n ** 18n + 10n ** 17n, used: 0n })
  const audit = await g.app.prisma.auditLog.findFirst({ where: { requestId: ninth.json().request_id } })
  t.match(audit, { success: false, statusCode: 400 }, 'the refusal is audited')
})

t.test('a top-up on an overdrawn standalone key is accepted; deductions stay bounded by the remaining balance', async (t) => {
  const g = await gateway(t)
  // USD 1 per 1M input tokens: 3,000,000 tokens cost USD 3
  await g.price({ model: 'plain', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey({ initial_balance_usd: 1 })
  const charged = await g.send([{ type: 'complete', request_id: 'overdraw-1', api_key_id: key.id, model: 'plain', status: 'completed', input_tokens: 3_000_000, output_tokens: 0 }])
  t.match(charged, [{ outcome: 'recorded', cost_usd: 3 }], 'a charge after the fact overdraws the key')
  t.same(await balanceOf(g, key.id), { current: 1n * NANO, used: 3n * NANO }, 'remaining −USD 2')

  const deduct = await adjust(g, key.id, -0.1)
  t.equal(deduct.statusCode, 400, 'a deduction on an overdrawn key is refused')
  t.equal(deduct.json().error.type, 'insufficient_balance')

  const topUp = await adjust(g, key.id, 0.5)
  t.equal(topUp.statusCode, 200, `a top-up on the overdrawn key is accepted: ${topUp.body.slice(0, 160)}`)
  t.same(await balanceOf(g, key.id), { current: 1_500_000_000n, used: 3n * NANO }, 'exactly USD 1.5 granted, still USD 1.5 overdrawn')
  t.equal(topUp.json().remaining_balance_usd, -1.5)

  t.equal((await adjust(g, key.id, 1.500000001)).statusCode, 200, 'a top-up to one nano-USD above zero')
  t.same(await balanceOf(g, key.id), { current: 3_000_000_001n, used: 3n * NANO })
  t.equal((await adjust(g, key.id, -0.000000002)).statusCode, 400, 'deducting 2 nano from 1 nano remaining is refused')
  t.equal((await adjust(g, key.id, -0.000000001)).statusCode, 200, 'deducting the last nano is taken')
  t.same(await balanceOf(g, key.id), { current: 3n * NANO, used: 3n * NANO }, 'remaining exactly zero')
  await assertConsistent(t, g.app)
})

t.test('an unlimited standalone key becomes limited at what it used plus the top-up', async (t) => {
  const g = await gateway(t)
  await g.price({ model: 'plain', tiers: [{ up_to: null, input: 1, output: 0 }] })
  const key = await g.standaloneKey()
  await g.send([{ type: 'complete', request_id: 'unlimited-1', api_key_id: key.id, model: 'plain', status: 'completed', input_tokens: 250_000, output_tokens: 0 }])
  t.same(await balanceOf(g, key.id), { current: null, used: 250_000_000n })
  t.equal((await adjust(g, key.id, 2)).statusCode, 200)
  t.same(await balanceOf(g, key.id), { current: 2_250_000_000n, used: 250_000_000n }, 'remaining exactly USD 2')
})
