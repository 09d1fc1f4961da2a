// The key statistics SQL. Served by the index usage (api_key_id, created_at).
import type { Db } from '../../db/prisma.js'

export interface KeyDay { date: string, requests: number, tokens: bigint, cost: bigint, rt_sum: bigint, rt_count: number }

/** Finished requests of one key per local day of `timeZone`, for [start, end). */
export function keyDailyUsage (db: Db, keyId: string, start: Date, end: Date, timeZone: string): Promise<KeyDay[]> {
  return db.$queryRaw<KeyDay[]>`
    SELECT to_char(created_at AT TIME ZONE ${timeZone}, 'YYYY-MM-DD') AS date,
           count(*)::int                                   AS requests,
           COALESCE(sum(total_tokens), 0)::bigint          AS tokens,
           COALESCE(sum(total_cost), 0)::bigint            AS cost,
           COALESCE(sum(response_time_ms), 0)::bigint      AS rt_sum,
           count(response_time_ms)::int                    AS rt_count
      FROM usage
     WHERE api_key_id = ${keyId}::uuid
       AND created_at >= ${start} AND created_at < ${end}
       AND status IN ('completed', 'failed', 'cancelled')
     GROUP BY 1
     ORDER BY 1`
}
