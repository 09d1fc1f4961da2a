// countHold (keys/counters.ts, accounting/read/counters.ts) is how a batch of reservations
// sees the holds it admitted before it decides the next request. Its rule must be the SQL's:
// after each random hold, the state read again from PostgreSQL equals the state counted in
// memory — for the hold's key and for another key of the same owner, and for the budgets a hold counts for.
import t from 'tap'
import { createKey } from '../../../src/modules/keys/service.js'
import { countHold, keyState, type KeyState } from '../../../src/modules/keys/counters.js'
import { buildTestApp } from '../../helper.js'
import { mulberry32, testSeed } from '../../prng.js'

const settings = { timeZone: 'UTC', pendingTimeoutMinutes: 30 }
// every counter a limit asks for is computed: rate, token, concurrency, daily cost
const limits = { name: 'counted', rate_limit: 1000, token_limit: 1_000_000, concurrent_limit: 1000, daily_cost_limit_usd: 1000 }

const counted = (key: KeyState) => ({ user_held: key.user_held, ...key.counters, budgets: key.budgets.map((b) => [b.id, b.held]) })

t.test('a hold counted in memory reads back the same, on its key and on its owner\'s other key', async (t) => {
  const random = mulberry32(testSeed(t))
  const { app } = await buildTestApp(t)
  const owner = await app.prisma.user.create({ data: { username: `counted-${Date.now()}`, passwordHash: 'x', quota: 10n ** 15n } })
  const created = [await createKey(app.prisma, app.keyring, owner.id, limits, false), await createKey(app.prisma, app.keyring, owner.id, limits, false)]
  // budgets of each key and of the owner, of every model and of model a: a hold counts for some of them by its key and model
  for (const owner of [{ apiKeyId: created[0]!.id }, { apiKeyId: created[1]!.id }, { userId: created[0]!.user_id }]) {
    for (const model of [null, 'a']) await app.prisma.budget.create({ data: { ...owner, model, period: 'day', timeZone: 'UTC', costLimit: 10n ** 15n } })
  }
  const read = async () => await Promise.all(created.map(async (key) => (await keyState(app.pg, { id: key.id }, settings))!))
  const states = await read()
  t.same(states.map(counted).map((c) => [c.window_requests, c.in_flight, c.held_cost, c.user_held]), [[0, 0, 0n, 0n], [0, 0, 0n, 0n]], 'nothing held yet')

  for (let i = 0; i < 40; i++) {
    const which = random() < 0.5 ? 0 : 1
    const model = [null, 'a', 'b'][Math.floor(random() * 3)]!
    const hold = { amount: BigInt(Math.floor(random() * 1e9)), tokens: BigInt(Math.floor(random() * 5000)), started: random() < 0.3, model }
    const { rows } = await app.pg.query('INSERT INTO admission_holds (request_id, api_key_id, user_id, model, amount, tokens, started, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + interval \'10 minutes\') RETURNING created_at',
      [`counted-${i}`, created[which]!.id, owner.id, model, hold.amount.toString(), hold.tokens.toString(), hold.started])
    for (const [j, state] of states.entries()) countHold(state, { ...hold, at: rows[0].created_at as Date }, j === which)
    const again = await read()
    t.same(states.map(counted), again.map(counted), `hold ${i}: ${hold.amount} nano-USD, ${hold.tokens} tokens, ${hold.started ? 'started' : 'unstarted'}, model ${model ?? 'none'}, on key ${which}`)
  }
  const [first, second] = await read()
  t.equal(first!.user_held, second!.user_held, 'the owner\'s holds are one sum for both keys')
})
