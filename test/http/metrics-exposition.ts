// Reading the Prometheus text exposition in tests: each sample by its name and labels
// (in any order), and promtool's verdict when promtool is installed.
import { spawnSync } from 'node:child_process'

export type Labels = Record<string, string>

const sampleKey = (name: string, labels: Labels) => `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`

/** Every sample of the exposition, keyed by name and sorted labels. */
export function samples (text: string): Map<string, number> {
  const found = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const labels: Labels = {}
    for (const [, k, v] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = JSON.parse(`"${v!}"`) as string
    found.set(sampleKey(match[1]!, labels), Number(match[3]))
  }
  return found
}

/** The sample's value, or undefined when the exposition has no such series. */
export const sample = (text: string, name: string, labels: Labels = {}): number | undefined => samples(text).get(sampleKey(name, labels))

/** `promtool check metrics` on the text: null when promtool is absent, else its exit code and output. */
export function promtool (text: string): { status: number, output: string } | null {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (run.error !== undefined) return null
  return { status: run.status ?? -1, output: `${run.stdout}${run.stderr}` }
}
