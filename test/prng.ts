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
