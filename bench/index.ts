// npm run bench -- <name>: each benchmark prints its figures; none asserts a time.
import { ingest, verify } from './gateway.js'

const benches: Record<string, () => Promise<void>> = { ingest, verify }

const names = process.argv.slice(2)
const unknown = names.filter((name) => benches[name] === undefined)
if (names.length === 0 || unknown.length > 0) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> …`)
  process.exit(2)
}
for (const name of names) await benches[name]!()
process.exit(0)
