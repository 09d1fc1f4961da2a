import Type, { type Static } from 'typebox'
import { CountedArray, IsoDateTime, Nullable, SkipLimit, Timestamp, Uuid } from '../../http/schemas.js'
import { shared } from '../../http/openapi.js'
import { BudgetRecord } from '../budgets/schemas.js'
import { MAX_ALLOWED_IPS, MAX_ALLOWED_USER_AGENTS } from './restrictions.js'

/** null or [] = every value allowed */
const AllowList = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 500, uniqueItems: true }))
const Usd = Type.Number({ exclusiveMinimum: 0, maximum: 1e9 })
/** allowed_providers holds ids (a name given on write is stored as its id); this is their current names, in place */
const ProviderNames = Nullable(Type.Array(Nullable(Type.String()), { description: 'the current names of allowed_providers, in place; null for a provider deleted since' }))
/** null or [] = any client */
const IpList = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 49 }), { maxItems: MAX_ALLOWED_IPS, uniqueItems: true, description: 'IPv4 or IPv6 addresses or CIDRs (10.0.0.0/8, 2001:db8::/32); verify then needs a client_ip inside one' }))
const UserAgentList = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: MAX_ALLOWED_USER_AGENTS, uniqueItems: true, description: 'substrings, matched case-insensitively (no patterns); verify then needs a user_agent containing one' }))
const Tags = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 20, uniqueItems: true }))
/** what a write may set: spend by tag (GET /api/admin/stats/tags) groups by these, so each is a plain label (tags stored before this rule are shown as they are) */
const TagsInput = Nullable(Type.Array(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$' }), {
  maxItems: 20, uniqueItems: true, description: 'at most 20 distinct labels of 1 to 64 characters A-Z a-z 0-9 _ . : -; null or [] clears them'
}))

export const KeyRecord = shared('KeyRecord', Type.Object({
  id: Uuid,
  user_id: Uuid,
  user_email: Nullable(Type.String()),
  username: Type.String(),
  name: Type.String(),
  key_display: Type.String({ description: 'sk-abcd…wxyz' }),
  is_active: Type.Boolean(),
  is_standalone: Type.Boolean(),
  balance_used_usd: Type.Number(),
  current_balance_usd: Nullable(Type.Number({ description: 'balance granted; null = unlimited' })),
  remaining_balance_usd: Nullable(Type.Number()),
  total_requests: Type.Integer(),
  total_tokens: Type.Integer(),
  total_cost_usd: Type.Number(),
  rate_limit: Nullable(Type.Integer({ description: 'requests per rate window' })),
  token_limit: Nullable(Type.Integer({ description: 'tokens per rate window' })),
  rate_window_seconds: Type.Integer({ description: 'the rate window\'s length (default 60)' }),
  concurrent_limit: Nullable(Type.Integer()),
  daily_cost_limit_usd: Nullable(Type.Number()),
  total_cost_limit_usd: Nullable(Type.Number()),
  allowed_providers: AllowList,
  allowed_provider_names: ProviderNames,
  allowed_api_formats: AllowList,
  allowed_models: AllowList,
  allowed_ips: IpList,
  allowed_user_agents: UserAgentList,
  tags: Tags,
  auto_delete_on_expiry: Nullable(Type.Boolean({ description: 'null = follow AUTO_DELETE_EXPIRED_KEYS' })),
  last_used_at: Nullable(Timestamp),
  expires_at: Nullable(Timestamp),
  previous_key_expires_at: Nullable(Type.String({ format: 'date-time', description: 'the secret replaced by the last rotation verifies until then; null when it no longer does' })),
  created_at: Timestamp,
  updated_at: Timestamp
}))

export const KeyWithSecret = Type.Object({ ...KeyRecord.properties, key: Type.String({ description: 'the full key; shown at creation and on an explicit, audited read' }) })
export const KeyMaybeSecret = Type.Object({ ...KeyRecord.properties, key: Type.Optional(Type.String()) })
/** An admin's view of one key: the record and every budget that applies to it (its own and its owner's) with its current window */
export const KeyDetail = Type.Object({ ...KeyMaybeSecret.properties, budgets: Type.Array(BudgetRecord) })

/** The allow-lists, which a key's holder may set too: they only narrow the key (its owner's own lists still apply at verify) */
const allowLists = {
  allowed_providers: Type.Optional(AllowList),
  allowed_api_formats: Type.Optional(AllowList),
  allowed_models: Type.Optional(AllowList),
  allowed_ips: Type.Optional(IpList),
  allowed_user_agents: Type.Optional(UserAgentList)
}

const limits = {
  ...allowLists,
  rate_limit: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 }))),
  token_limit: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000_000_000, description: 'tokens per rate window: the tokens of the requests created in it and of the live holds taken in it' }))),
  rate_window_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'the window rate_limit and token_limit count over (default 60 s)' })),
  concurrent_limit: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 100_000 }))),
  daily_cost_limit_usd: Type.Optional(Nullable(Usd)),
  total_cost_limit_usd: Type.Optional(Nullable(Usd)),
  expire_days: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 3650 }))),
  expires_at: Type.Optional(Nullable(IsoDateTime)),
  auto_delete_on_expiry: Type.Optional(Nullable(Type.Boolean())),
  tags: Type.Optional(TagsInput)
}

const Name = Type.String({ minLength: 1, maxLength: 100 })

export const KeyCreate = Type.Object({ name: Name, ...limits }, { additionalProperties: false })
export const StandaloneKeyCreate = Type.Object({
  name: Name,
  ...limits,
  initial_balance_usd: Type.Optional(Nullable(Usd))
}, { additionalProperties: false })
/** A user's own key: a name and the allow-lists; limits, balance, expiry and tags stay an admin's */
export const OwnKeyCreate = Type.Object({ name: Name, ...allowLists }, { additionalProperties: false })
export const OwnKeyUpdate = Type.Object({ name: Type.Optional(Name), ...allowLists }, { additionalProperties: false, minProperties: 1 })
export const KeyUpdate = Type.Object({ name: Type.Optional(Name), is_active: Type.Optional(Type.Boolean()), ...limits }, { additionalProperties: false, minProperties: 1 })

/** The default and the longest time a rotated key's old secret keeps working (seconds) */
export const ROTATION_GRACE_DEFAULT = 86_400
export const ROTATION_GRACE_MAX = 7 * 86_400
export const RotateBody = Type.Object({
  grace_seconds: Type.Integer({ minimum: 0, maximum: ROTATION_GRACE_MAX, default: ROTATION_GRACE_DEFAULT, description: 'how long the old secret keeps working beside the new one (0: it stops at once; at most 7 days)' })
}, { additionalProperties: false })

export const KeyListQuery = Type.Object({ ...SkipLimit(500, 100), is_active: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
export const KeyList = Type.Object({ api_keys: Type.Array(KeyRecord), total: Type.Integer(), limit: Type.Integer(), skip: Type.Integer() })
/** One's own keys, as Aether's page reads them: unknown parameters ignored, not refused */
export const OwnKeyListQuery = Type.Object({ ...SkipLimit(1000, 1000), is_active: Type.Optional(Type.Boolean()) })
export const OwnKeyList = CountedArray(KeyRecord, 'newest first')

export const KeyParams = Type.Object({ id: Uuid }, { additionalProperties: false })
export const UserKeyParams = Type.Object({ user_id: Uuid }, { additionalProperties: false })
export const UserKeyIdParams = Type.Object({ user_id: Uuid, id: Uuid }, { additionalProperties: false })
export const IncludeKeyQuery = Type.Object({ include_key: Type.Boolean({ default: false }) }, { additionalProperties: false })
/** Aether's DELETE deletes (its page drops the row at once); hard=false only disables. Unknown parameters are ignored (AETHER.md §1). */
export const HardDeleteQuery = Type.Object({ hard: Type.Boolean({ default: true, description: 'false: disable instead of deleting' }) })

export { Message } from '../../http/schemas.js'

export const Toggled = Type.Object({ id: Uuid, is_active: Type.Boolean(), message: Type.String() })

export const BalanceBody = Type.Object({
  amount_usd: Type.Number({ minimum: -1e9, maximum: 1e9, description: 'positive tops up, negative deducts; never zero' })
}, { additionalProperties: false })

export const StatsQuery = Type.Object({
  start_date: Type.Optional(IsoDateTime),
  end_date: Type.Optional(IsoDateTime),
  timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 }))
}, { additionalProperties: false })

export const KeyStats = Type.Object({
  key_id: Uuid,
  key_name: Type.String(),
  total_requests: Type.Integer(),
  total_tokens: Type.Integer(),
  total_cost_usd: Type.Number(),
  avg_response_time_ms: Type.Number(),
  daily_stats: Type.Array(Type.Object({ date: Type.String({ format: 'date' }), requests: Type.Integer(), tokens: Type.Integer(), cost_usd: Type.Number() }))
})

export type KeyCreateBody = Static<typeof StandaloneKeyCreate>
export type KeyUpdateBody = Static<typeof KeyUpdate>
