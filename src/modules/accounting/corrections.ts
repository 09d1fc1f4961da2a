// The rollups following rows rewritten outside ingestion: a deleted provider or a
// hard-deleted key. Their usage rows lose the id (the usage_references triggers set
// it to NULL), and the rollups must then read as if those rows had always had none.
// Every statement is derived from model.ts, so a new table or measure is corrected too.
import sql, { join, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { regroupedSelect } from './bulk.js'
import { SAVINGS_COLUMN_NAMES, SAVINGS_SUMMED } from './cache/timeline.js'
import { DIMENSIONS, keyColumns, REACHED_PROVIDER, rollup, ROLLUPS, summedColumns, type Rollup } from './model.js'
import { tierPricesJoinSql } from './pricing.js'
import { NIL_UUID, SETTLED_HOURS_CHANGED } from './rules.js'

const run = async (db: Db, query: Fragment) => db.$executeRawUnsafe(query.text, ...query.values)

/** usage_hourly keeps every dimension of the tables corrected here (a deleted provider's id included) */
const FINEST = rollup('usage_hourly')

const matching = (r: Rollup, a: string, b: string) => raw(keyColumns(r).map((column) => `${a}.${column} = ${b}.${column}`).join(' AND '))

/**
 * The tables that count only requests reaching an existing provider have no provider
 * column to filter on: a deleted provider's part is taken out of them, regrouped from
 * its usage_hourly rows (read whole, as deleting a provider is rare and already
 * rewrites its usage rows). Run it after the DELETE, whose triggers set the usage rows'
 * provider_id to NULL and wait for any transaction still writing one of them, so
 * usage_hourly then includes every batch that recorded this provider.
 */
export async function forgetProvider (db: Db, providerId: string): Promise<void> {
  const tables = ROLLUPS.filter((r) => r.only === REACHED_PROVIDER && !r.grain.includes('provider'))
  if (tables.length === 0) return
  const updates = tables.map((r, i) => sql`${raw(`c${i}`)} AS (
      UPDATE ${raw(r.table)} t SET ${raw(summedColumns(r).map((c) => `${c.name} = ${c.subtract(`t.${c.name}`, `p.${c.name}`)}`).join(', '))}
        FROM (${regroupedSelect(r, FINEST, [], 'part')}) p
       WHERE ${matching(r, 't', 'p')}
      RETURNING 1
    )`)
  // each UPDATE in WITH runs to completion whether or not it is read
  await run(db, sql`
    WITH part AS MATERIALIZED (SELECT * FROM usage_hourly WHERE provider_id = ${providerId}::uuid), ${join(updates, ', ')}
    SELECT 1`)
}

/** Moves a rollup's rows of the ids (its `dimension`) onto the nil id (the usage rows lost theirs), adding into rows already there. */
function foldOntoNil (r: Rollup, dimension: 'key' | 'provider_key', ids: string[]): Fragment {
  const column = DIMENSIONS[dimension].column
  const others = r.grain.filter((name) => name !== dimension).map((name) => DIMENSIONS[name].column)
  const summed = summedColumns(r)
  const columns = [...others, ...summed.map((c) => c.name)].join(', ')
  // summed per target row: several ids' rows of one bucket land on one nil row, which one INSERT may update only once
  return sql`
    WITH gone AS (DELETE FROM ${raw(r.table)} WHERE ${raw(column)} = ANY(${ids}::uuid[]) RETURNING *)
    INSERT INTO ${raw(r.table)} AS t (${raw(columns)}, ${raw(column)})
    SELECT ${raw([...others, ...summed.map((c) => c.sum(c.name))].join(', '))}, ${NIL_UUID}::uuid FROM gone GROUP BY ${raw(others.join(', '))}
    ON CONFLICT (${raw(keyColumns(r).join(', '))}) DO UPDATE SET ${raw(summed.map((c) => `${c.name} = ${c.add(`t.${c.name}`, `EXCLUDED.${c.name}`)}`).join(', '))}`
}

/**
 * After provider keys are deleted (by id, or with their provider), whose trigger set their
 * usage rows' provider_api_key_id to NULL: their part of the provider-key rollups moves
 * to the nil key. Run it in the deleting transaction, after the DELETE: that waited for
 * every batch holding the keys (ingestion key-share-locks them), and no later batch can
 * name them.
 */
export async function forgetProviderKeys (db: Db, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  for (const r of ROLLUPS) if (r.grain.includes('provider_key')) await run(db, foldOntoNil(r, 'provider_key', ids))
}

/**
 * After a key's hard delete (whose trigger set its usage rows' api_key_id to NULL),
 * the rollups follow the rows: the key's part of the key-grained rollups moves to the
 * nil key; its prompt-cache rows go (they count only requests of existing keys); and a
 * user timeline whose last request was the key's takes the user's last request of
 * another key. The caller holds KEY_DELETION_LOCK, so no batch writes these rows meanwhile.
 */
export async function forgetKey (db: Db, keyId: string): Promise<void> {
  for (const r of ROLLUPS) if (r.grain.includes('key')) await run(db, foldOntoNil(r, 'key', [keyId]))
  await run(db, sql`DELETE FROM cache_interval_hourly WHERE scope = 'api_key' AND scope_id = ${keyId}::uuid`)
  // settled hours of the key's histograms and rollups changed: the caches of them rebuild
  await run(db, SETTLED_HOURS_CHANGED)
  // the whole scope's hours, and its hours by model and provider, lose what the key's rows held (cache_savings_hourly (api_key_id, bucket))
  for (const { table, keys } of SAVINGS_SUMMED) {
    await run(db, sql`
      UPDATE ${raw(table)} g SET ${raw(SAVINGS_COLUMN_NAMES.map((c) => `${c} = g.${c} - k.${c}`).join(', '))}
        FROM (SELECT ${raw(keys.join(', '))}, ${raw(SAVINGS_COLUMN_NAMES.map((c) => `sum(${c}) AS ${c}`).join(', '))}
                FROM cache_savings_hourly WHERE api_key_id = ${keyId}::uuid GROUP BY ${raw(keys.join(', '))}) k
       WHERE ${raw(keys.map((c) => `g.${c} = k.${c}`).join(' AND '))}`)
  }
  await run(db, sql`DELETE FROM cache_savings_hourly WHERE api_key_id = ${keyId}::uuid`)
  await run(db, sql`
    UPDATE cache_timeline_tail t
       SET last_at = l.created_at, last_request_id = l.request_id, user_id = l.user_id, api_key_id = l.api_key_id,
           cache_write_5m_tokens = l.cache_creation_5m_input_tokens, cache_write_1h_tokens = l.cache_creation_1h_input_tokens,
           cache_write_5m_price_per_1m = l.cache_write_5m_price_per_1m, cache_write_1h_price_per_1m = l.cache_write_1h_price_per_1m,
           model = l.model, provider_id = l.provider_id
      FROM cache_timeline_tail s CROSS JOIN LATERAL (
        SELECT created_at, request_id, user_id, api_key_id, cache_creation_5m_input_tokens, cache_creation_1h_input_tokens,
               pt.cache_write_5m_price_per_1m, pt.cache_write_1h_price_per_1m, model, ${raw(DIMENSIONS.provider.raw)} AS provider_id
          FROM usage u ${raw(tierPricesJoinSql('u'))} WHERE u.user_id = s.scope_id AND u.status = 'completed' AND u.api_key_id IS NOT NULL
         ORDER BY created_at DESC, request_id DESC LIMIT 1) l
     WHERE s.scope = 'user' AND s.api_key_id = ${keyId}::uuid AND t.scope = s.scope AND t.scope_id = s.scope_id`)
  // the key's own timeline, and a user's whose only requests were the key's
  await run(db, sql`DELETE FROM cache_timeline_tail WHERE api_key_id = ${keyId}::uuid`)
}
