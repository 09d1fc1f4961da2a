// One row of cache_interval_hourly is one (scope, id, hour)'s whole histogram, its
// non-empty bins packed in a bytea: ENTRY_BYTES per bin — bin int2, count int4, sum of
// the gaps int8 (milliseconds), big-endian as PostgreSQL's int2send/int4send/int8send
// write them — sorted by bin, no entry with a zero count. That form is canonical:
// ingestion's merges and the rebuild both produce it, byte for byte.
//
// Why a bytea and not three parallel arrays: the analysis reads tens of thousands of
// these rows per call, and a bytea goes to Node as it is stored (string_agg concatenates
// a group's rows, a copy per row; Node reads the entries straight from the bytes), while
// arrays would need an element-by-element conversion on the way out (array_send or the
// text form). Decoding in SQL is needed only where ingestion merges a batch into a row
// that already exists: a handful of rows per batch.
import { EDGES, FIRST_BIN } from './bins.js'

export const ENTRY_BYTES = 14

/** One bin of a histogram: how many gaps, and their sum in milliseconds. */
export interface BinEntry { bin: number, count: number, sumMs: number }

/** SQL: the packed entry of (bin, count, sum_ms) expressions; string_agg(…, ''::bytea ORDER BY bin) makes the row. */
export const sqlEntry = (bin: string, count: string, sumMs: string) => `int2send((${bin})::int2) || int4send((${count})::int4) || int8send((${sumMs})::int8)`

/**
 * SQL: a FROM item over the entries of the bytea expression `bytes`, with columns
 * `alias`.bin (int), `alias`.count (int), `alias`.sum_ms (bigint). Signed: a merge's
 * deltas carry negative counts.
 */
export const sqlEntries = (bytes: string, alias: string) => `generate_series(0, length(${bytes}) - ${ENTRY_BYTES}, ${ENTRY_BYTES}) AS ${alias}_at(o)
  CROSS JOIN LATERAL (SELECT (((get_byte(${bytes}, ${alias}_at.o) << 24) | (get_byte(${bytes}, ${alias}_at.o + 1) << 16)) >> 16) AS bin,
    ('x' || encode(substring(${bytes} FROM ${alias}_at.o + 3 FOR 4), 'hex'))::bit(32)::int AS count,
    ('x' || encode(substring(${bytes} FROM ${alias}_at.o + 7 FOR 8), 'hex'))::bit(64)::bigint AS sum_ms) ${alias}`

/** Entries sorted by bin, packed (the caller leaves out what it does not want stored). */
export function pack (entries: BinEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => a.bin - b.bin)
  const out = Buffer.alloc(sorted.length * ENTRY_BYTES)
  sorted.forEach((e, i) => {
    const at = i * ENTRY_BYTES
    out.writeInt16BE(e.bin, at)
    out.writeInt32BE(e.count, at + 2)
    out.writeBigInt64BE(BigInt(e.sumMs), at + 6)
  })
  return out
}

/** Summed bins packed again (what BinSums.take gives, written as a stored row would be). */
export function packBins ({ bins, counts, sums }: Bins): Buffer {
  const out = Buffer.alloc(bins.length * ENTRY_BYTES)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let i = 0; i < bins.length; i++) {
    const at = i * ENTRY_BYTES
    view.setInt16(at, bins[i]!)
    view.setInt32(at + 2, counts[i]!)
    // a sum below 2^53 ms as two halves, as BinSums.add reads it
    const sum = sums[i]!
    view.setInt32(at + 6, Math.floor(sum / 2 ** 32))
    view.setUint32(at + 10, sum % 2 ** 32)
  }
  return out
}

/** A big-endian int4 by byte arithmetic: Buffer's readInt32BE is several times slower over half a million entries. */
const int32At = (b: Buffer, at: number) => (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!

/** bins FIRST_BIN … EDGES.length (the open last bin) */
const SLOTS = EDGES.length + 1 - FIRST_BIN

/** A histogram's non-empty bins in ascending order: bins[i] holds counts[i] gaps summing to sums[i] ms. */
export interface Bins { bins: Int16Array, counts: Float64Array, sums: Float64Array }

/**
 * Sums packed rows per bin (index bin - FIRST_BIN; the same bin recurs once per hour),
 * one group at a time: `add` its rows, then `take` its bins, which empties it for the
 * next group (one accumulator per call, not per group: a thousand groups would
 * otherwise allocate 15 MB).
 */
export class BinSums {
  private readonly counts = new Float64Array(SLOTS)
  private readonly sums = new Float64Array(SLOTS)
  // the touched slots' span: take scans and clears only it (a group's gaps fill a fraction of the ~920 bins)
  private low = SLOTS
  private high = -1

  /** Adds every entry of packed rows (any number, concatenated). */
  add (bytes: Buffer): void {
    for (let at = 0; at + ENTRY_BYTES <= bytes.length; at += ENTRY_BYTES) {
      const index = (((bytes[at]! << 24) | (bytes[at + 1]! << 16)) >> 16) - FIRST_BIN
      if (index < this.low) this.low = index
      if (index > this.high) this.high = index
      this.counts[index]! += int32At(bytes, at + 2)
      // int8 as two halves: exact below 2^53 ms, and no BigInt per entry
      this.sums[index]! += int32At(bytes, at + 6) * 2 ** 32 + (int32At(bytes, at + 10) >>> 0)
    }
  }

  /** The bins added since the last take whose count is not zero, ascending; the sums start again from zero. */
  take (): Bins {
    let size = 0
    for (let i = this.low; i <= this.high; i++) if (this.counts[i] !== 0) size++
    const out: Bins = { bins: new Int16Array(size), counts: new Float64Array(size), sums: new Float64Array(size) }
    for (let i = this.low, k = 0; i <= this.high; i++) {
      if (this.counts[i] === 0) continue
      out.bins[k] = i + FIRST_BIN
      out.counts[k] = this.counts[i]!
      out.sums[k++] = this.sums[i]!
    }
    if (this.high >= this.low) {
      this.counts.fill(0, this.low, this.high + 1)
      this.sums.fill(0, this.low, this.high + 1)
    }
    this.low = SLOTS
    this.high = -1
    return out
  }
}
