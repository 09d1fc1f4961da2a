// Model prices: /api/admin/model-prices. Rows are versions and are never updated in
// place: POST and PUT both insert a version, effective now unless effective_from says.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { GlobalModels, GlobalModelsQuery, HistoryParams, HistoryQuery, Message, PriceCreate, PriceHistory, PriceList, PriceListQuery, PriceParams, PriceRecord, PriceUpdate } from './schemas.js'
import { globalModels } from './catalogue.js'
import { createPrice, deletePrice, findPrice, listCurrentPrices, priceHistory, toPriceRecord, updatePrice } from './service.js'

const tags = ['model prices']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/model-prices',
    schema: { tags, summary: 'The prices in effect now, one per (model, provider)', description: 'The version in effect at this instant for each (model, provider) pair. Paged with skip and limit; filter by model and provider_id.', querystring: PriceListQuery, response: { 200: PriceList, ...errorResponses() } },
    action: 'model_prices.list',
    mode: 'admin',
    handle: async ({ db, query }) => listCurrentPrices(db, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/model-prices',
    schema: { tags, summary: 'Add a price version (a model that has a price gets a new version)', description: 'Prices are USD per 1M tokens, in tiers by input context, effective from effective_from. A model that already has a price gets a new version; the old one stays in the history and still prices the requests made before the new one.', body: PriceCreate, response: { 201: PriceRecord, ...errorResponses(404, 409) } },
    action: 'model_prices.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, audit }) => {
      const price = await createPrice(db, body)
      audit({ price_id: price.id, model: price.model, provider_id: price.providerId })
      return toPriceRecord(price)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/model-prices/:model/history',
    schema: { tags, summary: 'Every version of a model\'s price, newest effective first (URL-encode the model)', description: 'Model names may contain slashes: URL-encode them. Filter by provider_id.', params: HistoryParams, querystring: HistoryQuery, response: { 200: PriceHistory, ...errorResponses() } },
    action: 'model_prices.history',
    mode: 'admin',
    handle: async ({ db, params, query }) => priceHistory(db, params.model, query.provider_id)
  })

  route(app, {
    method: 'GET',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Get one price version', description: 'One version by its id, in effect or not.', params: PriceParams, response: { 200: PriceRecord, ...errorResponses(404) } },
    action: 'model_prices.get',
    mode: 'admin',
    handle: async ({ db, params }) => toPriceRecord(await findPrice(db, params.id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Change a price: inserts a new version copying the fields not given', description: 'Prices are versioned, never edited: a new version is inserted with the given fields and the rest copied, so usage already priced keeps its cost.', params: PriceParams, body: PriceUpdate, response: { 200: PriceRecord, ...errorResponses(404, 409) } },
    action: 'model_prices.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      const price = await updatePrice(db, params.id, body)
      audit({ price_id: price.id, previous_price_id: params.id, model: price.model, provider_id: price.providerId, fields: Object.keys(body) })
      return toPriceRecord(price)
    }
  })

  // Aether's models page: the models prices name, as its catalogue
  route(app, {
    method: 'GET',
    url: '/admin/models/global',
    schema: { tags, summary: 'One entry per model with a price in effect: its global price in Aether\'s tier shape, providers, all-time requests', description: 'For Aether\'s model catalogue page: each priced model once, with its price as Aether\'s tiers, the providers that price it and its request count.', querystring: GlobalModelsQuery, response: { 200: GlobalModels, ...errorResponses() } },
    action: 'models.global',
    mode: 'admin',
    handle: async ({ db, query }) => globalModels(db, app.statsPg, query)
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Delete one price version (the one before it is in effect again)', description: 'The previous version of the same model and provider is in effect again. Usage already priced keeps its cost.', params: PriceParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'model_prices.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      const price = await deletePrice(db, params.id)
      audit({ price_id: params.id, model: price.model, provider_id: price.providerId })
      return { message: 'price version deleted' }
    }
  })
}

export default routes
