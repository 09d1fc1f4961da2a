// The `seed` command: arguments, the database (DATABASE_URL or the embedded one, like
// the other commands), a progress bar on stderr and a summary on stdout.
import { parseArgs } from 'node:util'
import pg from 'pg'
import { loadConfig } from '../../config.js'
import { migrate, openRuntime } from '../../runtime.js'
import { seed, SeedRefused, type SeedOptions, type SeedSummary } from './service.js'

const USAGE = 'usage: keymeter seed --rows N [--days 90] [--seed 42] [--reset]'

const fmt = (n: number) => Math.round(n).toLocaleString('en-US')
const duration = (s: number) => s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`

/** Progress on stderr: a redrawn bar on a terminal, a line every 10% otherwise (logs, CI). */
export function progressReporter (stream: NodeJS.WriteStream = process.stderr): Pick<SeedOptions, 'onProgress' | 'onPhase'> {
  const started = performance.now()
  let lastTenth = -1
  return {
    onProgress: (done, total) => {
      const seconds = (performance.now() - started) / 1000
      const rate = done / Math.max(seconds, 1e-3)
      const eta = (total - done) / Math.max(rate, 1e-9)
      const width = 30
      const filled = Math.round(width * done / total)
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${fmt(done)} / ${fmt(total)} rows  ${fmt(rate)} rows/s  ETA ${duration(eta)}`
      if (stream.isTTY) stream.write(`\r${line}${done === total ? '\n' : ''}`)
      else if (Math.floor(10 * done / total) > lastTenth) {
        lastTenth = Math.floor(10 * done / total)
        stream.write(`${line}\n`)
      }
    },
    onPhase: (phase, seconds) => { stream.write(`  ${phase}: ${seconds.toFixed(1)} s\n`) }
  }
}

export const summaryLine = (s: SeedSummary) =>
  `seeded ${fmt(s.rows)} usage rows (${fmt(s.candidates)} request candidates, ${s.users} users, ${s.keys} keys, ${s.providers} providers, ${s.models} models) ` +
  `in ${s.seconds.toFixed(1)} s (${fmt(s.rows / s.seconds)} rows/s)`

export async function seedCommand (args: string[], log: (line: string) => void): Promise<number> {
  let options: { rows: number, days: number, seed: number, reset: boolean }
  try {
    const { values } = parseArgs({ args, options: { rows: { type: 'string' }, days: { type: 'string', default: '90' }, seed: { type: 'string', default: '42' }, reset: { type: 'boolean', default: false } } })
    const int = (name: string, value: string | undefined) => {
      if (value === undefined || !/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number`)
      return Number(value)
    }
    options = { rows: int('rows', values.rows), days: int('days', values.days), seed: int('seed', values.seed), reset: values.reset }
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`)
    return 2
  }
  const runtime = await openRuntime(loadConfig(), (line) => process.stderr.write(`${line}\n`), { command: 'seed' })
  // the seed works on two connections at once (rows, indexes, the prompt-cache timelines)
  const pool = new pg.Pool({ connectionString: runtime.config.DATABASE_URL, max: 3 })
  try {
    await migrate(runtime.config, (line) => process.stderr.write(`${line}\n`))
    const summary = await seed(pool, { ...options, encryptionKey: runtime.config.ENCRYPTION_KEY, ...progressReporter() })
    if (!summary.fastLoad) process.stderr.write('note: this role may not set session_replication_role, so every row paid its foreign-key checks (several times slower)\n')
    log(summaryLine(summary))
    return 0
  } catch (error) {
    if (!(error instanceof SeedRefused || error instanceof RangeError)) throw error
    process.stderr.write(`seed: ${error.message}\n`)
    return 1
  } finally {
    await pool.end()
    await runtime.close()
  }
}
