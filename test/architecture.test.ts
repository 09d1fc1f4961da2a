// scripts/check-architecture.mjs on small trees: a clean one passes, and one with a
// module cycle (through a type-only import), a file cycle and each layer violation
// fails, naming every offending import.
import { execFile } from 'node:child_process'
import { relative } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const run = async (root: string) => {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['scripts/check-architecture.mjs', root])
    return { code: 0, stdout }
  } catch (error) {
    const failed = error as { code: number, stdout: string }
    return { code: failed.code, stdout: failed.stdout }
  }
}

t.test('a layered tree without cycles passes', async (t) => {
  const root = t.testdir({
    'config.ts': 'export const level = 1\n',
    'app.ts': "import { level } from './config.js'\nimport { serve } from './http/server.js'\nimport { one } from './modules/one/service.js'\nexport const app = serve(level + one)\n",
    lib: { 'money.ts': 'export const nano = 1_000_000_000n\n' },
    db: { 'client.ts': "import { nano } from '../lib/money.js'\nexport const scale = nano\n" },
    http: { 'server.ts': "import { nano } from '../lib/money.js'\nexport const serve = (n: number) => n + Number(nano)\n" },
    modules: {
      one: { 'service.ts': "import type { Two } from '../two/types.js'\nimport { scale } from '../../db/client.js'\nexport const one: Two = Number(scale)\n" },
      two: { 'types.ts': 'export type Two = number\n' }
    }
  })
  const { code, stdout } = await run(root)
  t.equal(code, 0, stdout)
  t.match(stdout, /^ok: 7 files in 7 modules under /m)
})

t.test('a module cycle (type-only import included), a file cycle and every layer violation fail, each import named', async (t) => {
  const root = t.testdir({
    'config.ts': 'export const level = 1\n',
    lib: { 'time.ts': "import { level } from '../config.js'\nexport const zone = level\n" },
    db: { 'client.ts': "import { level } from '../config.js'\nexport const scale = level\n" },
    http: { 'pipeline.ts': "import { one } from '../modules/one/service.js'\nexport const pipeline = one\n" },
    modules: {
      one: {
        'service.ts': "import type { Two } from '../two/types.js'\nimport { helper } from './helpers.js'\nexport const one: Two = helper\n",
        'helpers.ts': 'export const helper = 1\n'
      },
      two: { 'types.ts': "import { helper } from '../one/helpers.js'\nexport type Two = typeof helper\n" },
      three: {
        'a.ts': "import { b } from './b.js'\nexport const a = (): number => b()\n",
        'b.ts': "import { a } from './a.js'\nexport const b = (): number => a()\n"
      }
    }
  })
  const at = relative(process.cwd(), root)
  const { code, stdout } = await run(root)
  t.equal(code, 1, 'exits 1')
  const lines = stdout.trim().split('\n')
  t.same(lines, [
    `file cycle: ${at}/modules/three/a.ts → ${at}/modules/three/b.ts → ${at}/modules/three/a.ts`,
    'module cycle between modules/one, modules/two: modules/one → modules/two → modules/one',
    `  modules/one → modules/two: ${at}/modules/one/service.ts → ${at}/modules/two/types.ts`,
    `  modules/two → modules/one: ${at}/modules/two/types.ts → ${at}/modules/one/helpers.ts`,
    'layer: lib imports nothing else from src (lib → config)',
    `  ${at}/lib/time.ts → ${at}/config.ts`,
    'layer: db imports only lib (db → config)',
    `  ${at}/db/client.ts → ${at}/config.ts`,
    'layer: http imports no domain module (http → modules/one)',
    `  ${at}/http/pipeline.ts → ${at}/modules/one/service.ts`,
    `5 problem(s): 9 files in 7 modules under ${at}`
  ])
})
