// The leaderboards' reference ranking, for the admin and own board tests: rows grouped
// from raw usage by the test (id, name, requests, tokens, cost, actual as bigint text),
// ranked here by dense rank with their shares, as the endpoint must answer them.

export type Metric = 'requests' | 'tokens' | 'cost'
export interface BoardRow { id: string, name: string, requests: string, tokens: string, cost: string, actual: string }

export function rankRows (rows: BoardRow[], metric: Metric, order: 'asc' | 'desc', withActual: boolean) {
  const value = (r: BoardRow) => BigInt(r[metric])
  const sign = order === 'desc' ? -1 : 1
  const sorted = [...rows].sort((a, b) => value(a) === value(b) ? (a.id < b.id ? -1 : 1) : (value(a) < value(b) ? -sign : sign))
  const total = sorted.reduce((sum, r) => sum + value(r), 0n)
  let rank = 0
  let last: bigint | null = null
  return sorted.map((r) => {
    if (last === null || value(r) !== last) rank++
    last = value(r)
    return {
      rank,
      id: r.id,
      name: r.name,
      value: metric === 'cost' ? Number(r.cost) / 1e9 : Number(r[metric]),
      requests: Number(r.requests),
      tokens: Number(r.tokens),
      cost: Number(r.cost) / 1e9,
      ...(withActual && { actual_cost: Number(r.actual) / 1e9 }),
      // half up, as PostgreSQL's round(numeric)
      share_percent: total === 0n ? null : Number((value(r) * 20_000n + total) / (2n * total)) / 100
    }
  })
}
