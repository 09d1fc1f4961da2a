// usage_in_flight_key_idx holds only the in-flight rows (partial on IN_FLIGHT_STATUSES): finished
// rows never enter it, and the three readers of in-flight rows — the stale sweep, the
// active list, the in-flight counter — still find them through an index, planned here
// over the real statements on a table of 30,000 finished rows and a dozen in flight.
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'
import t from 'tap'
import type { Sql } from '../../../src/db/prisma.js'
import { PrismaClient } from '../../../src/generated/prisma/client.js'
import { IN_FLIGHT_STATUSES } from '../../../src/modules/accounting/rules.js'
import { keyState } from '../../../src/modules/keys/counters.js'
import { activeRequests, sweepStale } from '../../../src/modules/usage/active.js'
import { createDatabase } from '../../helper.js'
import { isUsage, parentIndexes, usagePartitions } from '../../plans.js'

interface Recorded { text: string, values: unknown[] }
interface PlanNode { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, Plans?: PlanNode[] }

const FINISHED_ROWS = 30_000
const IN_FLIGHT_ROWS = 12
const KEY = '22222222-2222-4222-8222-222222222222'
const USER = '11111111-1111-4111-8111-111111111111'

const nodes = (plan: PlanNode): PlanNode[] => [plan, ...(plan.Plans ?? []).flatMap(nodes)]

t.test('usage_in_flight_key_idx: in-flight rows only, by key and time, and every in-flight reader plans through an index', async (t) => {
  const url = await createDatabase(t)
  const pool = new pg.Pool({ connectionString: url, max: 2, options: '-c TimeZone=UTC' })
  t.teardown(() => pool.end())

  const { rows: [definition] } = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE indexname = 'usage_in_flight_key_idx'`)
  t.equal(definition?.indexdef, `CREATE INDEX usage_in_flight_key_idx ON ONLY public.usage USING btree (api_key_id, created_at) WHERE (status = ANY (ARRAY[${IN_FLIGHT_STATUSES.map((s) => `'${s}'::usage_status`).join(', ')}]))`,
    'partial on the in-flight statuses of rules.ts')

  // finished rows over the last 30 days (a third failed, a few cancelled), and a dozen in flight of one key, all recent
  await pool.query(`INSERT INTO users (id, username, password_hash, updated_at) VALUES ($1, 'owner', 'x', now())`, [USER])
  await pool.query(`INSERT INTO api_keys (id, user_id, key_hash, key_prefix, key_encrypted, name, concurrent_limit, updated_at) VALUES ($1, $2, 'h', 'sk-…', 'e', 'k', 5, now())`, [KEY, USER])
  await pool.query(`
    INSERT INTO usage (request_id, api_key_id, user_id, model, status, created_at)
    SELECT 'done_' || n, $2::uuid, $3::uuid, 'm', (ARRAY['completed', 'completed', 'failed', 'cancelled'])[1 + n % 4]::usage_status,
           now() - make_interval(secs => n * 86.4)
      FROM generate_series(1, $1::int) n`, [FINISHED_ROWS, KEY, USER])
  await pool.query(`
    INSERT INTO usage (request_id, api_key_id, user_id, model, status, created_at)
    SELECT 'live_' || n, $2::uuid, $3::uuid, 'm', (CASE WHEN n % 2 = 0 THEN 'pending' ELSE 'streaming' END)::usage_status, now() - make_interval(secs => n)
      FROM generate_series(1, $1::int) n`, [IN_FLIGHT_ROWS, KEY, USER])
  await pool.query('VACUUM ANALYZE usage')

  const { rows: [entries] } = await pool.query<{ entries: string, pages: string }>(
    `SELECT (SELECT count(*) FROM usage WHERE status IN ('pending', 'streaming')) AS entries, (SELECT sum(pg_relation_size(inhrelid)) / current_setting('block_size')::int - count(*) FROM pg_inherits WHERE inhparent = 'usage_in_flight_key_idx'::regclass) AS pages`)
  t.equal(entries?.entries, String(IN_FLIGHT_ROWS))
  // one copy per monthly partition, each a metapage; the rows are all this month's
  t.ok(Number(entries?.pages) <= 1, `the index is a leaf beside its metapages (${entries?.pages} pages more), not an entry per finished row`)

  // each reader's statements as it sends them, planned with their parameters
  const recorded: Recorded[] = []
  const spy: Sql = {
    query: (async (query: string | { text: string, values?: unknown[] }, values?: unknown[]) => {
      const text = typeof query === 'string' ? query : query.text
      recorded.push({ text, values: (typeof query === 'string' ? values : query.values) ?? [] })
      return typeof query === 'string' ? pool.query(query, values) : pool.query(query)
    }) as Sql['query']
  }
  // the plan nodes of every statement the reader sent to usage
  const planOf = async (reader: string, run: () => Promise<unknown>): Promise<PlanNode[]> => {
    recorded.length = 0
    await run()
    const statements = recorded.filter((r) => /\busage\b/.test(r.text) && /status/.test(r.text))
    if (statements.length === 0) throw new Error(`${reader}: no statement on usage by status`)
    const plans: PlanNode[] = []
    for (const statement of statements) {
      const { rows } = await pool.query(`EXPLAIN (FORMAT JSON) ${statement.text}`, statement.values)
      plans.push(...nodes((rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan))
    }
    return plans
  }
  // of the monthly partitions holding rows (an empty one, a month ahead, is read whole at no cost)
  const filled = new Set((await usagePartitions(pool)).filled)
  t.ok(filled.size > 0, `usage's rows are in ${[...filled].join(', ')}`)
  const seqScans = (plan: PlanNode[]) => plan.filter((n) => n['Node Type'] === 'Seq Scan' && isUsage(n['Relation Name']) && filled.has(n['Relation Name']!))
  // a partition's index by its parent's name
  const indexes = async (plan: PlanNode[]) => await parentIndexes(pool, plan.flatMap((n) => n['Index Name'] === undefined ? [] : [n['Index Name']]))

  // every in-flight row is younger than 10 minutes: nothing to sweep, only the lookup runs
  const sweep = await planOf('stale sweep', async () => t.equal(await sweepStale(spy as unknown as pg.Pool, 10), 0))
  t.same(seqScans(sweep), [], 'stale sweep: no scan of usage')
  t.ok((await indexes(sweep)).includes('usage_in_flight_key_idx'), `stale sweep through usage_in_flight_key_idx (${(await indexes(sweep)).join(', ')})`)

  // the adapter needs a real pool: one whose query goes through the spy
  const prismaPool = new pg.Pool({ connectionString: url, max: 1, options: '-c TimeZone=UTC' })
  prismaPool.query = spy.query
  const prisma = new PrismaClient({ adapter: new PrismaPg(prismaPool) })
  t.teardown(async () => { await prisma.$disconnect(); await prismaPool.end() })
  const active = await planOf('active list', async () => t.equal((await activeRequests(prisma, undefined)).requests.length, IN_FLIGHT_ROWS))
  t.same(seqScans(active), [], 'active list: no scan of usage')
  t.ok((await indexes(active)).includes('usage_in_flight_key_idx'), `active list through usage_in_flight_key_idx (${(await indexes(active)).join(', ')})`)

  const counter = await planOf('in-flight counter', async () => {
    const state = await keyState(spy, { id: KEY }, { timeZone: 'UTC', pendingTimeoutMinutes: 10 })
    t.equal(state?.counters.in_flight, IN_FLIGHT_ROWS)
  })
  t.same(seqScans(counter), [], 'in-flight counter: no scan of usage')
  // the key's in-flight range only, not its every row of the pending timeout
  t.ok((await indexes(counter)).includes('usage_in_flight_key_idx'), `in-flight counter through usage_in_flight_key_idx (${(await indexes(counter)).join(', ')})`)
})
