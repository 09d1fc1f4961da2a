// The home dashboards Aether's frontend opens first (AETHER.md §3): both roles, the
// role shaping the answer (an admin sees all usage, a user their own).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { viewerSchema, visibleTo } from '../accounting/visibility.js'
import { DailyQuery, DailyStats, DashboardStats, StatsQuery } from './schemas.js'
import { dailyStats, dashboardStats } from './service.js'

const tags = ['dashboard']
// either role's home page: the operator's cost for admins only (accounting/visibility.ts)
const HomeStats = viewerSchema(DashboardStats)
const HomeDaily = viewerSchema(DailyStats)

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/dashboard/stats',
    schema: { tags, summary: 'The home page\'s cards: all usage for an admin, your own for a user', description: 'An admin\'s cards cover every user; a user\'s cover only their own keys and usage, without the operator\'s cost.', querystring: StatsQuery, response: { 200: HomeStats, ...errorResponses() } },
    action: 'dashboard.stats',
    mode: 'user',
    handle: async ({ user }) => visibleTo(user, HomeStats, await dashboardStats(app.statsPg, app.timeZones.require(app.config.APP_TIMEZONE), user))
  })

  route(app, {
    method: 'GET',
    url: '/dashboard/daily-stats',
    schema: { tags, summary: 'Finished requests per APP_TIMEZONE day, the last `days` ending today, zero-filled', description: 'One row per day in APP_TIMEZONE, days with no request included as zeros, for the dashboard\'s chart. An admin gets all usage, a user their own.', querystring: DailyQuery, response: { 200: HomeDaily, ...errorResponses() } },
    action: 'dashboard.daily_stats',
    mode: 'user',
    handle: async ({ query, user }) => visibleTo(user, HomeDaily, await dailyStats(app.statsPg, app.timeZones.require(app.config.APP_TIMEZONE), user, query.days))
  })
}

export default routes
