import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, Message, sendTotal } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import Type from 'typebox'
import { nanoToUsd } from '../../lib/money.js'
import { OwnProfileUpdate, PasswordChange, Preferences, PreferencesUpdate, Profile, QuotaReset, UserCreate, UserIdParams, UserList, UserListQuery, UserRecord, UserUpdate } from './schemas.js'
import { changeOwnPassword, createUser, deleteUser, findUser, listUsers, resetQuota, toPreferences, toProfile, toUserRecord, updateOwnProfile, updatePreferences, updateUser, userRecord, userRecords } from './service.js'

const tags = ['users']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/users',
    schema: { tags, summary: 'List users (a bare array, as Aether\'s page reads it; the total in X-Total-Count)', description: 'Filter by role and is_active; skip and limit page the array.', querystring: UserListQuery, response: { 200: UserList, ...errorResponses() } },
    action: 'users.list',
    mode: 'admin',
    handle: async ({ db, query, reply }) => {
      const { users, total } = await listUsers(db, query)
      sendTotal(reply, total)
      return userRecords(db, users)
    }
  })

  route(app, {
    method: 'POST',
    url: '/admin/users',
    schema: { tags, summary: 'Create a user', description: 'The username must be unique, and the email when given (409). quota_usd limits what all the user\'s keys spend together; null is unlimited.', body: UserCreate, response: { 201: UserRecord, ...errorResponses(409) } },
    action: 'users.create',
    mode: 'admin',
    mutation: true,
    status: 201,
    handle: async ({ db, body, audit }) => {
      const user = await createUser(db, body)
      audit({ target_user_id: user.id, username: user.username, role: user.role })
      return userRecord(db, user)
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/users/:id',
    schema: { tags, summary: 'Get a user', description: '404 when no user has this id (a deleted user included).', params: UserIdParams, response: { 200: UserRecord, ...errorResponses(404) } },
    action: 'users.get',
    mode: 'admin',
    handle: async ({ db, params }) => userRecord(db, await findUser(db, params.id))
  })

  route(app, {
    method: 'PUT',
    url: '/admin/users/:id',
    schema: { tags, summary: 'Update a user (partial; null clears)', description: 'Only the fields given change; null clears a limit or the email.', params: UserIdParams, body: UserUpdate, response: { 200: UserRecord, ...errorResponses(404, 409) } },
    action: 'users.update',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, body, user, audit }) => {
      audit({ target_user_id: params.id, fields: Object.keys(body) })
      return userRecord(db, await updateUser(db, params.id, body, user.id))
    }
  })

  // Aether's "reset quota" button: no body (an empty one or {} is fine too)
  route(app, {
    method: 'PATCH',
    url: '/admin/users/:id/quota',
    schema: { tags, summary: 'Reset a user\'s quota: used goes to 0, the all-time total stays', description: 'The used amount goes back to zero; the all-time totals of the user and their keys are kept.', params: UserIdParams, response: { 200: QuotaReset, ...errorResponses(404) } },
    action: 'users.quota_reset',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      const { before, user } = await resetQuota(db, params.id)
      audit({ target_user_id: params.id, used_usd_before: nanoToUsd(before) })
      const record = toUserRecord(user)
      return { message: 'quota reset', user_id: user.id, quota_usd: record.quota_usd, used_usd: record.used_usd, total_usd: record.total_usd }
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/users/:id',
    schema: { tags, summary: 'Delete a user (soft: history is kept)', description: 'The user is disabled and hidden, and their management tokens and keys stop working; usage and audit history stay.', params: UserIdParams, response: { 200: Message, ...errorResponses(404, 409) } },
    action: 'users.delete',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, user, audit }) => {
      audit({ target_user_id: params.id })
      await deleteUser(db, params.id, user.id)
      return { message: 'user deleted' }
    }
  })

  route(app, {
    method: 'GET',
    url: '/users/me',
    schema: { tags, summary: 'Your profile', description: 'Your account as an admin sees it in the user list.', response: { 200: Profile, ...errorResponses() } },
    action: 'users.me',
    mode: 'user',
    handle: async ({ db, user }) => toProfile(await findUser(db, user.id))
  })

  // Aether's settings page: one's own name and email, password and display preferences
  route(app, {
    method: 'PUT',
    url: '/users/me',
    schema: { tags, summary: 'Change your username or email', description: 'Only the fields given change; a username or email taken by another user is a 409.', body: OwnProfileUpdate, response: { 200: Message, ...errorResponses(409) } },
    action: 'users.me.update',
    mode: 'user',
    mutation: true,
    handle: async ({ db, body, user, audit }) => {
      audit({ fields: Object.keys(body) })
      await updateOwnProfile(db, user.id, body)
      return { message: 'profile updated' }
    }
  })

  route(app, {
    method: 'PATCH',
    url: '/users/me/password',
    schema: {
      tags,
      summary: 'Change your password (your other sessions end; this one stays)', description: 'The current password is required. Every other session of yours ends; the one making the call stays signed in.',
      body: PasswordChange,
      response: { 200: Message, ...errorResponses() }
    },
    action: 'users.me.password',
    mode: 'user',
    mutation: true,
    handle: async ({ db, body, user, principal }) => {
      await changeOwnPassword(db, user.id, body, principal.kind === 'session' ? principal.sessionId : undefined)
      return { message: 'password changed' }
    }
  })

  route(app, {
    method: 'GET',
    url: '/users/me/preferences',
    schema: { tags, summary: 'Your dashboard preferences', description: 'Stored for the dashboard; keymeter does not act on them.', response: { 200: Preferences, ...errorResponses() } },
    action: 'users.me.preferences',
    mode: 'user',
    handle: async ({ db, user }) => toPreferences((await findUser(db, user.id)).preferences)
  })

  route(app, {
    method: 'PUT',
    url: '/users/me/preferences',
    schema: { tags, summary: 'Change your dashboard preferences (absent keys unchanged, null clears)', description: 'Keys left out keep their value; null clears one.', body: PreferencesUpdate, response: { 200: Type.Object({ ...Message.properties, preferences: Preferences }), ...errorResponses() } },
    action: 'users.me.preferences.update',
    mode: 'user',
    mutation: true,
    handle: async ({ db, body, user, audit }) => {
      audit({ fields: Object.keys(body) })
      return { message: 'preferences updated', preferences: await updatePreferences(db, user.id, body) }
    }
  })
}

export default routes
