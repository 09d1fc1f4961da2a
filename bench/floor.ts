// npm run bench -- floor: what this machine allows any server of keymeter's design at a
// rate, whatever its code. A bare server (bench/floor-server.mjs: Fastify and node-postgres,
// no authentication, hooks, logging or metrics) answers the same open-loop load as the verify
// bench's (bench/paced.ts, 50 keys round robin) in four cases, each adding one thing the
// issue's design cannot do without:
//   http         — answers at once: HTTP alone, the load generator on the same cores;
//   statement    — one statement a request (a key read);
//   holds        — exact holds in PostgreSQL: requests batched while one batch runs, a batch is
//                  one transaction (the keys locked, their live holds summed, a hold inserted
//                  per request), holds deleted every 50 ms;
//   holds+usage  — and every 50 ms the holds taken since settled into usage rows in one
//                  statement (usage's indexes and triggers; no HTTP, receipts or rollups).
// keymeter does all of that and more per request, so its figures cannot be below these.
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { completion, fixtures } from './gateway.js'
import { cpuNote, fmt, GATEWAY_TOKEN, pacedRun, slowestNote, startBench, stealNote } from './harness.js'

const CASES = ['http', 'statement', 'holds', 'holds+usage'] as const
/** the verify bench's paced rates' top: the issue's target */
const RATE = 3000
const WARMUP = 5

async function startFloorServer (mode: string, databaseUrl: string, keys: Array<{ id: string, userId: string }>): Promise<{ url: string, cpu: () => Promise<number>, stop: () => Promise<void> }> {
  const child: ChildProcess = fork(fileURLToPath(new URL('./floor-server.mjs', import.meta.url)), [JSON.stringify({ mode, databaseUrl, keys })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const url = await new Promise<string>((resolve, reject) => {
    child.once('message', (message) => resolve(String(message)))
    child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)))
  })
  return {
    url,
    cpu: async () => await new Promise<number>((resolve) => {
      child.once('message', (message) => {
        const { user, system } = (message as { cpu: NodeJS.CpuUsage }).cpu
        resolve(user + system)
      })
      child.send('cpu')
    }),
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}

export async function floor (args: string[] = []): Promise<void> {
  // --only TEXT: the cases whose name contains TEXT; --rate N: requests a second (default 3,000); --duration S (default 15)
  const { only, rate, duration } = parseArgs({ args, options: { only: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' } }, strict: false }).values
  const offered = typeof rate === 'string' ? Number(rate) : RATE
  const seconds = typeof duration === 'string' ? Number(duration) : 15
  const bench = await startBench()
  try {
    const { keys, provider } = await fixtures(bench, 50)
    const owners = await bench.prisma.apiKey.findMany({ where: { id: { in: keys.map((k) => k.id) } }, select: { id: true, userId: true } })
    // one completed request through keymeter: the usage row holds+usage copies
    const res = await fetch(`${bench.url}/api/gateway/usage`, {
      method: 'POST',
      headers: { authorization: `Bearer ${GATEWAY_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events: [{ ...completion(keys[0]!.id, provider.id, 1), status: 'completed', status_code: 200 }] })
    })
    if (!res.ok) throw new Error(`the template completion was answered ${res.status}`)
    for (const mode of CASES.filter((c) => typeof only !== 'string' || c.includes(only))) {
      const server = await startFloorServer(mode, bench.config.DATABASE_URL, owners)
      try {
        const run = await pacedRun({
          url: `${server.url}/verify`, rate: offered, duration: seconds, warmup: WARMUP,
          request: (n) => ({ body: JSON.stringify({ key: n, request_id: `floor-${mode}-${n}-${Date.now()}` }), context: null })
        }, bench, { cpu: server.cpu })
        console.log(`floor ${mode.padEnd(12)} ${fmt(offered)}/s offered  ${fmt(run.requestsPerSecond).padStart(6)} answered/s  p50 ${fmt(run.p50, 1)} ms  p99 ${fmt(run.p99, 1)} ms  max ${fmt(run.max)} ms  (${run.non2xx} non-2xx, ${run.errors} errors or unanswered${cpuNote(run)}${stealNote(run.steal)})`)
        console.log(slowestNote(run.stalls))
      } finally {
        await server.stop()
      }
    }
  } finally {
    await bench.close()
  }
}
