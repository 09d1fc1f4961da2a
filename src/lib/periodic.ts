// An in-process task run every so often: never two runs at once (a tick while one runs is
// skipped), a failed run handed to `onError` and the next tick tries again, and stop()
// waiting for the run in progress. The timer does not keep the process alive.

export interface Periodic { stop: () => Promise<void> }

export function every (intervalMs: number, task: () => Promise<void>, onError: (error: unknown) => void): Periodic {
  let running: Promise<void> | null = null
  let stopped = false
  const run = () => {
    if (running !== null || stopped) return
    running = task().catch(onError).finally(() => { running = null })
  }
  const timer = setInterval(run, intervalMs)
  timer.unref()
  return {
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running
    }
  }
}
