// Usage statistics: admins' views of all usage (/api/admin/usage/…) and a user's of
// their own (/api/users/me/usage/…), with the same shapes. Another user's record is a
// 404, never a hint that it exists.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { dateRange } from '../../lib/time.js'
import { SettledHeatmaps } from '../accounting/read/totals.js'
import { viewerSchema, visibleTo } from '../accounting/visibility.js'
import {
  Aggregation, AggregationQuery, Heatmap, HeatmapQuery, OwnRecordsQuery, Records, RecordsQuery, StatsQuery, StatsWithHeatmap, UsageDetail, UsageParams
} from './schemas.js'
import { aggregate, ALL_TIME, detail, heatmap, recordFilter, records, usageStats, userHeatmap } from './service.js'
import ownUsageRoutes from './own-usage.js'
import quotaUsageRoutes from './quota-usage.js'
import { traceRoutes } from './trace.js'

const tags = ['usage']
/** default and widest range of the statistics, in days */
const DEFAULT_DAYS = 30
const MAX_DAYS = 366
// a user's own answers: the operator's cost for admins only (accounting/visibility.ts)
const OwnStatsWithHeatmap = viewerSchema(StatsWithHeatmap)
const OwnRecords = viewerSchema(Records)
const OwnUsageDetail = viewerSchema(UsageDetail)

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // the past days of the global heatmap, per zone (accounting/read/totals.ts)
  const settled = new SettledHeatmaps()
  await app.register(ownUsageRoutes)
  await app.register(quotaUsageRoutes)
  // ---- admin ----
  route(app, {
    method: 'GET',
    url: '/admin/usage/stats',
    schema: { tags, summary: 'Totals of every finished request in the range, and the heatmap of the 365 days ending today', description: 'Default range: the last 30 days, at most 366; dates in ISO 8601 with an offset. Only finished requests count; costs in USD.', querystring: StatsQuery, response: { 200: StatsWithHeatmap, ...errorResponses() } },
    action: 'usage.stats',
    mode: 'admin',
    handle: async ({ query }) => {
      const range = dateRange(query, DEFAULT_DAYS, MAX_DAYS)
      const [stats, days] = await Promise.all([usageStats(app.statsPg, range), heatmap(app.statsPg, app.config.APP_TIMEZONE, settled)])
      return { ...stats, activity_heatmap: days }
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/aggregation/stats',
    schema: { tags, summary: 'Finished requests that reached a provider, grouped by model, user, provider or API format; all time without dates', description: 'group_by picks the grouping; without start_date and end_date it covers all time. Requests that never reached a provider are left out.', querystring: AggregationQuery, response: { 200: Aggregation, ...errorResponses() } },
    action: 'usage.aggregation',
    mode: 'admin',
    // no dates: all time, as Aether's users page counts (AETHER.md §7.2)
    handle: async ({ query }) => aggregate(app.statsPg, query.group_by, query.start_date === undefined && query.end_date === undefined ? ALL_TIME : dateRange(query, DEFAULT_DAYS, MAX_DAYS), query.limit)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/heatmap',
    schema: { tags, summary: 'Requests per local day for the 365 days ending today, zero-filled', description: 'One count per day in the time zone asked (default APP_TIMEZONE), days without requests included as zeros.', querystring: HeatmapQuery, response: { 200: Heatmap, ...errorResponses() } },
    action: 'usage.heatmap',
    mode: 'admin',
    handle: async ({ query }) => heatmap(app.statsPg, app.timeZones.require(query.timezone ?? app.config.APP_TIMEZONE), settled)
  })

  route(app, {
    method: 'GET',
    url: '/admin/usage/records',
    schema: { tags, summary: 'Usage records, newest first', description: 'Filter by date range, search keywords, model, provider, status and key; paged with limit and offset. total may be the planner\'s estimate when counting exactly would read too many rows (total_is_estimate).', querystring: RecordsQuery, response: { 200: Records, ...errorResponses() } },
    action: 'usage.records',
    mode: 'admin',
    handle: async ({ query }) => records(app.statsPg, recordFilter(query), query.limit, query.offset)
  })

  // a uuid only, so it never shadows /admin/usage/active and its siblings
  route(app, {
    method: 'GET',
    url: '/admin/usage/:usage_id',
    schema: { tags, summary: 'One usage record in full', description: 'The record with its owner, provider, endpoint and provider key, its tokens by kind and each of its costs. 404 when no record has this id.', params: UsageParams, response: { 200: UsageDetail, ...errorResponses(404) } },
    action: 'usage.detail',
    mode: 'admin',
    handle: async ({ params }) => detail(app.statsPg, params.usage_id, null)
  })

  // ---- users: their own ----
  route(app, {
    method: 'GET',
    url: '/users/me/usage/stats',
    schema: { tags, summary: 'Totals of your finished requests in the range, and your heatmap of the 365 days ending today', description: 'As the admin statistics, over your own keys only; the operator\'s costs are left out unless you are an admin.', querystring: StatsQuery, response: { 200: OwnStatsWithHeatmap, ...errorResponses() } },
    action: 'own_usage.stats',
    mode: 'user',
    handle: async ({ query, user }) => {
      const range = dateRange(query, DEFAULT_DAYS, MAX_DAYS)
      const [stats, days] = await Promise.all([usageStats(app.statsPg, range, user.id), userHeatmap(app.statsPg, user.id, app.config.APP_TIMEZONE)])
      return visibleTo(user, OwnStatsWithHeatmap, { ...stats, activity_heatmap: days })
    }
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/records',
    schema: { tags, summary: 'Your usage records, newest first', description: 'Only your own requests; the operator\'s fields are left out unless you are an admin. Paged with limit and offset.', querystring: OwnRecordsQuery, response: { 200: OwnRecords, ...errorResponses() } },
    action: 'own_usage.records',
    mode: 'user',
    handle: async ({ query, user }) => visibleTo(user, OwnRecords, await records(app.statsPg, { ...recordFilter(query), userId: user.id }, query.limit, query.offset))
  })

  route(app, {
    method: 'GET',
    url: '/users/me/usage/:usage_id',
    schema: { tags, summary: 'One of your usage records in full', description: '404 for a record that is not yours. The operator\'s fields are left out unless you are an admin.', params: UsageParams, response: { 200: OwnUsageDetail, ...errorResponses(404) } },
    action: 'own_usage.detail',
    mode: 'user',
    handle: async ({ params, user }) => visibleTo(user, OwnUsageDetail, await detail(app.statsPg, params.usage_id, user.id))
  })

  await app.register(traceRoutes)
}

export default routes
