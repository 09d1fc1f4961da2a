import type { Test } from 'tap'

/** mulberry32: a small seeded PRNG, so every random test can be replayed from its seed. */
export function mulberry32 (state: number): () => number {
  let a = state >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The seed every random test starts from unless TEST_SEED names another. */
export const DEFAULT_SEED = 20261214

/**
 * The seed of a test that draws random data: TEST_SEED when set, else `fallback` (fixed, so
 * runs repeat); printed as a comment, so a failure names the run that replays it.
 */
export function testSeed (t: Test, fallback = DEFAULT_SEED): number {
  const given = process.env.TEST_SEED
  if (given !== undefined && given !== '' && !/^\d+$/.test(given)) throw new Error(`TEST_SEED must be a whole number, got '${given}'`)
  const seed = given === undefined || given === '' ? fallback : Number(given) >>> 0
  t.comment(`seed ${seed} (replay with TEST_SEED=${seed})`)
  return seed
}
