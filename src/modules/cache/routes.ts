// /api/admin/usage/cache-affinity/* over all traffic, and the same three over a
// user's own keys at /api/users/me/usage/cache-affinity/*.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { HitAnalysis, HitQuery, OwnHitQuery, OwnTimelineQuery, OwnTtlQuery, Timeline, TimelineQuery, TtlAnalysis, TtlQuery } from './schemas.js'
import { SettledIntervals } from '../accounting/read/cache.js'
import { hitAnalysis, intervalTimeline, ttlAnalysis } from './service.js'

const tags = ['cache-affinity']

// Aether's user usage page (AETHER.md §6.3): its ranges and default, other parameters ignored, not refused
const AetherOwnTimelineQuery = Type.Object({
  hours: Type.Integer({ minimum: 1, maximum: 720, default: 24, description: 'the current hour and this many whole hours before it' }),
  limit: Type.Integer({ minimum: 100, maximum: 20_000, default: 5000 })
})
const AetherOwnTimeline = Type.Object({ ...Timeline.properties, models: Type.Array(Type.String(), { description: 'the points\' models, sorted' }) })

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const settled = new SettledIntervals()
  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/ttl-analysis',
    schema: { tags, summary: 'Request intervals per user or key, the TTL they suit, and the cheapest cache', description: 'Groups each user\'s or key\'s requests by the time between them and says which prompt-cache TTL would have served them best, and at what cost. Date range as in the statistics routes.', querystring: TtlQuery, response: { 200: TtlAnalysis, ...errorResponses() } },
    action: 'cache.ttl_analysis',
    mode: 'admin',
    handle: async ({ query }) => ttlAnalysis(app.statsPg, query, null, new Date(), settled)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/hit-analysis',
    schema: { tags, summary: 'Cache hits, net savings and wasted writes', description: 'Cache reads, what they saved against full-price input, and cache writes that were never read before they expired (wasted), over the range.', querystring: HitQuery, response: { 200: HitAnalysis, ...errorResponses() } },
    action: 'cache.hit_analysis',
    mode: 'admin',
    handle: async ({ query }) => hitAnalysis(app.statsPg, query)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/interval-timeline',
    schema: { tags, summary: 'Request intervals of up to 120 minutes over time', description: 'Each request as a point: when it came and how long after the previous request of the same user or key; intervals above 120 minutes are left out. Bounded by the range and a point limit.', querystring: TimelineQuery, response: { 200: Timeline, ...errorResponses() } },
    action: 'cache.interval_timeline',
    mode: 'admin',
    handle: async ({ query }) => intervalTimeline(app.statsPg, query)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/ttl-analysis',
    schema: { tags, summary: 'Your request intervals, the TTL they suit, and the cheapest cache', description: 'As the admin TTL analysis, over your own requests only.', querystring: OwnTtlQuery, response: { 200: TtlAnalysis, ...errorResponses() } },
    action: 'own_cache.ttl_analysis',
    mode: 'user',
    handle: async ({ query, user }) => ttlAnalysis(app.statsPg, query, user.id)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/hit-analysis',
    schema: { tags, summary: 'Your cache hits, net savings and wasted writes', description: 'As the admin hit analysis, over your own requests only; the operator\'s costs are left out.', querystring: OwnHitQuery, response: { 200: HitAnalysis, ...errorResponses() } },
    action: 'own_cache.hit_analysis',
    mode: 'user',
    handle: async ({ query, user }) => hitAnalysis(app.statsPg, query, user.id)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/interval-timeline',
    schema: { tags, summary: 'Your request intervals of up to 120 minutes over time', description: 'As the admin interval timeline, over your own requests only.', querystring: OwnTimelineQuery, response: { 200: Timeline, ...errorResponses() } },
    action: 'own_cache.interval_timeline',
    mode: 'user',
    handle: async ({ query, user }) => intervalTimeline(app.statsPg, query, user.id)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/interval-timeline',
    schema: { tags, summary: 'Your request intervals of up to 120 minutes over time, with their models (Aether\'s path)', description: 'The same points as GET /api/users/me/usage/cache-affinity/interval-timeline with each point\'s model, in the shape Aether\'s usage page reads.', operationId: 'ownCacheIntervalTimelineWithModels', querystring: AetherOwnTimelineQuery, response: { 200: AetherOwnTimeline, ...errorResponses() } },
    action: 'own_cache.interval_timeline',
    mode: 'user',
    handle: async ({ query, user }) => {
      const timeline = await intervalTimeline(app.statsPg, { hours: query.hours, limit: query.limit, include_user_info: false }, user.id)
      // one colour per model on Aether's chart; the admin's path sends them only with include_user_info
      return { ...timeline, models: [...new Set(timeline.points.map((p) => p.model))].sort() }
    }
  })
}

export default routes
