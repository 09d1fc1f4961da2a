// The time series' reference point, for the series tests: plain sums over the finished raw
// rows of [from, to) with the test's filter, shaped as the endpoint must answer a point.

export const FINISHED = `status IN ('completed', 'failed', 'cancelled')`

interface Queryable { query: (text: string, params: unknown[]) => Promise<{ rows: Array<Record<string, unknown>> }> }

const num = (v: unknown) => Number(v ?? 0)
const usd = (v: unknown) => Number(BigInt(String(v ?? 0))) / 1e9
// one decimal, as the endpoint rounds an average
const avg = (sum: unknown, count: unknown) => num(count) === 0 ? null : Math.round(num(sum) / num(count) * 10) / 10

/** The point of [from, to); `where` is an `AND …` on the usage row, its parameters from $3. */
export async function rawPoint (db: Queryable, from: string, to: string, where: string, params: unknown[]) {
  const { rows: [r] } = await db.query(`
    SELECT count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS errors, sum(input_tokens) AS input, sum(output_tokens) AS output,
           sum(cache_creation_input_tokens) AS cc, sum(cache_creation_5m_input_tokens) AS w5, sum(cache_creation_1h_input_tokens) AS w1,
           sum(cache_read_input_tokens) AS cr, sum(total_tokens) AS tokens, sum(total_cost) AS cost, sum(actual_total_cost) AS actual,
           sum(response_time_ms) AS rt, count(response_time_ms) AS rtn, sum(first_byte_time_ms) AS fb, count(first_byte_time_ms) AS fbn
      FROM usage WHERE ${FINISHED} AND created_at >= $1 AND created_at < $2 ${where}`, [from, to, ...params])
  return {
    total_requests: num(r!.requests), input_tokens: num(r!.input), output_tokens: num(r!.output), cache_creation_tokens: num(r!.cc), cache_read_tokens: num(r!.cr),
    total_cost: usd(r!.cost), avg_response_time_ms: avg(r!.rt, r!.rtn), error_count: num(r!.errors), cache_creation_5m_tokens: num(r!.w5),
    cache_creation_1h_tokens: num(r!.w1), total_tokens: num(r!.tokens), total_actual_cost: usd(r!.actual), avg_first_byte_time_ms: avg(r!.fb, r!.fbn)
  }
}
