// Per model, over all time: the finished requests and the providers that served it
// lately, for the models catalogue (Aether's models page). Read from usage_daily_model,
// which ingestion keeps current to the last batch, so no raw usage row is read.
import sql, { raw } from 'sql-template-tag'
import type { Sql } from '../../../db/prisma.js'
import { REACHED_PROVIDER } from '../model.js'
import { count } from './sql.js'

export interface ModelUsage {
  model: string
  /** every finished request of the model, whatever its provider (deleted or none included) */
  requests: number
  /** existing providers with a finished request of the model on a UTC day from `servedSince` on */
  servedBy: string[]
}

/**
 * The usage of each of `models` (a page of the catalogue; a model without requests is
 * left out). usage_daily_model's primary key (day, provider_id, model, api_format) does
 * not lead with model, and no index does: the table is read whole, filtered by model — it
 * is the smallest rollup that keeps the model over all time (days × providers × models ×
 * formats, a few hundred rows a day, not one per request).
 */
export async function modelUsage (db: Sql, models: string[], servedSince: Date): Promise<ModelUsage[]> {
  if (models.length === 0) return []
  const since = servedSince.toISOString().slice(0, 10)
  const { rows } = await db.query(sql`
    SELECT model, sum(requests)::bigint AS requests,
           COALESCE(array_agg(DISTINCT provider_id::text) FILTER (
             WHERE day >= ${since}::date AND requests <> 0 AND ${raw(REACHED_PROVIDER.rollup())}
           ), '{}') AS served_by
      FROM usage_daily_model
     WHERE model = ANY(${models}::text[])
     GROUP BY model`)
  return rows.map((row: Record<string, unknown>) => ({ model: row.model as string, requests: count(row.requests), servedBy: row.served_by as string[] }))
}
