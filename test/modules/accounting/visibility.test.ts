// The one rule for the operator's fields (accounting/visibility.ts): which names are the
// operator's; a user path's schema makes them optional at any depth (objects, arrays,
// nullable objects) and leaves the rest as declared; an answer loses them for anyone
// but an admin, along the declared structure only, so opaque JSON (a request's body)
// keeps whatever keys it holds.
import t from 'tap'
import Type from 'typebox'
import { isOperatorField, seesOperatorCost, viewerSchema, visibleTo } from '../../../src/modules/accounting/visibility.js'

t.test('the operator\'s fields, by name', async (t) => {
  for (const name of ['actual_cost', 'total_actual_cost', 'actual_total_cost_usd', 'actual_input_cost', 'rate_multiplier', 'api_key_name', 'provider_api_key_id', 'cost_savings']) {
    t.ok(isOperatorField(name), name)
  }
  for (const name of ['cost', 'total_cost', 'total_cost_usd', 'api_key', 'api_key_id', 'provider_id', 'factual', 'actually', 'input_price_per_1m']) {
    t.notOk(isOperatorField(name), name)
  }
  t.ok(seesOperatorCost({ role: 'admin' }))
  t.notOk(seesOperatorCost({ role: 'user' }))
})

const Detail = Type.Object({
  cost: Type.Number(),
  actual_cost: Type.Number({ description: 'USD' }),
  rate_multiplier: Type.Optional(Type.Number()),
  tiers: Type.Union([Type.Object({ price: Type.Number(), actual_price: Type.Number() }), Type.Null()]),
  candidates: Type.Array(Type.Object({ status: Type.String(), provider_api_key_id: Type.String() })),
  body: Type.Unknown()
}, { description: 'one record' })

t.test('viewerSchema: the operator\'s fields optional, described, at any depth; the rest unchanged', async (t) => {
  const schema = JSON.parse(JSON.stringify(viewerSchema(Detail)))
  t.same(schema.required, ['cost', 'tiers', 'candidates', 'body'])
  t.equal(schema.description, 'one record', 'the options kept')
  t.same(schema.properties.actual_cost, { type: 'number', description: 'admins only: USD' })
  t.same(schema.properties.rate_multiplier, { type: 'number', description: 'admins only' })
  t.same(schema.properties.tiers.anyOf[0].required, ['price'], 'inside a nullable object')
  t.same(schema.properties.candidates.items.required, ['status'], 'inside an array')
  t.same(JSON.parse(JSON.stringify(Detail)).required, ['cost', 'actual_cost', 'tiers', 'candidates', 'body'], 'the admin schema untouched')
})

t.test('visibleTo: whole for admins; for anyone else without the operator\'s fields, opaque JSON left whole', async (t) => {
  const answer = {
    cost: 1,
    actual_cost: 1.5,
    rate_multiplier: 1.5,
    tiers: { price: 3, actual_price: 4.5 },
    candidates: [{ status: 'success', provider_api_key_id: 'k1' }, { status: 'failed', provider_api_key_id: 'k2' }],
    body: { actual_cost: 'a user\'s own text', nested: [{ rate_multiplier: 2 }] }
  }
  t.equal(visibleTo({ role: 'admin' }, Detail, answer), answer, 'an admin gets the answer as it is')
  t.same(visibleTo({ role: 'user' }, Detail, answer), {
    cost: 1,
    tiers: { price: 3 },
    candidates: [{ status: 'success' }, { status: 'failed' }],
    body: { actual_cost: 'a user\'s own text', nested: [{ rate_multiplier: 2 }] }
  })
  t.same(visibleTo({ role: 'user' }, Detail, { ...answer, tiers: null }).tiers, null, 'a null stays null')
  t.same(answer.candidates[0], { status: 'success', provider_api_key_id: 'k1' }, 'the answer itself is not changed')
})
