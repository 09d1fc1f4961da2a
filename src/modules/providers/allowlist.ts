// A provider allow-list as written by keys and users: each entry, a provider's id (any
// case) or its exact name, is stored as the provider's id, so a rename keeps the list
// meaning the same providers and Aether's forms (which send and prefill ids) read it back.
import sql from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { UUID_PATTERN } from '../../lib/crypto.js'

/**
 * The list with every entry replaced by its provider's id, in the order given, a provider
 * named twice (by id and by name) kept once; an entry naming no provider is a 400 naming
 * it (`field` is the body field). null, undefined and [] pass through unchanged.
 */
export async function providerIds<L extends string[] | null | undefined> (db: Db, list: L, field = 'body.allowed_providers'): Promise<L> {
  if (list === null || list === undefined || list.length === 0) return list
  const uuids = list.filter((entry) => UUID_PATTERN.test(entry)).map((entry) => entry.toLowerCase())
  // providers primary key and its unique name (providers_name_key)
  const query = sql`SELECT id::text AS id, name FROM providers WHERE id = ANY(${uuids}::uuid[]) OR name = ANY(${list}::text[])`
  const rows = await db.$queryRawUnsafe<Array<{ id: string, name: string }>>(query.text, ...query.values)
  const ids = new Set(rows.map((row) => row.id))
  const byName = new Map(rows.map((row) => [row.name, row.id]))
  // an id wins over a name, should a provider be named like another's id
  const resolve = (entry: string) => UUID_PATTERN.test(entry) && ids.has(entry.toLowerCase()) ? entry.toLowerCase() : byName.get(entry)
  const unknown = list.filter((entry) => resolve(entry) === undefined)
  if (unknown.length > 0) {
    const names = unknown.slice(0, 5).map((entry) => JSON.stringify(entry)).join(', ') + (unknown.length > 5 ? ` and ${unknown.length - 5} more` : '')
    throw Object.assign(new Errors.InvalidInput(`${field} names no provider by id or name: ${names}`), { field })
  }
  return [...new Set(list.map((entry) => resolve(entry)!))] as L
}

/**
 * For each list, the names of its entries in place (reads only, for display): a provider's
 * id gives its current name, an id of no provider (deleted since) null, and an entry that
 * is no id (kept by migration 20261202100000) itself, as verify reads it. One query for
 * every list, none when no list holds an id.
 */
export async function providerNamesOf (db: Db, lists: Array<string[] | null>): Promise<Array<Array<string | null> | null>> {
  const uuids = [...new Set(lists.flatMap((list) => (list ?? []).filter((entry) => UUID_PATTERN.test(entry)).map((entry) => entry.toLowerCase())))]
  // providers primary key
  const query = sql`SELECT id::text AS id, name FROM providers WHERE id = ANY(${uuids}::uuid[])`
  const rows = uuids.length === 0 ? [] : await db.$queryRawUnsafe<Array<{ id: string, name: string }>>(query.text, ...query.values)
  const names = new Map(rows.map((row) => [row.id, row.name]))
  return lists.map((list) => list === null ? null : list.map((entry) => UUID_PATTERN.test(entry) ? names.get(entry.toLowerCase()) ?? null : entry))
}
