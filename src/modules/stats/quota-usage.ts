// Aether's providers/quota-usage (issue 19): each provider with a monthly quota, its
// month's spend, what remains and when the month's rate would exhaust it — all read by
// providers/quota.ts, the one rule of a provider's month. Current state: no range.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Db } from '../../db/prisma.js'
import { errorResponses, Nullable, Timestamp, Uuid } from '../../http/schemas.js'
import { route } from '../../http/pipeline.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import { configText } from '../providers/aether.js'
import { monthlyFields, quotaUsage } from '../providers/quota.js'
import { monthlyQuotaFields } from '../providers/schemas.js'
import { Usd } from './schemas.js'

// Aether's path: query parameters are ignored, not refused (AETHER.md §1)
const QuotaUsageQuery = Type.Object({}, { description: 'none: the current UTC month' })

const QuotaUsage = Type.Object({
  providers: Type.Array(Type.Object({
    id: Uuid,
    name: Type.String(),
    quota_usd: Usd,
    used_usd: Usd,
    remaining_usd: Usd,
    usage_percent: Nullable(Type.Number({ minimum: 0 })),
    quota_expires_at: Nullable(Type.String({ description: 'Aether\'s form field, as stored (a local time without a zone, or with one)' })),
    estimated_exhaust_at: Nullable(Timestamp),
    billing_type: Type.String(),
    is_active: Type.Boolean(),
    ...monthlyQuotaFields
  }))
})

/** Providers with a monthly quota, by name. providers is a catalogue of a few rows, read whole. */
export async function quotaUsageOf (db: Db, now: Date) {
  const rows = await db.provider.findMany({ where: { monthlyQuota: { not: null } }, orderBy: [{ name: 'asc' }] })
  return {
    providers: rows.map((row) => {
      const usage = quotaUsage(row, now)
      return {
        id: row.id,
        name: row.name,
        quota_usd: nanoToUsd(row.monthlyQuota!),
        used_usd: nanoToUsd(usage.used),
        remaining_usd: nanoToUsdOrNull(usage.remaining)!,
        usage_percent: usage.percent,
        quota_expires_at: configText(row.config as Record<string, unknown> | null, 'quota_expires_at'),
        estimated_exhaust_at: usage.exhaustAt?.toISOString() ?? null,
        billing_type: row.billingType,
        is_active: row.isActive,
        ...monthlyFields(usage)
      }
    })
  }
}

const quotaUsageRoutes: FastifyPluginAsyncTypebox = async (app) => {
  route(app, {
    method: 'GET',
    url: '/admin/stats/providers/quota-usage',
    schema: {
      tags: ['stats'],
      summary: 'Each provider\'s monthly quota: spent, remaining, projected exhaustion (Aether\'s shape)',
      description: 'Providers with a monthly quota, by name. Spent is the actual (upstream, rate-multiplied) cost of the current UTC calendar month\'s finished requests; the projection extends the month\'s average spend rate and is null without spend or when the month ends first.',
      querystring: QuotaUsageQuery,
      response: { 200: QuotaUsage, ...errorResponses() }
    },
    action: 'stats.providers_quota_usage',
    mode: 'admin',
    handle: async ({ db }) => quotaUsageOf(db, new Date())
  })
}

export default quotaUsageRoutes
