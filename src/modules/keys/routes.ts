// Three doors to the same keys: admins' standalone keys (/api/admin/api-keys, any
// key by id), admins acting on one user's keys (/api/admin/users/:user_id/api-keys),
// and users' own keys (/api/users/me/api-keys). A key outside the caller's scope is
// a 404, never a hint that it exists.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors } from '../../http/errors.js'
import { errorResponses, sendTotal } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { usdToNano } from '../../lib/money.js'
import { dateRange } from '../../lib/time.js'
import { findUser } from '../users/service.js'
import { keyBudgets } from '../budgets/service.js'
import {
  BalanceBody, HardDeleteQuery, IncludeKeyQuery, KeyCreate, KeyDetail, KeyList, KeyListQuery, KeyMaybeSecret, KeyParams, KeyRecord,
  KeyStats, KeyUpdate, KeyWithSecret, Message, OwnKeyCreate, OwnKeyList, OwnKeyListQuery, OwnKeyUpdate, RotateBody, StandaloneKeyCreate, StatsQuery, Toggled, UserKeyIdParams, UserKeyParams
} from './schemas.js'
import { adjustBalance, createKey, deleteKey, findKey, keyRecord, listKeys, revealKey, rotateKey, toggleKey, updateKey } from './service.js'
import { keyStats } from './stats.js'

const tags = ['api keys']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  // a rotation's body is optional (the grace period only): a bodyless POST, with or without a JSON content type, is {}
  app.addHook('preValidation', async (request) => { if (request.body === undefined && request.routeOptions.url?.endsWith('/rotate') === true) request.body = {} })

  // ---- admin: standalone keys, and any key by id ----
  route(app, {
    method: 'GET',
    url: '/admin/api-keys',
    schema: { tags, summary: 'List standalone keys', description: 'Keys with no user (standalone), with their balance, usage totals and limits. Paged with skip and limit; filter with is_active.', querystring: KeyListQuery, response: { 200: KeyList, ...errorResponses() } },
    action: 'api_keys.list',
    mode: 'admin',
    handle: async ({ db, query }) => listKeys(db, { standalone: true }, query)
  })

  route(app, {
    method: 'POST',
    url: '/admin/api-keys',
    schema: { tags, summary: 'Create a standalone key (the key is shown once)', description: 'A standalone key has its own USD balance (initial_balance_usd) instead of a user\'s quota. The full key is in this answer only: store it now.', body: StandaloneKeyCreate, response: { 201: KeyWithSecret, ...errorResponses() } },
    action: 'api_keys.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, user, audit }) => {
      const created = await createKey(db, app.keyring, user.id, body, true)
      audit({ key_id: created.id, name: created.name, standalone: true, initial_balance_usd: created.current_balance_usd })
      return created
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/api-keys/:id',
    schema: { tags, summary: 'Get a key with its budgets; include_key=true also returns the full key (audited as api_keys.reveal)', description: 'Any key, standalone or a user\'s, with its budgets and their current windows. With include_key=true the full key is decrypted and returned, and the call is audited as api_keys.reveal.', params: KeyParams, querystring: IncludeKeyQuery, response: { 200: KeyDetail, ...errorResponses(404) } },
    action: 'api_keys.get',
    mode: 'admin',
    handle: async ({ db, params, query, audit }) => {
      const row = await findKey(db, params.id, {})
      const detail = { ...await keyRecord(db, row), budgets: await keyBudgets(db, row.id) }
      if (!query.include_key) return detail
      audit({ key_id: row.id }, 'api_keys.reveal')
      return { ...detail, key: revealKey(app.keyring, row) }
    }
  })

  route(app, {
    method: 'PUT',
    url: '/admin/api-keys/:id',
    schema: { tags, summary: 'Update a key (partial; null clears; [] allows all)', description: 'Only the fields given change; null clears a limit, an empty allow-list allows everything. The answer is the key as stored.', params: KeyParams, body: KeyUpdate, response: { 200: KeyRecord, ...errorResponses(404) } },
    action: 'api_keys.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ key_id: params.id, fields: Object.keys(body) })
      return keyRecord(db, await updateKey(db, params.id, {}, body))
    }
  })

  route(app, {
    method: 'PATCH',
    url: '/admin/api-keys/:id',
    schema: { tags, summary: 'Enable or disable a key', description: 'Flips is_active. A disabled key is refused by verify with key_disabled; its usage stays.', params: KeyParams, response: { 200: Toggled, ...errorResponses(404) } },
    action: 'api_keys.toggle',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      const toggled = await toggleKey(db, params.id, {})
      audit({ key_id: params.id, is_active: toggled.is_active })
      return toggled
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/api-keys/:id',
    schema: { tags, summary: 'Delete a key (usage keeps its history, without the key); hard=false only disables it', description: 'By default the key is deleted for good and its usage rows keep their history without it. With hard=false it is only disabled and can be enabled again.', params: KeyParams, querystring: HardDeleteQuery, response: { 200: Message, ...errorResponses(404) } },
    action: 'api_keys.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, query, audit }) => {
      audit({ key_id: params.id, hard: query.hard })
      return deleteKey(db, params.id, {}, query.hard)
    }
  })

  route(app, {
    method: 'PATCH',
    url: '/admin/api-keys/:id/balance',
    schema: { tags, summary: 'Top up (positive) or deduct (negative) a standalone key\'s balance', description: 'amount_usd is added to the balance (negative deducts); zero is refused. Only standalone keys have a balance: a user\'s key answers not_standalone.', params: KeyParams, body: BalanceBody, response: { 200: KeyRecord, ...errorResponses(404) } },
    action: 'api_keys.adjust_balance',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      const amount = usdToNano(body.amount_usd)
      if (amount === 0n) throw Object.assign(new Errors.InvalidInput('body.amount_usd must not be zero'), { field: 'body.amount_usd' })
      audit({ key_id: params.id, amount_usd: body.amount_usd })
      return keyRecord(db, await adjustBalance(db, params.id, amount))
    }
  })

  route(app, {
    method: 'POST',
    url: '/admin/api-keys/:id/rotate',
    schema: { tags, summary: 'Rotate a key: a new secret (shown once); the old one keeps working for grace_seconds', description: 'Any key, standalone or a user\'s. The answer holds the new full key, shown this once. The old secret keeps verifying until previous_key_expires_at (grace_seconds, 0 to 604800; no body or {} takes the default, 86400); a second rotation ends the first one\'s old secret at once. Limits, usage and id stay.', params: KeyParams, body: RotateBody, response: { 200: KeyWithSecret, ...errorResponses(404) } },
    action: 'api_keys.rotate',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ key_id: params.id, grace_seconds: body.grace_seconds })
      return rotateKey(db, app.keyring, params.id, {}, body.grace_seconds)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/api-keys/:id/stats',
    schema: { tags, summary: 'A key\'s totals and daily usage (days cut in `timezone`)', description: 'All-time totals and one row per day of the range (default: the last 30 days, at most 366), days cut in `timezone` (default APP_TIMEZONE).', params: KeyParams, querystring: StatsQuery, response: { 200: KeyStats, ...errorResponses(404) } },
    action: 'api_keys.stats',
    mode: 'admin',
    handle: async ({ db, params, query }) => {
      const timeZone = app.timeZones.require(query.timezone ?? app.config.APP_TIMEZONE)
      const range = dateRange(query, 30, 366)
      return keyStats(db, await findKey(db, params.id, {}), range, timeZone)
    }
  })

  // ---- admin: one user's keys ----
  route(app, {
    method: 'GET',
    url: '/admin/users/:user_id/api-keys',
    schema: { tags, summary: 'A user\'s keys', description: '404 when the user does not exist. Paged with skip and limit; filter with is_active.', params: UserKeyParams, querystring: KeyListQuery, response: { 200: KeyList, ...errorResponses(404) } },
    action: 'user_api_keys.list',
    mode: 'admin',
    handle: async ({ db, params, query }) => {
      await findUser(db, params.user_id)
      return listKeys(db, { userId: params.user_id }, query)
    }
  })

  route(app, {
    method: 'POST',
    url: '/admin/users/:user_id/api-keys',
    schema: { tags, summary: 'Create a key for a user (the key is shown once)', description: 'The key spends from the user\'s quota. The full key is in this answer only: store it now.', params: UserKeyParams, body: KeyCreate, response: { 201: KeyWithSecret, ...errorResponses(404) } },
    action: 'user_api_keys.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, params, body, audit }) => {
      await findUser(db, params.user_id)
      const created = await createKey(db, app.keyring, params.user_id, body, false)
      audit({ key_id: created.id, target_user_id: params.user_id, name: created.name })
      return created
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/users/:user_id/api-keys/:id',
    schema: { tags, summary: 'One of a user\'s keys', description: '404 when the key is not this user\'s, so the URL says nothing about other keys.', params: UserKeyIdParams, response: { 200: KeyRecord, ...errorResponses(404) } },
    action: 'user_api_keys.get',
    mode: 'admin',
    handle: async ({ db, params }) => keyRecord(db, await findKey(db, params.id, { userId: params.user_id }))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/users/:user_id/api-keys/:id',
    schema: { tags, summary: 'Update one of a user\'s keys', description: 'Only the fields given change; null clears a limit, an empty allow-list allows everything. 404 when the key is not this user\'s.', params: UserKeyIdParams, body: KeyUpdate, response: { 200: KeyRecord, ...errorResponses(404) } },
    action: 'user_api_keys.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, audit }) => {
      audit({ key_id: params.id, target_user_id: params.user_id, fields: Object.keys(body) })
      return keyRecord(db, await updateKey(db, params.id, { userId: params.user_id }, body))
    }
  })

  route(app, {
    method: 'PATCH',
    url: '/admin/users/:user_id/api-keys/:id',
    schema: { tags, summary: 'Enable or disable one of a user\'s keys', description: 'Flips is_active. 404 when the key is not this user\'s.', params: UserKeyIdParams, response: { 200: Toggled, ...errorResponses(404) } },
    action: 'user_api_keys.toggle',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      const toggled = await toggleKey(db, params.id, { userId: params.user_id })
      audit({ key_id: params.id, target_user_id: params.user_id, is_active: toggled.is_active })
      return toggled
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/users/:user_id/api-keys/:id',
    schema: { tags, summary: 'Delete one of a user\'s keys (usage keeps its history, without the key); hard=false only disables it', description: 'By default deleted for good, usage rows keep their history without it; hard=false only disables it. 404 when the key is not this user\'s.', params: UserKeyIdParams, querystring: HardDeleteQuery, response: { 200: Message, ...errorResponses(404) } },
    action: 'user_api_keys.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, query, audit }) => {
      audit({ key_id: params.id, target_user_id: params.user_id, hard: query.hard })
      return deleteKey(db, params.id, { userId: params.user_id }, query.hard)
    }
  })

  // ---- users: their own keys ----
  route(app, {
    method: 'GET',
    url: '/users/me/api-keys',
    schema: { tags, summary: 'Your keys, newest first (a bare array, as Aether\'s page reads it; the total in X-Total-Count)', description: 'Only your own keys; another user\'s key never appears. skip and limit page the array.', querystring: OwnKeyListQuery, response: { 200: OwnKeyList, ...errorResponses() } },
    action: 'own_api_keys.list',
    mode: 'user',
    handle: async ({ db, user, query, reply }) => {
      const { api_keys: keys, total } = await listKeys(db, { userId: user.id }, query)
      sendTotal(reply, total)
      return keys
    }
  })

  route(app, {
    method: 'POST',
    url: '/users/me/api-keys',
    schema: { tags, summary: 'Create a key for yourself (shown once)', description: 'A name, and optionally the allow-lists (allowed_models, allowed_providers, allowed_api_formats, allowed_ips, allowed_user_agents), checked as an admin\'s are; limits, balance and expiry are set by an admin. The full key is in this answer only: store it now.', body: OwnKeyCreate, response: { 201: KeyWithSecret, ...errorResponses() } },
    action: 'own_api_keys.create',
    mode: 'user',
    mutation: true,
    status: 201,
    handle: async ({ db, user, body, audit }) => {
      const created = await createKey(db, app.keyring, user.id, body, false)
      audit({ key_id: created.id, name: created.name })
      return created
    }
  })

  route(app, {
    method: 'GET',
    url: '/users/me/api-keys/:id',
    schema: { tags, summary: 'One of your keys; include_key=true also returns the full key (audited as own_api_keys.reveal)', description: '404 for a key that is not yours. With include_key=true the full key is returned and the call is audited as own_api_keys.reveal.', params: KeyParams, querystring: IncludeKeyQuery, response: { 200: KeyMaybeSecret, ...errorResponses(404) } },
    action: 'own_api_keys.get',
    mode: 'user',
    handle: async ({ db, user, params, query, audit }) => {
      const row = await findKey(db, params.id, { userId: user.id })
      if (!query.include_key) return keyRecord(db, row)
      audit({ key_id: row.id }, 'own_api_keys.reveal')
      return { ...await keyRecord(db, row), key: revealKey(app.keyring, row) }
    }
  })

  route(app, {
    method: 'PUT',
    url: '/users/me/api-keys/:id',
    schema: { tags, summary: 'Rename one of your keys or set its allow-lists (partial; null or [] allows all)', description: 'Only the fields given change: name, allowed_models, allowed_providers (ids or names, stored as ids), allowed_api_formats, allowed_ips (addresses or CIDRs) and allowed_user_agents (substrings), validated as an admin\'s are. They narrow the key only: your own allow-lists still apply. Limits stay an admin\'s (a 400). 404 for a key that is not yours.', params: KeyParams, body: OwnKeyUpdate, response: { 200: KeyRecord, ...errorResponses(404) } },
    action: 'own_api_keys.update',
    mode: 'user',
    mutation: true,
    handle: async ({ db, user, params, body, audit }) => {
      audit({ key_id: params.id, fields: Object.keys(body) })
      return keyRecord(db, await updateKey(db, params.id, { userId: user.id }, body))
    }
  })

  route(app, {
    method: 'PATCH',
    url: '/users/me/api-keys/:id',
    schema: { tags, summary: 'Enable or disable one of your keys', description: 'Flips is_active. 404 for a key that is not yours.', params: KeyParams, response: { 200: Toggled, ...errorResponses(404) } },
    action: 'own_api_keys.toggle',
    mode: 'user',
    mutation: true,
    handle: async ({ db, user, params, audit }) => {
      const toggled = await toggleKey(db, params.id, { userId: user.id })
      audit({ key_id: params.id, is_active: toggled.is_active })
      return toggled
    }
  })

  route(app, {
    method: 'POST',
    url: '/users/me/api-keys/:id/rotate',
    schema: { tags, summary: 'Rotate one of your keys: a new secret (shown once); the old one keeps working for grace_seconds', description: 'The answer holds the new full key, shown this once. The old secret keeps verifying until previous_key_expires_at (grace_seconds, 0 to 604800; no body or {} takes the default, 86400); a second rotation ends the first one\'s old secret at once. 404 for a key that is not yours.', params: KeyParams, body: RotateBody, response: { 200: KeyWithSecret, ...errorResponses(404) } },
    action: 'own_api_keys.rotate',
    mode: 'user',
    mutation: true,
    handle: async ({ db, user, params, body, audit }) => {
      audit({ key_id: params.id, grace_seconds: body.grace_seconds })
      return rotateKey(db, app.keyring, params.id, { userId: user.id }, body.grace_seconds)
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/users/me/api-keys/:id',
    schema: { tags, summary: 'Delete one of your keys (usage keeps its history)', description: 'The key is deleted for good; its usage rows stay, without it. 404 for a key that is not yours.', params: KeyParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'own_api_keys.delete',
    mode: 'user',
    mutation: true,
    handle: async ({ db, user, params, audit }) => {
      audit({ key_id: params.id })
      return deleteKey(db, params.id, { userId: user.id }, true)
    }
  })
}

export default routes
