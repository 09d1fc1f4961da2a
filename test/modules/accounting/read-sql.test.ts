// The composed statements number their own placeholders: each $n appears in order, once,
// and carries the value written beside it. Checked on the records filter with several
// keywords and on the keyword-driven search, the statements with the most parameters.
import t from 'tap'
import { drivenRows, recordWhere, type ResolvedFilter } from '../../../src/modules/stats/queries.js'

/** The placeholders in the order they occur in the text. */
const placeholders = (text: string) => [...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]))

/** The value bound to the placeholder that follows `before` in the text (the first such occurrence after `from`). */
function valueAfter (query: { text: string, values: unknown[] }, before: string, from = 0): unknown {
  const at = query.text.indexOf(before, from)
  if (at < 0) throw new Error(`${before} not in the text`)
  const m = /^\$(\d+)/.exec(query.text.slice(at + before.length))
  if (m === null) throw new Error(`no placeholder after ${before}`)
  return query.values[Number(m[1]) - 1]
}

const none: ResolvedFilter = {
  start: null, end: null, userId: null, username: null, model: null, provider: null, apiKeyId: null, statuses: null, isStream: null,
  errorsOnly: false, patterns: [], namedUserIds: null, providerIds: null, models: null
}

t.test('the records filter: given conditions only, placeholders in order with their values', async (t) => {
  const start = new Date('2026-03-01T00:00:00Z')
  const end = new Date('2026-03-02T00:00:00Z')
  const filter: ResolvedFilter = {
    ...none,
    start,
    end,
    model: 'claude',
    models: ['claude'],
    statuses: ['pending', 'streaming'],
    isStream: true,
    errorsOnly: true,
    patterns: ['%alice%', '%beta%', '%gpt\\_4%']
  }
  const where = recordWhere(filter)
  t.same(placeholders(where.text), Array.from({ length: where.values.length }, (_, i) => i + 1), 'numbered 1…n in order, each once')
  // 2 dates, model, statuses, is_stream, then 4 fields for each of 3 keywords
  t.equal(where.values.length, 5 + 3 * 4)
  t.equal(valueAfter(where, 'u.created_at >= '), start)
  t.equal(valueAfter(where, 'u.created_at < '), end)
  t.equal(valueAfter(where, 'u.model = '), 'claude')
  t.same(valueAfter(where, 'u.status = ANY('), ['pending', 'streaming'])
  t.equal(valueAfter(where, 'u.is_stream = '), true)
  t.notMatch(where.text, /user_id =|provider_id =|api_key_id =/, 'absent filters are left out of the text')
  t.match(where.text, /u\.status = 'failed' OR u\.status_code >= 400/, 'errors only')
  // each keyword's four fields carry that keyword, in the keywords' order
  let from = 0
  for (const pattern of filter.patterns) {
    for (const field of ['us.username ILIKE ', 'k.name ILIKE ', 'u.model ILIKE ', 'COALESCE(p.name, u.provider_name) ILIKE ']) {
      t.equal(valueAfter(where, field, from), pattern, `${pattern}: ${field.trim()}`)
      from = where.text.indexOf(field, from) + field.length
    }
  }

  const empty = recordWhere(none)
  t.equal(empty.text.trim(), 'WHERE true', 'no filter: no condition')
  t.same(empty.values, [])
})

t.test('the keyword-driven search: every branch carries the filter and the other keywords\' ids', async (t) => {
  const match = (pattern: string, n: number) => ({
    pattern,
    users: [`00000000-0000-4000-8000-00000000000${n}`],
    keys: [`00000000-0000-4000-9000-00000000000${n}`],
    models: [`model-${n}`],
    providers: [`00000000-0000-4000-a000-00000000000${n}`]
  })
  const keywords = [match('%one%', 1), match('%two%', 2), match('%three%', 3)]
  const filter: ResolvedFilter = { ...none, userId: '00000000-0000-4000-8000-0000000000aa', patterns: keywords.map((k) => k.pattern), driver: keywords[1], keywords }
  const query = drivenRows(filter, 75)
  t.same(placeholders(query.text), Array.from({ length: query.values.length }, (_, i) => i + 1), 'numbered 1…n in order, each once')
  // five branches, each: the user filter, two other keywords (4 id arrays and a pattern each), the row limit; plus the driver's 4 arrays and pattern
  t.equal(query.values.length, 5 * (1 + 2 * 5 + 1) + 5)
  t.equal(query.text.split('LIMIT ').length - 1, 5, 'five branches')
  let from = 0
  for (let branch = 0; branch < 5; branch++) {
    t.equal(valueAfter(query, 'u.user_id = ', from), filter.userId, `branch ${branch}: the user filter`)
    for (const k of [keywords[0]!, keywords[2]!]) {
      const at = query.text.indexOf('(u.user_id = ANY(', from)
      t.same(valueAfter(query, '(u.user_id = ANY(', from), k.users, `branch ${branch}: ${k.pattern} users`)
      t.same(valueAfter(query, 'u.api_key_id = ANY(', at), k.keys, `branch ${branch}: ${k.pattern} keys`)
      t.same(valueAfter(query, 'u.model = ANY(', at), k.models, `branch ${branch}: ${k.pattern} models`)
      t.same(valueAfter(query, 'u.provider_id = ANY(', at), k.providers, `branch ${branch}: ${k.pattern} providers`)
      t.equal(valueAfter(query, 'u.provider_name ILIKE ', at), k.pattern, `branch ${branch}: ${k.pattern} gone provider's name`)
      from = query.text.indexOf('u.provider_name ILIKE ', at) + 1
    }
    t.equal(valueAfter(query, 'LIMIT ', from), 75, `branch ${branch}: its row limit`)
    from = query.text.indexOf('LIMIT ', from) + 1
  }
  t.notMatch(query.text, /ILIKE[^)]*%two%/, 'the driver is not tested again')
  t.notOk(query.values.includes('%two%') && query.values.indexOf('%two%') !== query.values.lastIndexOf('%two%'), 'the driver\'s pattern is bound once (its gone-provider branch)')
  t.same(valueAfter(query, 'unnest(', 0), keywords[1]!.users, 'the first branch walks the driver\'s users')
})
