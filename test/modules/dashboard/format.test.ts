// The cards' strings, against values worked out by hand from the K/M rule (AETHER.md §3.1).
import t from 'tap'
import { formatCount, formatTokens, formatUsd, roundedUsd } from '../../../src/modules/dashboard/format.js'

t.test('formatTokens: integers under 1,000, then K and M with 2, 1 or 0 decimals', async (t) => {
  const cases: Array<[number | bigint, string]> = [
    [0, '0'], [7, '7'], [999, '999'],
    [1000, '1.00K'], [1234, '1.23K'], [1005, '1.01K'], [1004, '1.00K'], [9994, '9.99K'], [9999, '10.00K'],
    [10_000, '10.0K'], [12_345, '12.3K'], [12_350, '12.4K'], [99_949, '99.9K'], [99_999, '100.0K'],
    [100_000, '100K'], [123_456, '123K'], [999_499, '999K'], [999_999, '1000K'],
    [1_000_000, '1.00M'], [1_234_567, '1.23M'], [2_250_000, '2.25M'], [9_999_999, '10.00M'],
    [10_750_000, '10.8M'], [12_000_000, '12.0M'], [32_250_000, '32.3M'],
    [100_000_000, '100M'], [123_456_789, '123M'], [5_000_000_000n, '5000M'], [12_345_678_901_234n, '12345679M']
  ]
  for (const [count, text] of cases) t.equal(formatTokens(count), text, `${count} → ${text}`)
})

t.test('formatUsd: nano-USD to dollars, half up on the exact amount', async (t) => {
  t.equal(formatUsd(0n), '$0.00')
  t.equal(formatUsd(125_000_000n), '$0.13', '$0.125 rounds up (a float 0.125.toFixed would too, but 1.005 would not)')
  t.equal(formatUsd(1_005_000_000n), '$1.01')
  t.equal(formatUsd(4_999_999n), '$0.00')
  t.equal(formatUsd(5_000_000n), '$0.01')
  t.equal(formatUsd(50_400_000_000n), '$50.40')
  t.equal(formatUsd(1_234_567_890_123n), '$1234.57')
  t.equal(formatUsd(-1_500_000_000n), '$-1.50')
  t.equal(formatUsd(123_456_000n, 4), '$0.1235')
})

t.test('roundedUsd: a USD number to n decimals, half away from zero', async (t) => {
  t.equal(roundedUsd(123_450_000n, 4), 0.1235)
  t.equal(roundedUsd(-123_450_000n, 4), -0.1235)
  t.equal(roundedUsd(33_600_000_000n, 4), 33.6)
  t.equal(roundedUsd(49_999n, 4), 0)
  t.equal(roundedUsd(50_000n, 4), 0.0001)
})

t.test('formatCount: thousands separators', async (t) => {
  t.equal(formatCount(0), '0')
  t.equal(formatCount(999), '999')
  t.equal(formatCount(50_150), '50,150')
  t.equal(formatCount(1_234_567_890), '1,234,567,890')
})
