// One user's finished requests grouped by model and provider, for their usage page:
// whole hours from their rows of usage_hourly, the ragged edges from raw rows shaped
// as ingestion's contribution, so the sums equal a GROUP BY over the raw rows.
import sql, { raw } from 'sql-template-tag'
import type { Sql } from '../../../db/prisma.js'
import type { HourPlan } from '../../../lib/spans.js'
import { finishedSql } from '../rules.js'
import { big, count, within, withinEither } from './sql.js'

const FINISHED = finishedSql('u')

/** Sums of one (model, provider) pair: money in nano-USD; provider null when none was reached or it was deleted since. */
export interface ModelProviderTotals {
  model: string
  providerId: string | null
  provider: string | null
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  totalTokens: number
  totalCost: bigint
  actualTotalCost: bigint
  responseTimeSumMs: number
  responseTimeCount: number
}

/**
 * usage_hourly (user_id, bucket) for the whole hours (one row per key, provider, model
 * and format the user used in an hour), usage (user_id, created_at) for the edges. The
 * rollup keeps a deleted provider's id where usage sets it NULL: the join on providers
 * makes both no provider, as a request that reached none.
 */
export async function userTotalsByModelAndProvider (db: Sql, userId: string, plan: HourPlan): Promise<ModelProviderTotals[]> {
  const { rows } = await db.query(sql`
    SELECT s.model, p.id AS provider_id, p.name AS provider,
           sum(s.requests)::bigint AS requests, sum(s.errors)::bigint AS errors, sum(s.input_tokens)::bigint AS input_tokens,
           sum(s.output_tokens)::bigint AS output_tokens, sum(s.total_tokens)::bigint AS total_tokens, sum(s.total_cost)::bigint AS total_cost,
           sum(s.actual_total_cost)::bigint AS actual_total_cost, sum(s.response_time_sum_ms)::bigint AS response_time_sum_ms,
           sum(s.response_time_count)::bigint AS response_time_count
      FROM (
        SELECT r.model, r.provider_id, r.requests, r.errors, r.input_tokens, r.output_tokens, r.total_tokens, r.total_cost, r.actual_total_cost,
               r.response_time_sum_ms, r.response_time_count
          FROM usage_hourly r WHERE r.user_id = ${userId} AND ${within(raw('r.bucket'), plan.hours)}
        UNION ALL
        SELECT u.model, u.provider_id, 1, (u.status = 'failed')::int, u.input_tokens::bigint, u.output_tokens::bigint, u.total_tokens::bigint,
               u.total_cost, u.actual_total_cost, COALESCE(u.response_time_ms, 0)::bigint, (u.response_time_ms IS NOT NULL)::int
          FROM usage u WHERE u.user_id = ${userId} AND ${FINISHED} AND ${withinEither(raw('u.created_at'), plan.edges)}
      ) s
      LEFT JOIN providers p ON p.id = s.provider_id
     GROUP BY s.model, p.id, p.name
    HAVING sum(s.requests) <> 0`)
  return rows.map((row: Record<string, unknown>) => ({
    model: row.model as string,
    providerId: row.provider_id as string | null,
    provider: row.provider as string | null,
    requests: count(row.requests),
    errors: count(row.errors),
    inputTokens: count(row.input_tokens),
    outputTokens: count(row.output_tokens),
    totalTokens: count(row.total_tokens),
    totalCost: big(row.total_cost),
    actualTotalCost: big(row.actual_total_cost),
    responseTimeSumMs: count(row.response_time_sum_ms),
    responseTimeCount: count(row.response_time_count)
  }))
}
