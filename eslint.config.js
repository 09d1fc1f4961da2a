// Lint rules: neostandard (standard style with its TypeScript rules), zero warnings allowed (npm test runs it).
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['src/generated/**', 'dist/**', 'coverage/**', '.tap/**'] }),
  {
    rules: {
      // wide records (audit entries, row mappers) group related fields on a few lines; one property per line would double them
      '@stylistic/object-property-newline': 'off',
      // SQL reads best in backticks even without interpolation: its own quotes need no escaping
      '@stylistic/quotes': ['error', 'single', { avoidEscape: true, allowTemplateLiterals: true }],
      // `void promise` marks a promise deliberately not awaited
      'no-void': ['error', { allowAsStatement: true }],
      // refusals are error classes named by their wire code (Refusals.key_invalid)
      'new-cap': ['error', { newIsCap: true, capIsNew: false, properties: true, newIsCapExceptionPattern: '^Refusals\\.' }],
      // a loop that waits for a flag an async callback sets is how tests poll
      'no-unmodified-loop-condition': 'off'
    }
  }
]
