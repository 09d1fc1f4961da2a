import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, Message } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { TokenCreate, TokenCreated, TokenIdParams, TokenList, TokenListQuery } from './schemas.js'
import { createToken, listTokens, revokeToken } from './service.js'

const tags = ['management tokens']

const routes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/users/me/management-tokens',
    schema: { tags, summary: 'Your management tokens', description: 'Only your tokens, never their secrets. Signed-in sessions only: a management token cannot list tokens.', querystring: TokenListQuery, response: { 200: TokenList, ...errorResponses() } },
    action: 'management_tokens.list_own',
    mode: 'management',
    handle: async ({ db, user, query }) => listTokens(db, { userId: user.id }, query)
  })

  route(app, {
    method: 'POST',
    url: '/users/me/management-tokens',
    schema: { tags, summary: 'Create a management token (shown once; at most 20)', description: 'A management token (kmm_...) acts as you on the admin or user API, for scripts. At most 20 per user (409 beyond). The token is in this answer only.', body: TokenCreate, response: { 201: TokenCreated, ...errorResponses(409) } },
    action: 'management_tokens.create',
    mode: 'management',
    mutation: true,
    status: 201,
    handle: async ({ db, user, body, audit }) => {
      const created = await createToken(db, app.keyring, user.id, body)
      audit({ token_id: created.id, name: created.name })
      return created
    }
  })

  route(app, {
    method: 'DELETE',
    url: '/users/me/management-tokens/:id',
    schema: { tags, summary: 'Revoke one of your management tokens', description: 'The token stops working at once. 404 for a token that is not yours.', params: TokenIdParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'management_tokens.revoke_own',
    mode: 'management',
    mutation: true,
    handle: async ({ db, user, params, audit }) => {
      audit({ token_id: params.id })
      await revokeToken(db, params.id, user.id)
      return { message: 'management token revoked' }
    }
  })

  route(app, {
    method: 'GET',
    url: '/admin/management-tokens',
    schema: { tags, summary: 'All management tokens', description: 'Every user\'s tokens, never their secrets. Filter by user_id; paged with skip and limit.', querystring: TokenListQuery, response: { 200: TokenList, ...errorResponses() } },
    action: 'management_tokens.list',
    mode: 'admin',
    handle: async ({ db, query }) => listTokens(db, { userId: query.user_id }, query)
  })

  route(app, {
    method: 'DELETE',
    url: '/admin/management-tokens/:id',
    schema: { tags, summary: 'Revoke any management token', description: 'The token stops working at once, whoever owns it.', params: TokenIdParams, response: { 200: Message, ...errorResponses(404) } },
    action: 'management_tokens.revoke',
    mode: 'admin',
    mutation: true,
    handle: async ({ db, params, audit }) => {
      audit({ token_id: params.id })
      await revokeToken(db, params.id)
      return { message: 'management token revoked' }
    }
  })
}

export default routes
