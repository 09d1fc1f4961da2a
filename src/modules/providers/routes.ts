// The provider catalogue: /api/admin/providers, its endpoints and its API keys.
// Provider secrets are write-only: no response carries them, only a masked display.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, sendTotal } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import {
  EndpointCreate, EndpointList, EndpointParams, EndpointRecord, EndpointUpdate, KeyUsageList, KeyUsageQuery, Message, PageQuery, ProviderCreate, ProviderKeyCreate,
  ProviderKeyList, ProviderKeyParams, ProviderKeyRecord, ProviderKeyUpdate, ProviderList, ProviderListQuery, ProviderParams, ProviderRecord, ProviderSummary,
  ProviderSummaryList, ProviderSummaryQuery, ProviderUpdate
} from './schemas.js'
import { providerSummaries, providerSummary } from './aether.js'
import { providerKeyUsage, toKeyUsageList } from './usage.js'
import { hourPlan } from '../../lib/spans.js'
import { dateRange } from '../../lib/time.js'
import {
  createEndpoint, createProvider, createProviderKey, deleteEndpoint, deleteProvider, deleteProviderKey, findEndpoint, findProvider, findProviderKey,
  listEndpoints, listProviderKeys, listProviders, toEndpointRecord, toProviderKeyRecord, toProviderRecord, updateEndpoint, updateProvider, updateProviderKey
} from './service.js'

const tags = ['providers']
/** the per-key usage's default and widest range, in days (as the usage statistics') */
const USAGE_DEFAULT_DAYS = 30
const USAGE_MAX_DAYS = 366

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // ---- providers ----
  route(app, {
    method: 'GET',
    url: '/admin/providers',
    schema: { tags, summary: 'List providers (by priority, then name)', description: 'Paged with skip and limit; filter with is_active.', querystring: ProviderListQuery, response: { 200: ProviderList, ...errorResponses() } },
    action: 'providers.list',
    mode: 'admin',
    handle: async ({ db, query }) => listProviders(db, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/providers',
    schema: { tags, summary: 'Create a provider', description: 'The name must be unique (409 otherwise). Add its endpoints and API keys afterwards.', body: ProviderCreate, response: { 201: ProviderRecord, ...errorResponses(409) } },
    action: 'providers.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, audit }) => {
      const provider = await createProvider(db, body)
      audit({ provider_id: provider.id, name: provider.name })
      return toProviderRecord(provider)
    }
  })

  // Aether's providers page (AETHER.md §11); a static path, so the uuid route below never shadows it
  route(app, {
    method: 'GET',
    url: '/admin/providers/summary',
    schema: { tags, summary: 'Every provider with its endpoints, keys and priced models counted (a bare array, as Aether\'s page reads it; the total in X-Total-Count)', description: 'One row per provider for Aether\'s providers page: endpoints, keys and priced models counted, quota figures. skip and limit page the array.', querystring: ProviderSummaryQuery, response: { 200: ProviderSummaryList, ...errorResponses() } },
    action: 'providers.summary',
    mode: 'admin',
    handle: async ({ db, query, reply }) => {
      const { rows, total } = await providerSummaries(db, query)
      sendTotal(reply, total)
      return rows
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/providers/:id',
    schema: { tags, summary: 'Get a provider', description: '404 when no provider has this id.', params: ProviderParams, response: { 200: ProviderRecord, ...errorResponses(404) } },
    action: 'providers.get',
    mode: 'admin',
    handle: async ({ db, params }) => toProviderRecord(await findProvider(db, params.id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/providers/:id',
    schema: { tags, summary: 'Update a provider (partial; null clears)', description: 'Only the fields given change; null clears. A name taken by another provider is a 409.', params: ProviderParams, body: ProviderUpdate, response: { 200: ProviderRecord, ...errorResponses(404, 409) } },
    action: 'providers.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ provider_id: params.id, fields: Object.keys(body) })
      return toProviderRecord(await updateProvider(db, params.id, body))
    }
  })

  // Aether's edit form and toggle: the same partial update, answered with the summary row
  route(app, {
    method: 'PATCH',
    url: '/admin/providers/:id',
    schema: { tags, summary: 'Update a provider (partial; null clears), answered as a row of the summary', description: 'The same change as PUT, answered as the provider\'s row of GET /api/admin/providers/summary (what Aether\'s page reloads).', operationId: 'providersUpdateAsSummaryRow', params: ProviderParams, body: ProviderUpdate, response: { 200: ProviderSummary, ...errorResponses(404, 409) } },
    action: 'providers.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ provider_id: params.id, fields: Object.keys(body) })
      await updateProvider(db, params.id, body)
      return providerSummary(db, params.id)
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/providers/:id',
    schema: { tags, summary: 'Delete a provider with its endpoints, keys and own prices (usage keeps its history)', description: 'Its endpoints, API keys and provider-specific prices go with it; usage rows keep their history.', params: ProviderParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'providers.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ provider_id: params.id, ...await deleteProvider(db, params.id) })
      return { message: 'provider deleted' }
    }
  })

  // ---- endpoints ----
  route(app, {
    method: 'GET',
    url: '/admin/providers/:id/endpoints',
    schema: { tags, summary: 'A provider\'s endpoints', description: '404 when the provider does not exist. Paged with skip and limit.', params: ProviderParams, querystring: PageQuery, response: { 200: EndpointList, ...errorResponses(404) } },
    action: 'provider_endpoints.list',
    mode: 'admin',
    handle: async ({ db, params, query }) => listEndpoints(db, params.id, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/providers/:id/endpoints',
    schema: { tags, summary: 'Add an endpoint (one per API format)', description: 'One endpoint per API format per provider: a second one for the same format is a 409.', params: ProviderParams, body: EndpointCreate, response: { 201: EndpointRecord, ...errorResponses(404, 409) } },
    action: 'provider_endpoints.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, params, body, audit }) => {
      const endpoint = await createEndpoint(db, params.id, body)
      audit({ provider_id: params.id, endpoint_id: endpoint.id, api_format: endpoint.apiFormat })
      return toEndpointRecord(endpoint)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/providers/:id/endpoints/:endpoint_id',
    schema: { tags, summary: 'Get an endpoint', description: '404 when the endpoint is not this provider\'s.', params: EndpointParams, response: { 200: EndpointRecord, ...errorResponses(404) } },
    action: 'provider_endpoints.get',
    mode: 'admin',
    handle: async ({ db, params }) => toEndpointRecord(await findEndpoint(db, params.id, params.endpoint_id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/providers/:id/endpoints/:endpoint_id',
    schema: { tags, summary: 'Update an endpoint (partial)', description: 'Only the fields given change. 404 when the endpoint is not this provider\'s.', params: EndpointParams, body: EndpointUpdate, response: { 200: EndpointRecord, ...errorResponses(404, 409) } },
    action: 'provider_endpoints.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ provider_id: params.id, endpoint_id: params.endpoint_id, fields: Object.keys(body) })
      return toEndpointRecord(await updateEndpoint(db, params.id, params.endpoint_id, body))
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/providers/:id/endpoints/:endpoint_id',
    schema: { tags, summary: 'Delete an endpoint (usage keeps its history)', description: 'Usage rows that went through it keep their history. 404 when the endpoint is not this provider\'s.', params: EndpointParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'provider_endpoints.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ provider_id: params.id, endpoint_id: params.endpoint_id })
      await deleteEndpoint(db, params.id, params.endpoint_id)
      return { message: 'endpoint deleted' }
    }
  })

  // ---- provider API keys ----
  route(app, {
    method: 'GET',
    url: '/admin/providers/:id/keys',
    schema: { tags, summary: 'A provider\'s API keys (secrets masked)', description: 'The provider\'s upstream keys with their rate multiplier; each secret is masked.', params: ProviderParams, querystring: PageQuery, response: { 200: ProviderKeyList, ...errorResponses(404) } },
    action: 'provider_keys.list',
    mode: 'admin',
    handle: async ({ db, params, query }) => listProviderKeys(db, params.id, query)
  })

  // a static segment: the :key_id route below never shadows it
  route(app, {
    method: 'GET',
    url: '/admin/providers/:id/keys/usage',
    schema: { tags, summary: 'Upstream accounting: what each of a provider\'s API keys served in a range', description: 'Every key of the provider with its finished requests, errors, tokens by kind, cost and actual (upstream, rate-multiplied) cost in [start_date, end_date); default the last 30 days, at most 366. Requests sent without a provider key are not in any row. 404 when no provider has this id.', params: ProviderParams, querystring: KeyUsageQuery, response: { 200: KeyUsageList, ...errorResponses(404) } },
    action: 'provider_keys.usage',
    mode: 'admin',
    handle: async ({ db, params, query }) => {
      await findProvider(db, params.id)
      const range = dateRange(query, USAGE_DEFAULT_DAYS, USAGE_MAX_DAYS)
      return toKeyUsageList(params.id, range, await providerKeyUsage(app.statsPg, params.id, hourPlan(range)))
    }
  })

  route(app, {
    method: 'POST',
    url: '/admin/providers/:id/keys',
    schema: { tags, summary: 'Add an API key (the secret is stored encrypted and never returned)', description: 'The secret is encrypted at rest with ENCRYPTION_KEY and never returned, not even here. rate_multiplier scales what requests served with it cost the operator.', params: ProviderParams, body: ProviderKeyCreate, response: { 201: ProviderKeyRecord, ...errorResponses(404) } },
    action: 'provider_keys.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, params, body, audit }) => {
      const key = await createProviderKey(db, app.keyring, params.id, body)
      audit({ provider_id: params.id, provider_key_id: key.id, name: key.name })
      return toProviderKeyRecord(key)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/providers/:id/keys/:key_id',
    schema: { tags, summary: 'Get an API key (secret masked)', description: '404 when the key is not this provider\'s.', params: ProviderKeyParams, response: { 200: ProviderKeyRecord, ...errorResponses(404) } },
    action: 'provider_keys.get',
    mode: 'admin',
    handle: async ({ db, params }) => toProviderKeyRecord(await findProviderKey(db, params.id, params.key_id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/providers/:id/keys/:key_id',
    schema: { tags, summary: 'Update an API key (partial; a new secret replaces the old)', description: 'Only the fields given change; a new secret replaces the stored one. 404 when the key is not this provider\'s.', params: ProviderKeyParams, body: ProviderKeyUpdate, response: { 200: ProviderKeyRecord, ...errorResponses(404) } },
    action: 'provider_keys.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ provider_id: params.id, provider_key_id: params.key_id, fields: Object.keys(body) })
      return toProviderKeyRecord(await updateProviderKey(db, app.keyring, params.id, params.key_id, body))
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/providers/:id/keys/:key_id',
    schema: { tags, summary: 'Delete an API key (usage keeps its history)', description: 'Usage rows served with it keep their history. 404 when the key is not this provider\'s.', params: ProviderKeyParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'provider_keys.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ provider_id: params.id, provider_key_id: params.key_id })
      await deleteProviderKey(db, params.id, params.key_id)
      return { message: 'provider key deleted' }
    }
  })
}

export default routes
