// The stale-lock rule of the embedded cluster: which postmaster.pid a start removes, and that a reader never does.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { livePostmaster } from '../../src/db/embedded.js'

const exists = (path: string) => access(path).then(() => true, () => false)

const lockFile = (pid: number, dir: string) => `${pid}\n${dir}\n1700000000\n54321\n/tmp\n127.0.0.1\n  1234567  8\nready   \n`

t.test('postmaster.pid naming a dead process', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-embedded-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const gone = spawn('true')
  await once(gone, 'exit')
  const file = join(dir, 'postmaster.pid')
  await writeFile(file, lockFile(gone.pid!, dir))

  t.equal(await livePostmaster(dir), null, 'a reader sees no postmaster')
  t.ok(await exists(file), 'and leaves the file to the starting server')
  t.equal(await livePostmaster(dir, true), null, 'the starting server sees none')
  // left in place, the pid could be reused before PostgreSQL reads it, which then refuses to start
  t.notOk(await exists(file), 'and removes the file before the postmaster is spawned')
})

t.test('postmaster.pid naming a live process started on the directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-embedded-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // its command line names the directory, as a postmaster's `-D dir` does
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', dir], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  await once(child, 'spawn')
  const file = join(dir, 'postmaster.pid')
  await writeFile(file, lockFile(child.pid!, dir))

  t.same(await livePostmaster(dir, true), { pid: child.pid, port: 54321, ready: true }, 'it is the live postmaster')
  t.ok(await exists(file), 'whose file stays')
})

t.test('no postmaster.pid', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'keymeter-embedded-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  t.equal(await livePostmaster(dir, true), null)
})
