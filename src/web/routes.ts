// The key holder's page: GET / and its files under /page/, read once at start from this
// folder (copied beside the compiled file by `npm run build`) and uPlot's from node_modules.
// Outside the pipeline: static files, no principal; the API calls it makes go through it.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'

/** The page loads its own script, styles and the API of this origin, nothing inline, nothing elsewhere; no native form submission (the key must never become a URL). */
export const PAGE_CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  connectSrc: ["'self'"],
  imgSrc: ["'self'"],
  formAction: ["'none'"],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"]
}

const here = new URL('./', import.meta.url)
const require = createRequire(import.meta.url)
const FILES: Record<string, { from: string, type: string }> = {
  'holder.js': { from: fileURLToPath(new URL('holder.js', here)), type: 'text/javascript; charset=utf-8' },
  'holder.css': { from: fileURLToPath(new URL('holder.css', here)), type: 'text/css; charset=utf-8' },
  'icon.svg': { from: fileURLToPath(new URL('icon.svg', here)), type: 'image/svg+xml' },
  'uplot.js': { from: require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uplot.css': { from: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' }
}

const page: FastifyPluginAsync = async (app) => {
  const index = await readFile(new URL('index.html', here), 'utf8')
  const files = new Map(await Promise.all(Object.entries(FILES).map(async ([name, file]) => [name, { body: await readFile(file.from), type: file.type }] as const)))
  const helmet = { contentSecurityPolicy: { useDefaults: false, directives: PAGE_CSP } }
  // a reload fetches again (no-cache revalidates nothing here: the files are small and change with a deploy)
  const headers = { 'cache-control': 'no-cache' }

  app.get('/', { schema: { hide: true }, helmet }, async (_request, reply) =>
    reply.headers(headers).type('text/html; charset=utf-8').send(index))

  for (const [name, file] of files) {
    app.get(`/page/${name}`, { schema: { hide: true }, helmet }, async (_request, reply) =>
      reply.headers(headers).type(file.type).send(file.body))
  }
}

export default fp(page, { name: 'key-holder-page' })
