// lib/periodic.ts: a periodic task never runs twice at once, a failure goes to onError and
// the next tick runs again, and stop() waits for the run in progress.
import t from 'tap'
import { every } from '../../src/lib/periodic.js'

const sleep = async (ms: number) => await new Promise((resolve) => setTimeout(resolve, ms))

t.test('ticks during a run are skipped, a failed run is reported and the next tick runs, stop waits', async (t) => {
  let started = 0
  let concurrent = 0
  let most = 0
  let finished = 0
  const errors: unknown[] = []
  const task = every(10, async () => {
    started++
    concurrent++
    most = Math.max(most, concurrent)
    await sleep(60)
    concurrent--
    finished++
    if (started === 1) throw new Error('first run fails')
  }, (error) => { errors.push(error) })
  await sleep(250)
  await task.stop()
  t.equal(most, 1, 'never two runs at once, though ticks came every 10 ms')
  t.ok(started >= 2 && started <= 5, `runs of 60 ms in 250 ms: ${started}`)
  t.equal(finished, started, 'stop() returned after the run in progress finished')
  t.equal(errors.length, 1)
  t.match(String(errors[0]), /first run fails/)
  const after = started
  await sleep(50)
  t.equal(started, after, 'no run after stop()')
})
