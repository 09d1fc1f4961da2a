// /api/admin/usage/cache-affinity/* over all traffic, and the same three over a
// user's own keys at /api/users/me/usage/cache-affinity/*.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { HitAnalysis, HitQuery, OwnHitQuery, OwnTimelineQuery, OwnTtlQuery, Timeline, TimelineQuery, TtlAnalysis, TtlQuery } from './schemas.js'
import { hitAnalysis, intervalTimeline, ttlAnalysis } from './service.js'

const tags = ['cache-affinity']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/ttl-analysis',
    schema: { tags, summary: 'Request intervals per user or key, the TTL they suit, and the cheapest cache', querystring: TtlQuery, response: { 200: TtlAnalysis, ...errorResponses() } },
    action: 'cache.ttl_analysis',
    mode: 'admin',
    handle: async ({ query }) => ttlAnalysis(app.statsPg, query)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/hit-analysis',
    schema: { tags, summary: 'Cache hits, net savings and wasted writes', querystring: HitQuery, response: { 200: HitAnalysis, ...errorResponses() } },
    action: 'cache.hit_analysis',
    mode: 'admin',
    handle: async ({ query }) => hitAnalysis(app.statsPg, query)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/cache-affinity/interval-timeline',
    schema: { tags, summary: 'Request intervals of up to 120 minutes over time', querystring: TimelineQuery, response: { 200: Timeline, ...errorResponses() } },
    action: 'cache.interval_timeline',
    mode: 'admin',
    handle: async ({ query }) => intervalTimeline(app.statsPg, query)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/ttl-analysis',
    schema: { tags, summary: 'Your request intervals, the TTL they suit, and the cheapest cache', querystring: OwnTtlQuery, response: { 200: TtlAnalysis, ...errorResponses() } },
    action: 'own_cache.ttl_analysis',
    mode: 'user',
    handle: async ({ query, user }) => ttlAnalysis(app.statsPg, query, user.id)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/hit-analysis',
    schema: { tags, summary: 'Your cache hits, net savings and wasted writes', querystring: OwnHitQuery, response: { 200: HitAnalysis, ...errorResponses() } },
    action: 'own_cache.hit_analysis',
    mode: 'user',
    handle: async ({ query, user }) => hitAnalysis(app.statsPg, query, user.id)
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/cache-affinity/interval-timeline',
    schema: { tags, summary: 'Your request intervals of up to 120 minutes over time', querystring: OwnTimelineQuery, response: { 200: Timeline, ...errorResponses() } },
    action: 'own_cache.interval_timeline',
    mode: 'user',
    handle: async ({ query, user }) => intervalTimeline(app.statsPg, query, user.id)
  })
}

export default routes
