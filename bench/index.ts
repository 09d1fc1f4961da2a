// npm run bench -- <name> … [--flags]: each benchmark prints its figures; none asserts a time.
// Flags (from the first argument starting with --) go to every benchmark named. The
// benchmarks run one after the other, each starting and stopping its own database.
import { cache } from './cache.js'
import { floor } from './floor.js'
import { ingest, verify } from './gateway.js'
import { inprocess } from './inprocess.js'
import { stats } from './stats.js'

const benches: Record<string, (args: string[]) => Promise<void>> = { ingest, verify, floor, inprocess, stats, cache }

const args = process.argv.slice(2)
const firstFlag = args.findIndex((arg) => arg.startsWith('--'))
const names = firstFlag === -1 ? args : args.slice(0, firstFlag)
const flags = firstFlag === -1 ? [] : args.slice(firstFlag)
const unknown = names.filter((name) => benches[name] === undefined)
if (names.length === 0 || unknown.length > 0) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> … [--rows N] [--reset] [--only TEXT] [--months-kept N] (ingest) [--rate N] [--duration S] (floor) [--skip-raw] [--align] (stats, cache) [--against DIR] (inprocess)`)
  process.exit(2)
}
for (const [i, name] of names.entries()) {
  if (names.length > 1) console.log(`${i === 0 ? '' : '\n'}== ${name} ==`)
  await benches[name]!(flags)
}
process.exit(0)
