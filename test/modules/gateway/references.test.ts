// usage's references to users, keys, providers, endpoints and provider keys are kept
// without foreign keys (migration usage_references_by_trigger): deleting a referenced
// row sets usage's reference to NULL, as ON DELETE SET NULL did, and a batch locks what
// it references so a deletion cannot slip between its check and its commit.
import pg from 'pg'
import t from 'tap'
import { waitUntil } from '../../helper.js'
import { gateway, type Gateway } from './fixtures.js'

async function recorded (g: Gateway) {
  const provider = await g.provider('anthropic')
  const endpoint = await g.endpoint(provider.id, 'claude:messages')
  const providerKey = await g.providerKey(provider.id)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const ids = { provider_id: provider.id, provider_endpoint_id: endpoint.id, provider_api_key_id: providerKey.id }
  const results = await g.send(['one', 'two'].map((requestId) => ({
    type: 'complete', request_id: requestId, api_key_id: key.id, model: 'claude-x', status: 'completed', input_tokens: 10, output_tokens: 5, ...ids
  })))
  t.same(results.map((r) => r.outcome), ['recorded', 'recorded'])
  return { provider, endpoint, providerKey, user, key }
}

const references = async (g: Gateway) => (await g.app.prisma.usage.findMany({
  select: { requestId: true, userId: true, apiKeyId: true, providerId: true, providerEndpointId: true, providerApiKeyId: true },
  orderBy: { requestId: 'asc' }
}))

t.test('deleting a key, an endpoint or a provider key sets that reference to NULL and keeps the rows', async (t) => {
  const g = await gateway(t)
  const { provider, endpoint, providerKey, user, key } = await recorded(g)
  await g.app.prisma.apiKey.delete({ where: { id: key.id } })
  await g.app.prisma.providerEndpoint.delete({ where: { id: endpoint.id } })
  await g.app.prisma.providerApiKey.delete({ where: { id: providerKey.id } })
  t.same(await references(g), ['one', 'two'].map((requestId) => ({
    requestId, userId: user.id, apiKeyId: null, providerId: provider.id, providerEndpointId: null, providerApiKeyId: null
  })))
})

t.test('deleting a provider clears it and, through the cascade, its endpoints and keys; deleting a user clears it and its keys', async (t) => {
  const g = await gateway(t)
  const { provider, user } = await recorded(g)
  await g.app.prisma.provider.delete({ where: { id: provider.id } })
  await g.app.prisma.user.delete({ where: { id: user.id } })
  t.same(await references(g), ['one', 'two'].map((requestId) => ({
    requestId, userId: null, apiKeyId: null, providerId: null, providerEndpointId: null, providerApiKeyId: null
  })))
  t.equal(await g.app.prisma.usage.count(), 2, 'usage rows are the accounting: kept')
})

t.test('a key deleted while a batch that names it is being recorded: the batch waits, then refuses the event', async (t) => {
  const g = await gateway(t)
  const user = await g.user()
  const key = await g.userKey(user.id)
  const other = new pg.Client({ connectionString: g.app.config.DATABASE_URL })
  await other.connect()
  t.teardown(() => other.end())
  await other.query('BEGIN')
  await other.query('DELETE FROM api_keys WHERE id = $1', [key.id])

  const batch = g.send([{ type: 'complete', request_id: 'racing', api_key_id: key.id, model: 'claude-x', status: 'completed', input_tokens: 1, output_tokens: 1 }])
  // the batch waits on the uncommitted delete's row lock (its lookup locks the key); watched from
  // outside the deleting transaction, in which pg_stat_activity stays the snapshot of its first read
  await waitUntil('the batch waiting for the deleting transaction', async () => {
    const { rows } = await g.app.pg.query(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()`)
    return rows[0].n as number
  }, (n) => n > 0)
  await other.query('COMMIT')
  t.match(await batch, [{ request_id: 'racing', outcome: 'rejected', error: `unknown api_key_id ${key.id as string}` }])
  t.equal(await g.app.prisma.usage.count(), 0, 'no row refers to the deleted key')
})
