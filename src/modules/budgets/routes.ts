// Admins' budgets of a key (/api/admin/api-keys/:id/budgets) and of a user
// (/api/admin/users/:id/budgets): list, create, update, delete. Each answer reports the
// budget's current window (spend, holds, reset) as gateway verify counts it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, Message } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { BudgetCreate, BudgetIdParams, BudgetList, BudgetRecord, BudgetUpdate, KeyBudgetParams, MAX_BUDGETS } from './schemas.js'
import { createBudget, deleteBudget, listBudgets, updateBudget, type BudgetOwner } from './service.js'

const tags = ['budgets']

const DOORS = [
  { kind: 'key', path: '/admin/api-keys/:id/budgets', action: 'api_key_budgets', whose: 'a key', audited: 'key_id' },
  { kind: 'user', path: '/admin/users/:id/budgets', action: 'user_budgets', whose: 'a user (over all their keys)', audited: 'target_user_id' }
] as const

const routes: FastifyPluginAsyncTypebox = async (app) => {
  const zones = { zones: app.timeZones, defaultZone: app.config.APP_TIMEZONE }

  for (const door of DOORS) {
    const owner = (id: string): BudgetOwner => ({ kind: door.kind, id })
    /** the audit row's subject: the key or user, and the budget */
    const subject = (params: { id: string, budget_id: string }, more: Record<string, unknown> = {}) => ({ [door.audited]: params.id, budget_id: params.budget_id, ...more })

    route(app, {
      method: 'GET',
      url: door.path,
      schema: { tags, summary: `The budgets of ${door.whose}`, description: 'Each budget with its current window: finished spend, live holds, what remains and when it resets.', params: KeyBudgetParams, response: { 200: BudgetList, ...errorResponses(404) } },
      action: `${door.action}.list`,
      mode: 'admin',
      handle: async ({ db, params }) => listBudgets(db, owner(params.id))
    })

    route(app, {
      method: 'POST',
      url: door.path,
      schema: { tags, summary: `Add a budget to ${door.whose}`, description: `A USD limit per calendar day, week or month in an IANA zone, or per rolling duration; optionally for one model. At most ${MAX_BUDGETS} per ${door.kind}. Gateway verify refuses a request with 402 budget_exhausted once spend plus holds would pass it.`, params: KeyBudgetParams, body: BudgetCreate, response: { 201: BudgetRecord, ...errorResponses(404, 409) } },
      action: `${door.action}.create`,
      mode: 'admin',
      mutation: true,
      status: 201,
      handle: async ({ db, params, body, audit }) => {
        audit({ [door.audited]: params.id, period: body.period, model: body.model ?? null, limit_usd: body.limit_usd })
        const created = await createBudget(db, owner(params.id), body, zones)
        audit({ budget_id: created.id })
        return created
      }
    })

    route(app, {
      method: 'PUT',
      url: `${door.path}/:budget_id`,
      schema: { tags, summary: `Change one of ${door.whose}'s budgets`, description: 'Partial: given fields replace the stored ones. Changing the period drops the fields the new one has no use for and defaults those it needs.', params: BudgetIdParams, body: BudgetUpdate, response: { 200: BudgetRecord, ...errorResponses(404) } },
      action: `${door.action}.update`,
      mode: 'admin',
      mutation: true,
      handle: async ({ db, params, body, audit }) => {
        audit(subject(params, { fields: Object.keys(body) }))
        return updateBudget(db, owner(params.id), params.budget_id, body, zones)
      }
    })

    route(app, {
      method: 'DELETE',
      url: `${door.path}/:budget_id`,
      schema: { tags, summary: `Remove one of ${door.whose}'s budgets`, description: 'The spend it counted stays in the usage; only the limit goes.', params: BudgetIdParams, response: { 200: Message, ...errorResponses(404) } },
      action: `${door.action}.delete`,
      mode: 'admin',
      mutation: true,
      handle: async ({ db, params, audit }) => {
        audit(subject(params))
        return deleteBudget(db, owner(params.id), params.budget_id)
      }
    })
  }
}

export default routes
