// The key holder's page is plain files (src/web): tsc compiles only its server route, so the
// build copies the rest beside it (dist/web), where the route reads them.
import { cpSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const from = fileURLToPath(new URL('../src/web/', import.meta.url))
const to = fileURLToPath(new URL('../dist/web/', import.meta.url))
for (const name of readdirSync(from)) if (!name.endsWith('.ts')) cpSync(from + name, to + name)
