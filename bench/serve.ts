// The benchmark's server process: the app on the given database, on a free port.
import { buildApp } from '../src/app.js'
import { benchConfig } from './harness.js'

const app = await buildApp(benchConfig(process.argv[2]!))
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.(url)
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
