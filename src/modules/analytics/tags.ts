// Spend by tag (issue 19 item 8): finished requests grouped by their keys' current tags,
// from the rollups: whole UTC days from usage_daily_api_key, the whole hours beside them from
// usage_hourly_api_key, the whole quarter-hours beside those from usage_quarter_hourly_api_key,
// what lies inside a quarter-hour from raw rows (lib/spans.ts quarterDayPlan; the measures of
// accounting/read/sql.ts, so the three add up to a GROUP BY over the raw rows).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import sql, { raw } from 'sql-template-tag'
import Type from 'typebox'
import type { Sql } from '../../db/prisma.js'
import { route } from '../../http/pipeline.js'
import { errorResponses, Nullable } from '../../http/schemas.js'
import { nanoToUsd } from '../../lib/money.js'
import { quarterDayPlan, type QuarterDayPlan } from '../../lib/spans.js'
import { daysOf } from '../accounting/read/totals.js'
import { big, count, withinEither } from '../accounting/read/sql.js'
import { finishedSql } from '../accounting/rules.js'
import { RangeQueryFields, resolveRange, zoneOf } from './range.js'

const NIL_UUID = '00000000-0000-0000-0000-000000000000'

export interface TagTotals { tag: string | null, requests: number, tokens: number, cost: bigint, actualCost: bigint, keys: number }

/**
 * Totals per tag of the keys' current tags: a key with two tags counts in both, a key
 * with none (null or []) or deleted since (its rollup rows keep the nil uuid or its old
 * id) under null. Sorted by cost, then requests, then tag (null last).
 */
export async function totalsByTag (db: Sql, plan: QuarterDayPlan): Promise<TagTotals[]> {
  const { rows } = await db.query(sql`
    WITH per_key AS (
      SELECT key_id, sum(requests)::bigint AS requests, sum(total_tokens)::bigint AS tokens, sum(total_cost)::bigint AS cost, sum(actual_total_cost)::bigint AS actual_cost
        FROM (
          -- usage_daily_api_key primary key (day, api_key_id)
          SELECT r.api_key_id AS key_id, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM usage_daily_api_key r WHERE ${daysOf(plan)}
          UNION ALL
          -- usage_hourly_api_key primary key (bucket, api_key_id)
          SELECT r.api_key_id, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM usage_hourly_api_key r WHERE ${withinEither(raw('r.bucket'), plan.hours)}
          UNION ALL
          -- usage_quarter_hourly_api_key primary key (bucket, api_key_id)
          SELECT r.api_key_id, r.requests, r.total_tokens, r.total_cost, r.actual_total_cost FROM usage_quarter_hourly_api_key r WHERE ${withinEither(raw('r.bucket'), plan.quarters)}
          UNION ALL
          -- usage (created_at); a row without a key as the rollups keep it, under the nil uuid
          SELECT COALESCE(u.api_key_id, ${NIL_UUID}::uuid), 1, u.total_tokens::bigint, u.total_cost, u.actual_total_cost FROM usage u
           WHERE ${finishedSql('u')} AND ${withinEither(raw('u.created_at'), plan.ragged)}
        ) p
       GROUP BY key_id HAVING sum(requests) <> 0
    )
    SELECT t.tag, sum(s.requests)::bigint AS requests, sum(s.tokens)::bigint AS tokens, sum(s.cost)::bigint AS cost, sum(s.actual_cost)::bigint AS actual_cost,
           count(k.id)::int AS keys
      FROM per_key s
      -- api_keys primary key
      LEFT JOIN api_keys k ON k.id = s.key_id
     CROSS JOIN LATERAL (
       SELECT DISTINCT e.tag FROM jsonb_array_elements_text(
         CASE WHEN jsonb_typeof(k.tags) = 'array' AND jsonb_array_length(k.tags) > 0 THEN k.tags ELSE '[null]'::jsonb END) AS e(tag)
     ) t
     GROUP BY t.tag
     ORDER BY cost DESC, requests DESC, t.tag NULLS LAST`)
  return rows.map((row: Record<string, unknown>) => ({
    tag: row.tag as string | null,
    requests: count(row.requests),
    tokens: count(row.tokens),
    cost: big(row.cost),
    actualCost: big(row.actual_cost),
    keys: count(row.keys)
  }))
}

const Count = Type.Integer({ minimum: 0 })
export const TagStats = Type.Object({
  items: Type.Array(Type.Object({
    tag: Nullable(Type.String({ description: 'null: keys without tags, and keys deleted since' })),
    requests: Count,
    tokens: Count,
    cost: Type.Number({ description: 'USD' }),
    actual_cost: Type.Number({ description: 'USD: what the providers cost the operator' }),
    keys_count: Type.Integer({ minimum: 0, description: 'existing keys of the tag with requests in the range' })
  }), { description: 'sorted by cost, then requests, then tag (null last)' }),
  start_date: Type.String({ format: 'date-time' }),
  end_date: Type.String({ format: 'date-time' }),
  timezone: Type.String()
})

const tagRoutes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/stats/tags',
    schema: {
      tags: ['stats'],
      summary: 'Spend by tag: finished requests grouped by their keys\' current tags',
      description: 'Each tag\'s requests, tokens, cost and actual cost in the range, and how many of its keys had requests. Grouped by the tags the keys carry now: a key with two tags counts in both (so the items may add up to more than the total), keys without tags (and keys deleted since) under tag null. From the rollups: whole UTC days from usage_daily_api_key, the hours beside them from usage_hourly_api_key, the quarter-hours beside those from usage_quarter_hourly_api_key, what lies inside a quarter-hour from raw rows.',
      querystring: Type.Object(RangeQueryFields),
      response: { 200: TagStats, ...errorResponses() }
    },
    action: 'stats.tags',
    mode: 'admin',
    handle: async ({ query }) => {
      const range = resolveRange(query, zoneOf(query, app.timeZones, app.config.APP_TIMEZONE))
      const rows = await totalsByTag(app.statsPg, quarterDayPlan(range))
      return {
        items: rows.map((row) => ({ tag: row.tag, requests: row.requests, tokens: row.tokens, cost: nanoToUsd(row.cost), actual_cost: nanoToUsd(row.actualCost), keys_count: row.keys })),
        start_date: range.start.toISOString(),
        end_date: range.end.toISOString(),
        timezone: range.zone.name
      }
    }
  })
}

export default tagRoutes
