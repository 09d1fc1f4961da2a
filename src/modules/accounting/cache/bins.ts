// The interval histogram's bins. A gap between two requests (milliseconds) falls in
// bin i when EDGES[i-1] < gap <= EDGES[i] (bin 0: 0 <= gap <= 1 s; the last bin has no
// upper edge). Between the anchors below the edges grow geometrically by 1.9% (at most
// 2% once rounded to whole milliseconds), so the mean of a bin stands for each gap in
// it within 2% relative error. The anchors are edges themselves, so "how many gaps
// are at most 5 (15, 30, 60, 120) minutes" is an exact sum of bins.

const MINUTE = 60_000
/** bin edges that must exist exactly, ms */
const ANCHORS = [1_000, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, 60 * MINUTE, 120 * MINUTE, 24 * 60 * MINUTE, 30 * 24 * 60 * MINUTE, 366 * 24 * 60 * MINUTE]
const GROWTH = 1.019

/** A request with no earlier completed request in its scope: counted, no gap. */
export const FIRST_BIN = -1

function buildEdges (): number[] {
  const edges = [ANCHORS[0]!]
  for (let a = 1; a < ANCHORS.length; a++) {
    const lo = ANCHORS[a - 1]!
    const hi = ANCHORS[a]!
    const steps = Math.ceil(Math.log(hi / lo) / Math.log(GROWTH))
    for (let k = 1; k < steps; k++) edges.push(Math.round(lo * (hi / lo) ** (k / steps)))
    edges.push(hi)
  }
  return edges
}

/** Upper edges (inclusive, ms) of bins 0 … EDGES.length - 1; bin EDGES.length is unbounded. */
export const EDGES: readonly number[] = buildEdges()

/** The bin of a gap in milliseconds. */
export function binOf (gapMs: number): number {
  let lo = 0
  let hi = EDGES.length // answer in [lo, hi]
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (gapMs <= EDGES[mid]!) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** The last bin whose gaps are all at most `ms` (ms must be an anchor). */
export function lastBinWithin (ms: number): number {
  const index = EDGES.indexOf(ms)
  if (index === -1) throw new Error(`${ms} ms is not a bin edge`)
  return index
}

/**
 * Lower bounds for PostgreSQL's width_bucket(gap, bounds): width_bucket counts
 * left-closed buckets from 1, our bins are right-closed from 0, and gaps are whole
 * milliseconds, so bin i starts at EDGES[i-1] + 1 and bin = width_bucket - 1.
 */
export const SQL_LOWER_BOUNDS: readonly number[] = [0, ...EDGES.map((edge) => edge + 1)]
