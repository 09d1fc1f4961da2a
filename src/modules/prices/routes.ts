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
    schema: { tags, summary: 'The prices in effect now, one per (model, provider)', querystring: PriceListQuery, response: { 200: PriceList, ...errorResponses() } },
    action: 'model_prices.list',
    mode: 'admin',
    handle: async ({ db, query }) => listCurrentPrices(db, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/model-prices',
    schema: { tags, summary: 'Add a price version (a model that has a price gets a new version)', body: PriceCreate, response: { 201: PriceRecord, ...errorResponses(404, 409) } },
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
    schema: { tags, summary: 'Every version of a model\'s price, newest effective first (URL-encode the model)', params: HistoryParams, querystring: HistoryQuery, response: { 200: PriceHistory, ...errorResponses() } },
    action: 'model_prices.history',
    mode: 'admin',
    handle: async ({ db, params, query }) => priceHistory(db, params.model, query.provider_id)
  })

  route(app, {
    method: 'GET',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Get one price version', params: PriceParams, response: { 200: PriceRecord, ...errorResponses(404) } },
    action: 'model_prices.get',
    mode: 'admin',
    handle: async ({ db, params }) => toPriceRecord(await findPrice(db, params.id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Change a price: inserts a new version copying the fields not given', params: PriceParams, body: PriceUpdate, response: { 200: PriceRecord, ...errorResponses(404, 409) } },
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
    schema: { tags, summary: 'One entry per model with a price in effect: its global price in Aether\'s tier shape, providers, all-time requests', querystring: GlobalModelsQuery, response: { 200: GlobalModels, ...errorResponses() } },
    action: 'models.global',
    mode: 'admin',
    handle: async ({ db, query }) => globalModels(db, app.statsPg, query)
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/model-prices/:id',
    schema: { tags, summary: 'Delete one price version (the one before it is in effect again)', params: PriceParams, response: { 200: Message, ...errorResponses(404) } },
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
