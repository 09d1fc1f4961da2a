// Aether's analytics family (/api/admin/stats/…), and the same over a user's own usage
// (/api/users/me/stats/…): all from rollups, in the range's zone (range.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { TSchema } from 'typebox'
import type { Db } from '../../db/prisma.js'
import { errorResponses } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { viewerSchema, visibleTo } from '../accounting/visibility.js'
import { resolveRange, zoneOf, type RangeQuery } from './range.js'
import { BoardQuery, Comparison, ComparisonQuery, KeyBoardQuery, Leaderboard, ModelBoardQuery, OwnComparisonQuery, OwnTimeSeriesQuery, TimeSeries, TimeSeriesQuery } from './schemas.js'
import { comparison, leaderboardOf, providerIdOf, timeSeries, type Comparison as CompareTo } from './service.js'
import { CostForecast, CostSavings, ForecastQuery, SavingsQuery } from './schemas.js'
import { cacheSavings } from './savings.js'
import { costForecast } from './forecast.js'
import { percentiles, SettledPercentiles } from './percentiles.js'
import { Percentiles, PercentilesQuery } from './schemas.js'
import { errorDistribution } from './errors.js'
import { ErrorDistribution, ErrorsQuery } from './schemas.js'

const tags = ['stats']
const OwnTimeSeries = viewerSchema(TimeSeries)
const OwnComparison = viewerSchema(Comparison)
const compareToOf = (query: { compare_to?: CompareTo, comparison_type?: 'period' | 'year' }): CompareTo =>
  query.compare_to ?? (query.comparison_type === 'year' ? 'year_ago' : 'previous_period')

/** The series' and comparison's filters, the provider named by id or name; `userId`: the query's for admins, the caller's own for a user. */
async function filtersOf (db: Db, query: { api_key_id?: string, model?: string, provider_id?: string, api_format?: string }, userId: string | null) {
  return { userId, apiKeyId: query.api_key_id ?? null, model: query.model ?? null, providerId: await providerIdOf(db, query.provider_id), apiFormat: query.api_format ?? null }
}

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const rangeOf = (query: RangeQuery) => resolveRange(query, zoneOf(query, app.timeZones, app.config.APP_TIMEZONE))

  route(app, {
    method: 'GET',
    url: '/admin/stats/time-series',
    schema: {
      tags,
      summary: 'Finished requests per hour, day, week or month of the range, zero-filled (Aether\'s shape, keymeter\'s fields beside it)',
      description: 'The range as start_date/end_date or a preset, in timezone or tz_offset_minutes (default APP_TIMEZONE), at most 366 days; filters by user, key, model, provider (id or name) and API format. Read from hourly rollups; the hours a bucket boundary cuts (the range\'s ends, local midnights of a zone off the hour) from the quarter-hour rollup when unfiltered, else from raw rows.',
      querystring: TimeSeriesQuery,
      response: { 200: TimeSeries, ...errorResponses() }
    },
    action: 'stats.time_series',
    mode: 'admin',
    handle: async ({ query, db }) => timeSeries(app.statsPg, rangeOf(query), query.granularity, await filtersOf(db, query, query.user_id ?? null))
  })

  route(app, {
    method: 'GET',
    url: '/users/me/stats/time-series',
    schema: {
      tags,
      summary: 'Your finished requests per hour, day, week or month of the range, zero-filled',
      description: 'As the admin time series, over your own keys only; the operator\'s cost is left out unless you are an admin.',
      querystring: OwnTimeSeriesQuery,
      response: { 200: OwnTimeSeries, ...errorResponses() }
    },
    action: 'own_stats.time_series',
    mode: 'user',
    handle: async ({ query, db, user }) => visibleTo(user, OwnTimeSeries, await timeSeries(app.statsPg, rangeOf(query), query.granularity, await filtersOf(db, query, user.id)))
  })

  route(app, {
    method: 'GET',
    url: '/admin/stats/comparison',
    schema: {
      tags,
      summary: 'The range\'s totals against the previous period or the same period a year earlier, with change percentages (Aether\'s shape)',
      description: 'Range, zone and filters as the time series; compare_to previous_period (as long, just before) or year_ago (Aether: comparison_type period | year). A change is null where the compared value is zero.',
      querystring: ComparisonQuery,
      response: { 200: Comparison, ...errorResponses() }
    },
    action: 'stats.comparison',
    mode: 'admin',
    handle: async ({ query, db }) => comparison(app.statsPg, rangeOf(query), compareToOf(query), await filtersOf(db, query, query.user_id ?? null))
  })

  route(app, {
    method: 'GET',
    url: '/users/me/stats/comparison',
    schema: {
      tags,
      summary: 'Your totals of the range against the previous period or a year earlier, with change percentages',
      description: 'As the admin comparison, over your own keys only; the operator\'s cost is left out unless you are an admin.',
      querystring: OwnComparisonQuery,
      response: { 200: OwnComparison, ...errorResponses() }
    },
    action: 'own_stats.comparison',
    mode: 'user',
    handle: async ({ query, db, user }) => visibleTo(user, OwnComparison, await comparison(app.statsPg, rangeOf(query), compareToOf(query), await filtersOf(db, query, user.id)))
  })

  const boardSchema = <Q extends TSchema>(what: string, querystring: Q, filters: string) => ({
    tags,
    summary: `${what} ranked by requests, tokens or cost in the range (Aether's shape)`,
    description: `Dense rank by metric (ties share a rank), paged with limit (1-100, default 10) and offset; each entry's share of the metric's total. Range and zone as the time series. ${filters} Whole UTC days from the daily rollups, the hours beside them from hourly ones, the ragged ends from raw rows.`,
    querystring,
    response: { 200: Leaderboard, ...errorResponses() }
  })
  route(app, {
    method: 'GET',
    url: '/admin/stats/leaderboard/users',
    schema: boardSchema('Users', BoardQuery, 'Counts requests that reached a provider, as the users aggregation does.'),
    action: 'stats.leaderboard_users',
    mode: 'admin',
    handle: async ({ query }) => leaderboardOf(app.statsPg, 'users', rangeOf(query), query, { userId: null, providerId: null })
  })
  route(app, {
    method: 'GET',
    url: '/admin/stats/leaderboard/api-keys',
    schema: boardSchema('API keys', KeyBoardQuery, 'user_id narrows to one user\'s keys.'),
    action: 'stats.leaderboard_api_keys',
    mode: 'admin',
    handle: async ({ query }) => leaderboardOf(app.statsPg, 'api-keys', rangeOf(query), query, { userId: query.user_id ?? null, providerId: null })
  })
  route(app, {
    method: 'GET',
    url: '/admin/stats/leaderboard/models',
    schema: boardSchema('Models', ModelBoardQuery, 'provider_id (id or name) narrows to one provider\'s requests.'),
    action: 'stats.leaderboard_models',
    mode: 'admin',
    handle: async ({ query, db }) => leaderboardOf(app.statsPg, 'models', rangeOf(query), query, { userId: null, providerId: await providerIdOf(db, query.provider_id) })
  })
  route(app, {
    method: 'GET',
    url: '/admin/stats/leaderboard/providers',
    schema: boardSchema('Providers', BoardQuery, 'Providers that still exist.'),
    action: 'stats.leaderboard_providers',
    mode: 'admin',
    handle: async ({ query }) => leaderboardOf(app.statsPg, 'providers', rangeOf(query), query, { userId: null, providerId: null })
  })

  // ---- latency percentiles (percentiles.ts) ----
  const settledPercentiles = new SettledPercentiles()
  route(app, {
    method: 'GET',
    url: '/admin/stats/performance/percentiles',
    schema: {
      tags,
      summary: 'p50/p90/p99 of response time and time to first byte per hour, day, week or month of the range (Aether\'s shape, keymeter\'s fields beside it)',
      description: 'Range and zone as the time series; provider_id (id or name) and model narrow, group_by none | provider | model splits. From the latency histograms of the daily and hourly rollups (log-spaced buckets, each percentile within 5 % of the exact one); the hours a bucket boundary cuts from raw rows. Null below 10 samples.',
      querystring: PercentilesQuery,
      response: { 200: Percentiles, ...errorResponses() }
    },
    action: 'stats.performance_percentiles',
    mode: 'admin',
    handle: async ({ query, db }) => percentiles(app.statsPg, rangeOf(query), query.granularity, { providerId: await providerIdOf(db, query.provider_id), model: query.model ?? null }, query.group_by, settledPercentiles)
  })

  // ---- errors distribution (errors.ts) ----
  route(app, {
    method: 'GET',
    url: '/admin/stats/errors/distribution',
    schema: {
      tags,
      summary: 'Failed requests by category over the range, and their trend per day (Aether\'s shape)',
      description: 'Range and zone as the time series; group_by status_class (default) | status_code | provider; granularity of the trend day (default), hour (at most 31 days), week or month, zero-filled. From usage_errors_hourly; the hours a bucket boundary cuts from usage_errors_quarter_hourly (raw rows for a quarter-hour cut inside).',
      querystring: ErrorsQuery,
      response: { 200: ErrorDistribution, ...errorResponses() }
    },
    action: 'stats.errors_distribution',
    mode: 'admin',
    handle: async ({ query }) => errorDistribution(app.statsPg, rangeOf(query), query.granularity, query.group_by)
  })
  route(app, {
    method: 'GET',
    url: '/users/me/stats/errors/distribution',
    schema: {
      tags,
      summary: 'Your failed requests by category over the range, and their trend per day',
      description: 'As the admin errors distribution, over your own keys only; from your failed raw rows (a partial index holds only failed rows).',
      querystring: ErrorsQuery,
      response: { 200: ErrorDistribution, ...errorResponses() }
    },
    action: 'own_stats.errors_distribution',
    mode: 'user',
    handle: async ({ query, user }) => errorDistribution(app.statsPg, rangeOf(query), query.granularity, query.group_by, user.id)
  })
}

export default routes

// ── cost/savings and cost/forecast (issue 19): a plugin of their own, registered beside this file's default ──
const OwnCostSavings = viewerSchema(CostSavings)
const OwnCostForecast = viewerSchema(CostForecast)

export const costRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const rangeOf = (query: RangeQuery) => resolveRange(query, zoneOf(query, app.timeZones, app.config.APP_TIMEZONE))
  const description = 'The range as the time series (start_date/end_date or a preset, timezone or tz_offset_minutes, at most 366 days). Gross (Aether\'s cache_savings) and net of the write premium (net_savings), in total, by model and by provider, from the model and provider rollups (whole UTC days, the hours beside them, raw rows at the ragged ends); wasted writes in total, from the cache economics by hour and each key\'s last write judged against the clock.'
  route(app, {
    method: 'GET',
    url: '/admin/stats/cost/savings',
    schema: { tags, summary: 'What the prompt cache saved in the range: gross and net of the write premium, by model and provider, with wasted writes', description, querystring: SavingsQuery, response: { 200: CostSavings, ...errorResponses() } },
    action: 'stats.cost_savings',
    mode: 'admin',
    handle: async ({ query }) => cacheSavings(app.statsPg, rangeOf(query), null)
  })
  route(app, {
    method: 'GET',
    url: '/users/me/stats/cost/savings',
    schema: { tags, summary: 'What the prompt cache saved you in the range: gross and net, by model and provider, with wasted writes', description: `Over your own keys. ${description.replace('from the model and provider rollups', 'from your hourly rollups')}`, querystring: SavingsQuery, response: { 200: OwnCostSavings, ...errorResponses() } },
    action: 'own_stats.cost_savings',
    mode: 'user',
    handle: async ({ query, user }) => visibleTo(user, OwnCostSavings, await cacheSavings(app.statsPg, rangeOf(query), user.id))
  })

  const forecastDescription = 'Daily cost (list prices) of finished requests by local day of timezone or tz_offset_minutes (default APP_TIMEZONE): the history_days whole days before today (1-366, default 56) and a forecast of days days (1-90, default 14) from today. Method: least squares of cost on a linear trend plus day-of-week effects, from the first history day with traffic; 80 % and 95 % prediction intervals from the residuals (Student\'s t, widened by the fit\'s own uncertainty). Under 14 days of history: a line (under 2: flat) and no interval (null). History from the hourly rollups as the time series reads them.'
  route(app, {
    method: 'GET',
    url: '/admin/stats/cost/forecast',
    schema: { tags, summary: 'Daily cost for the next days from the history, with its method and prediction intervals (Aether\'s shape, keymeter\'s fields beside it)', description: forecastDescription, querystring: ForecastQuery, response: { 200: CostForecast, ...errorResponses() } },
    action: 'stats.cost_forecast',
    mode: 'admin',
    handle: async ({ query }) => costForecast(app.statsPg, query, zoneOf(query, app.timeZones, app.config.APP_TIMEZONE), null)
  })
  route(app, {
    method: 'GET',
    url: '/users/me/stats/cost/forecast',
    schema: { tags, summary: 'Your daily cost for the next days from your history, with its method and prediction intervals', description: `Over your own keys. ${forecastDescription}`, querystring: ForecastQuery, response: { 200: OwnCostForecast, ...errorResponses() } },
    action: 'own_stats.cost_forecast',
    mode: 'user',
    handle: async ({ query, user }) => visibleTo(user, OwnCostForecast, await costForecast(app.statsPg, query, zoneOf(query, app.timeZones, app.config.APP_TIMEZONE), user.id))
  })

  // own leaderboards: the caller's keys, and the models and providers they used; no operator cost for a non-admin
  const OwnLeaderboard = viewerSchema(Leaderboard)
  for (const [board, what] of [['api-keys', 'Your API keys'], ['models', 'The models you used'], ['providers', 'The providers that served you']] as const) {
    route(app, {
      method: 'GET',
      url: `/users/me/stats/leaderboard/${board}`,
      schema: {
        tags,
        summary: `${what} ranked by requests, tokens or cost in the range`,
        description: 'As the admin leaderboard of the same name, over your own keys only; the operator\'s cost (actual_cost) is left out unless you are an admin.',
        querystring: BoardQuery,
        response: { 200: OwnLeaderboard, ...errorResponses() }
      },
      action: `own_stats.leaderboard_${board.replace('-', '_')}`,
      mode: 'user',
      handle: async ({ query, user }) => visibleTo(user, OwnLeaderboard, await leaderboardOf(app.statsPg, board, rangeOf(query), query, { userId: user.id, providerId: null }))
    })
  }
}
