// The tenant: what a Citus cluster would distribute keymeter's tables by (docs/scaling.md).
// A user's keys belong to their owner's tenant; a standalone key, which has its own balance
// and no owner quota, is a tenant of its own (else every standalone key would land on the
// shard of the admin who created it). A key never changes tenant: is_standalone and
// user_id are set when it is made. One node does not shard by it; the tables keyed by a
// key or a scope alone carry it in their keys now, so the move needs no re-keying.
import { raw, type Sql as Fragment } from 'sql-template-tag'

/** A key's tenant from its api_keys row (`k`: a code alias, never input). */
export const keyTenantSql = (k: string): Fragment => raw(`(CASE WHEN ${k}.is_standalone THEN ${k}.id ELSE ${k}.user_id END)`)

/**
 * A prompt-cache scope's tenant (cache_interval_hourly, cache_timeline_tail): a user scope
 * is its own, an api_key scope its key's (`k`: api_keys joined on the scope's id; any row
 * for a user scope). A standalone key's requests also count in its creator's user scope,
 * a row of the creator's tenant: the cross-tenant write docs/scaling.md names.
 */
export const scopeTenantSql = (scope: string, id: string, k: string): Fragment =>
  raw(`(CASE WHEN ${scope} = 'user' THEN ${id} ELSE ${keyTenantSql(k).text} END)`)
