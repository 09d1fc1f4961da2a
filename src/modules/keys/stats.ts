// GET /api/admin/api-keys/:id/stats: totals and zero-filled local days.
import type { Db } from '../../db/prisma.js'
import { nanoToUsd } from '../../lib/money.js'
import { datesBetween, localDate, type Range } from '../../lib/time.js'
import { keyDailyUsage } from '../accounting/read/keys.js'
import type { KeyRow } from './service.js'

export async function keyStats (db: Db, key: KeyRow, range: Range, timeZone: string) {
  const rows = await keyDailyUsage(db, key.id, range, timeZone)
  const byDate = new Map(rows.map((row) => [row.date, row]))
  // the last instant in the range decides the last local day
  const days = datesBetween(localDate(range.start, timeZone), localDate(new Date(range.end.getTime() - 1), timeZone))
  let requests = 0
  let tokens = 0n
  let cost = 0n
  let rtSum = 0n
  let rtCount = 0
  for (const row of rows) {
    requests += row.requests
    tokens += row.totalTokens
    cost += row.totalCost
    rtSum += row.responseTimeSumMs
    rtCount += row.responseTimeCount
  }
  return {
    key_id: key.id,
    key_name: key.name,
    total_requests: requests,
    total_tokens: Number(tokens),
    total_cost_usd: nanoToUsd(cost),
    avg_response_time_ms: rtCount === 0 ? 0 : Math.round(Number(rtSum) / rtCount * 10) / 10,
    daily_stats: days.map((date) => {
      const row = byDate.get(date)
      return { date, requests: row?.requests ?? 0, tokens: Number(row?.totalTokens ?? 0n), cost_usd: nanoToUsd(row?.totalCost ?? 0n) }
    })
  }
}
