// Module-level architecture check: madge reads the import graph (type-only and dynamic
// imports included, with .madgerc's options); every file is mapped to its module (a folder
// under src/modules, or src/http, src/lib, src/db, or a top-level file), then the check fails
// on a file cycle, on a cycle between modules, and on an import that breaks a layer rule.
//
// Usage: node scripts/check-architecture.mjs [source root, default src]
// Exit 0 when clean, 1 with every offending import (file → file) printed otherwise.
import { readFileSync } from 'node:fs'
import { relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import madge from 'madge'

const projectRoot = resolve(fileURLToPath(new URL('..', import.meta.url)))

/** The module a file (relative to the source root) belongs to. */
export function moduleOf (file) {
  const parts = file.split('/')
  if (parts[0] === 'modules' && parts.length > 2) return `modules/${parts[1]}`
  if (parts.length > 1) return parts[0]
  return parts[0].replace(/\.[cm]?[jt]s$/, '')
}

// Each layer may import only from itself and the modules listed; a module not named here is unrestricted.
const LAYERS = [
  { layer: 'lib', may: () => false, rule: 'lib imports nothing else from src' },
  { layer: 'db', may: (target) => target === 'lib', rule: 'db imports only lib' },
  { layer: 'http', may: (target) => !target.startsWith('modules/'), rule: 'http imports no domain module' }
]

/** Strongly connected components of a graph given as Map<node, Set<node>> (Tarjan). */
function components (graph) {
  let index = 0
  const indices = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const found = []
  const visit = (node) => {
    indices.set(node, index)
    low.set(node, index)
    index++
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node), low.get(next)))
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node), indices.get(next)))
      }
    }
    if (low.get(node) === indices.get(node)) {
      const component = []
      let member
      do {
        member = stack.pop()
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      found.push(component.sort())
    }
  }
  for (const node of [...graph.keys()].sort()) if (!indices.has(node)) visit(node)
  return found
}

/** The shortest cycle from `start` back to itself within `members`, as a list of nodes. */
function shortestCycle (graph, members, start) {
  const previous = new Map()
  const queue = [start]
  while (queue.length > 0) {
    const node = queue.shift()
    for (const next of [...graph.get(node)].sort()) {
      if (!members.has(next) || previous.has(next)) continue
      previous.set(next, node)
      if (next === start) {
        const path = []
        for (let at = node; at !== start; at = previous.get(at)) path.unshift(at)
        return [start, ...path]
      }
      queue.push(next)
    }
  }
  return [start]
}

/**
 * Checks the tree under `sourceRoot`; returns the problems found, each a heading and the
 * imports (file → file, paths relative to the project) that cause it.
 */
export async function checkArchitecture (sourceRoot) {
  const config = JSON.parse(readFileSync(resolve(projectRoot, '.madgerc'), 'utf8'))
  const result = await madge(sourceRoot, {
    ...config,
    baseDir: sourceRoot,
    tsConfig: resolve(projectRoot, config.tsConfig ?? 'tsconfig.json')
  })
  const files = result.obj()
  const shown = (file) => relative(projectRoot, resolve(sourceRoot, file))
  const problems = []

  for (const cycle of result.circular()) {
    problems.push({ heading: `file cycle: ${cycle.map(shown).join(' → ')} → ${shown(cycle[0])}`, imports: [] })
  }

  // module graph, each edge with the file imports behind it
  const graph = new Map()
  const imports = new Map()
  for (const [file, deps] of Object.entries(files)) {
    const from = moduleOf(file)
    if (!graph.has(from)) graph.set(from, new Set())
    for (const dep of deps) {
      const to = moduleOf(dep)
      if (to === from) continue
      graph.get(from).add(to)
      const edge = `${from}\0${to}`
      if (!imports.has(edge)) imports.set(edge, [])
      imports.get(edge).push(`${shown(file)} → ${shown(dep)}`)
    }
  }

  for (const component of components(graph)) {
    if (component.length < 2) continue
    const members = new Set(component)
    const inside = []
    for (const from of component) {
      for (const to of [...graph.get(from)].sort()) {
        if (members.has(to)) inside.push(...imports.get(`${from}\0${to}`).map((line) => `${from} → ${to}: ${line}`))
      }
    }
    const cycles = new Set()
    for (const start of component) {
      const cycle = shortestCycle(graph, members, start)
      const first = cycle.indexOf([...cycle].sort()[0])
      const rotated = [...cycle.slice(first), ...cycle.slice(0, first)]
      cycles.add([...rotated, rotated[0]].join(' → '))
    }
    problems.push({ heading: `module cycle between ${component.join(', ')}: ${[...cycles].sort().join('; ')}`, imports: inside })
  }

  for (const { layer, may, rule } of LAYERS) {
    for (const to of [...(graph.get(layer) ?? [])].sort()) {
      if (!may(to)) problems.push({ heading: `layer: ${rule} (${layer} → ${to})`, imports: imports.get(`${layer}\0${to}`) })
    }
  }
  return { files: Object.keys(files).length, modules: graph.size, problems }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sourceRoot = resolve(process.argv[2] ?? resolve(projectRoot, 'src'))
  const { files, modules, problems } = await checkArchitecture(sourceRoot)
  for (const { heading, imports } of problems) {
    console.log(heading)
    for (const line of imports) console.log(`  ${line}`)
  }
  console.log(`${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}: ${files} files in ${modules} modules under ${relative(projectRoot, sourceRoot) || '.'}`)
  process.exitCode = problems.length === 0 ? 0 : 1
}
