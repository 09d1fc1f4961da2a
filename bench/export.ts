// The records export (issue 19 item 9) at a million records: each format streamed once
// through HTTP from the window holding the newest 1,000,000 usage rows (or all of them),
// counted as it arrives and dropped (the client keeps nothing), with the server's resident
// memory sampled every 50 ms: its rate, and whether its memory stays bounded.
import http from 'node:http'
import type pg from 'pg'
import { fmt, stealMeter, stealNote, type Bench } from './harness.js'

const RECORDS = 1_000_000
const SAMPLE_MS = 50

const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 0)} MB`

/** Streams one export; returns its bytes and lines, and the server's RSS at its highest meanwhile. */
async function stream (url: string, headers: Record<string, string>, rss: () => number | null): Promise<{ status: number, bytes: number, lines: number, peak: number | null }> {
  let peak: number | null = null
  const sample = () => {
    const now = rss()
    if (now !== null && (peak === null || now > peak)) peak = now
  }
  const sampler = setInterval(sample, SAMPLE_MS)
  try {
    return await new Promise((resolve, reject) => {
      http.get(url, { headers }, (res) => {
        let bytes = 0
        let lines = 0
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length
          for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
        })
        res.on('end', () => { sample(); resolve({ status: res.statusCode ?? 0, bytes, lines, peak }) })
        res.on('error', reject)
      }).on('error', reject)
    })
  } finally {
    clearInterval(sampler)
  }
}

/** The export lines of `npm run bench -- stats`: NDJSON and CSV of the newest million rows. */
export async function measureExports (bench: Bench, raw: pg.Client, headers: Record<string, string>, end: Date, wanted: (name: string) => boolean): Promise<void> {
  const formats = (['ndjson', 'csv'] as const).filter((format) => wanted(`records export (${format})`))
  if (formats.length === 0) return
  // the instant from which the window holds RECORDS rows (usage (created_at), read backwards), or the oldest row's
  const { rows: [from] } = await raw.query(`SELECT COALESCE((SELECT created_at FROM usage ORDER BY created_at DESC OFFSET ${RECORDS - 1} LIMIT 1), (SELECT min(created_at) FROM usage)) AS at`)
  const start = from.at as Date
  const { rows: [count] } = await raw.query('SELECT count(*) AS n FROM usage WHERE created_at >= $1 AND created_at < $2', [start, end])
  for (const format of formats) {
    const url = `${bench.url}/api/admin/usage/records/export?format=${format}&start_date=${encodeURIComponent(start.toISOString())}&end_date=${encodeURIComponent(end.toISOString())}`
    const before = bench.serverRss()
    const steal = stealMeter()
    const started = performance.now()
    const { status, bytes, lines, peak } = await stream(url, headers, bench.serverRss)
    const seconds = (performance.now() - started) / 1000
    const records = format === 'csv' ? lines - 1 : lines
    const memory = before === null || peak === null ? 'server RSS not measured' : `server RSS ${mb(before)} before, ${mb(peak)} at most (+${mb(peak - before)})`
    console.log(`records export (${format}, ${fmt(records)} of the window's ${fmt(Number(count.n))} rows)  status ${status}  ${fmt(seconds, 1)} s  ·  ${fmt(records / seconds)} rows/s  ·  ${fmt(bytes / 1024 / 1024 / seconds, 1)} MB/s (${mb(bytes)})  ·  ${memory}${stealNote(steal())}`)
  }
}
