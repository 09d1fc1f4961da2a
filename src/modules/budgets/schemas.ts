import Type, { type Static } from 'typebox'
import { Nullable, Timestamp, Uuid } from '../../http/schemas.js'

/** The most budgets one key, or one user, may have (each is read on every verify of the key). */
export const MAX_BUDGETS = 20
/** A rolling window's bounds: a minute to 366 days. */
export const MIN_ROLLING_SECONDS = 60
export const MAX_ROLLING_SECONDS = 366 * 86_400

const Period = Type.Union([Type.Literal('day'), Type.Literal('week'), Type.Literal('month'), Type.Literal('rolling')], {
  description: 'day, week or month: a calendar window in time_zone; rolling: the last duration_seconds'
})

const fields = {
  period: Period,
  limit_usd: Type.Number({ exclusiveMinimum: 0, maximum: 1e9, description: 'spend plus live holds in a window may reach this, not pass it' }),
  model: Nullable(Type.String({ minLength: 1, maxLength: 200, description: 'only this model\'s spend and holds count (and holds of requests naming no model); null = every model' })),
  time_zone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone of a calendar window (default APP_TIMEZONE); not for rolling' }),
  week_start: Type.Integer({ minimum: 0, maximum: 6, description: 'a week window\'s first day, 0 = Sunday … 6 = Saturday (default 1, Monday); week only' }),
  duration_seconds: Type.Integer({ minimum: MIN_ROLLING_SECONDS, maximum: MAX_ROLLING_SECONDS, description: 'a rolling window\'s length; rolling only, and required there' })
}

export const BudgetCreate = Type.Object({
  period: fields.period,
  limit_usd: fields.limit_usd,
  model: Type.Optional(fields.model),
  time_zone: Type.Optional(fields.time_zone),
  week_start: Type.Optional(fields.week_start),
  duration_seconds: Type.Optional(fields.duration_seconds)
}, { additionalProperties: false })

/** Partial: fields of the old period that the new one has no use for are dropped; those it needs are given or defaulted. */
export const BudgetUpdate = Type.Object({
  period: Type.Optional(fields.period),
  limit_usd: Type.Optional(fields.limit_usd),
  model: Type.Optional(fields.model),
  time_zone: Type.Optional(fields.time_zone),
  week_start: Type.Optional(fields.week_start),
  duration_seconds: Type.Optional(fields.duration_seconds)
}, { additionalProperties: false, minProperties: 1 })

export const BudgetRecord = Type.Object({
  id: Uuid,
  scope: Type.Union([Type.Literal('key'), Type.Literal('user')], { description: 'a key\'s own budget, or its owner\'s over all their keys' }),
  api_key_id: Nullable(Uuid),
  user_id: Nullable(Uuid),
  model: Nullable(Type.String()),
  period: Period,
  time_zone: Nullable(Type.String()),
  week_start: Nullable(Type.Integer()),
  duration_seconds: Nullable(Type.Integer()),
  limit_usd: Type.Number(),
  spent_usd: Type.Number({ description: 'finished requests\' cost in the current window' }),
  held_usd: Type.Number({ description: 'live admission holds it counts' }),
  remaining_usd: Type.Number({ description: 'limit − spent − held; negative when a request cost more than its hold' }),
  window_start: Type.String({ format: 'date-time', description: 'the current window\'s start: a calendar window\'s local start, or now − duration_seconds' }),
  resets_at: Type.Union([Timestamp, Type.Null()], { description: 'the window\'s end, when it starts again from nothing; null for a rolling window, which slides' }),
  created_at: Timestamp
})

export const BudgetList = Type.Object({ budgets: Type.Array(BudgetRecord) })

export const KeyBudgetParams = Type.Object({ id: Uuid }, { additionalProperties: false })
export const BudgetIdParams = Type.Object({ id: Uuid, budget_id: Uuid }, { additionalProperties: false })

export type BudgetCreateBody = Static<typeof BudgetCreate>
export type BudgetUpdateBody = Static<typeof BudgetUpdate>
