// Upstream accounting: a provider's keys (the gateway's accounts with the upstream) and
// what each served over a range — requests, errors, tokens by kind, cost and actual cost.
// Whole hours from usage_hourly_provider_key, the ragged edges from raw rows (lib/spans.ts),
// both summed as accounting/model.ts declares the rollup's measures, so the answer is
// what a GROUP BY over the finished raw rows gives.
import sql, { raw } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import type { HourPlan } from '../../lib/spans.js'
import type { Range } from '../../lib/time.js'
import { MEASURES, rollup } from '../accounting/model.js'
import { within, withinEither } from '../accounting/read/sql.js'
import { finishedSql } from '../accounting/rules.js'

const KEY_ROLLUP = rollup('usage_hourly_provider_key')
const NAMES = KEY_ROLLUP.measures

export type KeyUsage = { id: string, name: string, is_active: boolean } & Record<typeof NAMES[number], bigint>

/**
 * Every key of the provider (ordered by name), zeros where it served nothing.
 * provider_api_keys (provider_id); usage_hourly_provider_key primary key (provider_api_key_id, bucket);
 * usage (provider_id, created_at) for the edges (a key's rows are its provider's: ingestion checks the pair).
 */
export async function providerKeyUsage (db: Sql, providerId: string, plan: HourPlan): Promise<KeyUsage[]> {
  const { rows } = await db.query(sql`
    SELECT k.id, k.name, k.is_active, ${raw(NAMES.map((m) => `COALESCE(sum(p.${m}), 0)::bigint AS ${m}`).join(', '))}
      FROM provider_api_keys k
      LEFT JOIN (
        SELECT r.provider_api_key_id AS id, ${raw(NAMES.map((m) => `r.${m}`).join(', '))}
          FROM usage_hourly_provider_key r
         WHERE r.provider_api_key_id IN (SELECT id FROM provider_api_keys WHERE provider_id = ${providerId}::uuid) AND ${within(raw('r.bucket'), plan.hours)}
        UNION ALL
        SELECT provider_api_key_id, ${raw(NAMES.map((m) => MEASURES[m].aggregate).join(', '))}
          FROM usage
         WHERE provider_id = ${providerId}::uuid AND provider_api_key_id IS NOT NULL AND ${finishedSql()} AND ${withinEither(raw('created_at'), plan.edges)}
         GROUP BY 1
      ) p ON p.id = k.id
     WHERE k.provider_id = ${providerId}::uuid
     GROUP BY k.id, k.name, k.is_active
     ORDER BY k.name, k.id`)
  return rows.map((row: Record<string, unknown>) => ({
    id: row.id as string,
    name: row.name as string,
    is_active: row.is_active as boolean,
    ...Object.fromEntries(NAMES.map((m) => [m, BigInt(row[m] as string)]))
  }) as KeyUsage)
}

/** The per-key usage answer (schemas.ts KeyUsageList): counts as numbers, money in USD at this edge. */
export function toKeyUsageList (providerId: string, range: Range, keys: KeyUsage[]) {
  return {
    provider_id: providerId,
    start_date: range.start.toISOString(),
    end_date: range.end.toISOString(),
    items: keys.map((k) => ({
      id: k.id,
      name: k.name,
      is_active: k.is_active,
      requests: Number(k.requests),
      errors: Number(k.errors),
      error_rate: k.requests === 0n ? 0 : Number(k.errors) / Number(k.requests),
      input_tokens: Number(k.input_tokens),
      output_tokens: Number(k.output_tokens),
      cache_creation_tokens: Number(k.cache_creation_tokens),
      cache_read_tokens: Number(k.cache_read_tokens),
      total_tokens: Number(k.total_tokens),
      cache_hit_requests: Number(k.cache_hit_requests),
      total_cost_usd: nanoToUsd(k.total_cost),
      actual_cost_usd: nanoToUsd(k.actual_total_cost),
      cache_creation_cost_usd: nanoToUsd(k.cache_creation_cost),
      cache_read_cost_usd: nanoToUsd(k.cache_read_cost),
      avg_response_time_ms: k.response_time_count === 0n ? null : Number(k.response_time_sum_ms) / Number(k.response_time_count)
    }))
  }
}
