// The benchmark's server process: the compiled app (dist/, as `npm start` runs it,
// not the TypeScript sources through tsx) on the config the harness passes as JSON,
// listening on a free port. `npm run bench` builds dist/ first.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { buildApp } from '../dist/app.js'

const app = await buildApp(JSON.parse(process.argv[2]))
const url = await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.(url)
// the harness asks for the server's own CPU time around each run: CPU per request does
// not depend on how much of the 2 cores the load generator took, unlike requests/s
// and for how long its event loop was held up (a request ready to run waits that long), reset at each asking
const loop = monitorEventLoopDelay({ resolution: 1 })
loop.enable()
process.on('message', (message) => {
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage() })
  if (message === 'loop') {
    process.send?.({ loop: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 } })
    loop.reset()
  }
})
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
