// Money: USD numbers at the edge, exact integer nano-USD everywhere else.
import t from 'tap'
import { NANO_PER_USD, nanoToUsd, nanoToUsdOrNull, nanoToUsdString, roundDiv, usdToNano } from '../../src/lib/money.js'

t.test('usdToNano is exact for decimals that floats cannot multiply exactly', async (t) => {
  t.equal(usdToNano(0.1), 100_000_000n)
  t.equal(usdToNano(1234.5678), 1_234_567_800_000n)
  t.equal(usdToNano(0.3), 300_000_000n)
  t.equal(usdToNano(0.0157), 15_700_000n, '0.0157 * 1e9 is 15699999.999999998 in floating point')
  t.equal(usdToNano(19.99), 19_990_000_000n)
  t.equal(usdToNano(1), NANO_PER_USD)
  t.equal(usdToNano(0), 0n)
  t.equal(usdToNano(0.000000001), 1n, 'one nano-USD')
  t.equal(usdToNano(1e21), 10n ** 30n, 'large amounts in exponent notation')
})

t.test('usdToNano rounds below a nano-USD half away from zero', async (t) => {
  t.equal(usdToNano(0.0000000005), 1n, 'half a nano rounds up')
  t.equal(usdToNano(0.0000000015), 2n)
  t.equal(usdToNano(0.0000000025), 3n, 'not banker\'s rounding')
  t.equal(usdToNano(0.0000000004), 0n)
  t.equal(usdToNano(1e-10), 0n, 'a tenth of a nano is nothing')
  t.equal(usdToNano(1.0000000005), 1_000_000_001n)
})

t.test('usdToNano keeps the sign of negative amounts', async (t) => {
  t.equal(usdToNano(-0.1), -100_000_000n)
  t.equal(usdToNano(-1234.5678), -1_234_567_800_000n)
  t.equal(usdToNano(-0.0000000005), -1n, 'half a nano rounds away from zero')
  t.equal(usdToNano(-1e-10), 0n)
  t.equal(usdToNano(-0), 0n)
})

t.test('usdToNano refuses non-finite numbers', async (t) => {
  t.throws(() => usdToNano(Infinity), RangeError)
  t.throws(() => usdToNano(-Infinity), RangeError)
  t.throws(() => usdToNano(NaN), RangeError)
})

t.test('nanoToUsd converts back to a USD number', async (t) => {
  t.equal(nanoToUsd(100_000_000n), 0.1)
  t.equal(nanoToUsd(1_234_567_800_000n), 1234.5678)
  t.equal(nanoToUsd(1n), 1e-9)
  t.equal(nanoToUsd(-1_500_000_000n), -1.5)
  t.equal(nanoToUsd(0n), 0)
  for (const usd of [0.1, 19.99, 1234.5678, 0.000000123, 8_999_999.99999999]) {
    t.equal(nanoToUsd(usdToNano(usd)), usd, `${usd} survives a round trip`)
  }
})

t.test('nanoToUsdOrNull passes null and undefined through as null', async (t) => {
  t.equal(nanoToUsdOrNull(null), null)
  t.equal(nanoToUsdOrNull(undefined), null)
  t.equal(nanoToUsdOrNull(2_000_000_000n), 2)
})

t.test('roundDiv rounds half away from zero for every sign combination', async (t) => {
  t.equal(roundDiv(5n, 10n), 1n)
  t.equal(roundDiv(4n, 10n), 0n)
  t.equal(roundDiv(-5n, 10n), -1n)
  t.equal(roundDiv(5n, -10n), -1n)
  t.equal(roundDiv(-5n, -10n), 1n)
  t.equal(roundDiv(15n, 10n), 2n)
  t.equal(roundDiv(25n, 10n), 3n)
  t.equal(roundDiv(-25n, 10n), -3n)
  t.equal(roundDiv(0n, 7n), 0n)
})

t.test('nanoToUsdString writes the exact decimal, however large', async (t) => {
  t.equal(nanoToUsdString(0n), '0')
  t.equal(nanoToUsdString(1n), '0.000000001')
  t.equal(nanoToUsdString(100_000_000n), '0.1')
  t.equal(nanoToUsdString(1_234_567_800_000n), '1234.5678')
  t.equal(nanoToUsdString(-1_500_000_000n), '-1.5')
  t.equal(nanoToUsdString(-7n), '-0.000000007')
  t.equal(nanoToUsdString(3_000_000_000n), '3')
  // past 2^53 nano a double would round the last digits
  t.equal(nanoToUsdString(123_456_789_012_345_678_901n), '123456789012.345678901')
})
