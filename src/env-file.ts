// `.env` of the working directory, read before anything looks at the environment (imported
// first by the server and the CLI), as docker compose reads it: a variable already in the
// environment wins over the file. Node's own parser; no file, nothing read.
import { readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'

/** Sets in `env` the variables of `path` that `env` lacks; the names it set, or null without a file. */
export function readEnvFile (path = '.env', env: NodeJS.ProcessEnv = process.env): string[] | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
  const set: string[] = []
  for (const [name, value] of Object.entries(parseEnv(text))) {
    if (env[name] !== undefined || value === undefined) continue
    env[name] = value
    set.push(name)
  }
  return set
}

readEnvFile()
