// The home dashboards Aether's frontend opens first (AETHER.md §3): both roles, the
// role shaping the answer (an admin sees all usage, a user their own).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { DailyQuery, DailyStats, DashboardStats, StatsQuery } from './schemas.js'
import { dailyStats, dashboardStats } from './service.js'

const tags = ['dashboard']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/dashboard/stats',
    schema: { tags, summary: 'The home page\'s cards: all usage for an admin, your own for a user', querystring: StatsQuery, response: { 200: DashboardStats, ...errorResponses() } },
    action: 'dashboard.stats',
    mode: 'user',
    handle: async ({ user }) => dashboardStats(app.statsPg, app.timeZones.require(app.config.APP_TIMEZONE), user)
  })

  route(app, {
    method: 'GET',
    url: '/dashboard/daily-stats',
    schema: { tags, summary: 'Finished requests per APP_TIMEZONE day, the last `days` ending today, zero-filled', querystring: DailyQuery, response: { 200: DailyStats, ...errorResponses() } },
    action: 'dashboard.daily_stats',
    mode: 'user',
    handle: async ({ query, user }) => dailyStats(app.statsPg, app.timeZones.require(app.config.APP_TIMEZONE), user, query.days)
  })
}

export default routes
