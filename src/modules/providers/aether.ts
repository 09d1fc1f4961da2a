// Providers as Aether's providers page reads them (GET /api/admin/providers/summary,
// AETHER.md §11): one row per provider with its endpoints, keys and provider-specific
// prices counted, built in one statement whatever the number of providers. Aether's form
// fields that keymeter has no column for live in the provider's config.
import sql, { empty, type Sql as Fragment } from 'sql-template-tag'
import type { Db } from '../../db/prisma.js'
import { Errors } from '../../http/errors.js'
import { nanoToUsd, nanoToUsdOrNull } from '../../lib/money.js'
import { quotaUsage } from './quota.js'
import { CONFIG_FIELDS, type ProviderSummaryFilters, type ProviderUpdateBody } from './schemas.js'

type Config = Record<string, unknown>

/**
 * The config a create or update stores: the body's config (or the current one) with
 * Aether's fields set on it, a null field removed; undefined when the body touches neither.
 */
export function mergedConfig (current: Config | null, body: ProviderUpdateBody): Config | null | undefined {
  const given = CONFIG_FIELDS.filter((field) => body[field] !== undefined)
  if (body.config === undefined && given.length === 0) return undefined
  const base = body.config === undefined ? current : body.config
  if (given.length === 0) return base
  const merged: Config = { ...base }
  for (const field of given) {
    if (body[field] === null) delete merged[field]
    else merged[field] = body[field]
  }
  return Object.keys(merged).length === 0 ? null : merged
}

/** `priority` and Aether's `provider_priority` name one column: both may be given only when they agree. */
export function priorityOf (body: Pick<ProviderUpdateBody, 'priority' | 'provider_priority'>): number | undefined {
  if (body.priority !== undefined && body.provider_priority !== undefined && body.priority !== body.provider_priority) {
    throw Object.assign(new Errors.InvalidInput('body.provider_priority differs from body.priority: give one of them'), { field: 'body.provider_priority' })
  }
  return body.priority ?? body.provider_priority
}

interface SummaryRow {
  id: string
  name: string
  billing_type: 'monthly_quota' | 'pay_as_you_go' | 'free_tier'
  monthly_quota: bigint | null
  monthly_used: bigint
  monthly_used_month: string | null
  priority: number
  is_active: boolean
  config: Config | null
  created_at: Date
  updated_at: Date
  endpoints: Array<{ api_format: string, is_active: boolean }>
  total_keys: bigint
  active_keys: bigint
  total_models: bigint
}

export const configText = (config: Config | null, field: string): string | null => typeof config?.[field] === 'string' ? config[field] : null
const integer = (config: Config | null, field: string): number | null => Number.isInteger(config?.[field]) ? config![field] as number : null

function toSummary (row: SummaryRow) {
  const activeKeys = Number(row.active_keys)
  const displayName = configText(row.config, 'display_name')
  return {
    id: row.id,
    name: row.name,
    display_name: displayName === null || displayName.trim() === '' ? row.name : displayName,
    description: configText(row.config, 'description'),
    website: configText(row.config, 'website'),
    provider_priority: row.priority,
    priority: row.priority,
    billing_type: row.billing_type,
    monthly_quota_usd: nanoToUsdOrNull(row.monthly_quota),
    monthly_used_usd: nanoToUsd(quotaUsage({ monthlyQuota: row.monthly_quota, monthlyUsed: row.monthly_used, monthlyUsedMonth: row.monthly_used_month, config: row.config }, new Date()).used),
    quota_reset_day: integer(row.config, 'quota_reset_day'),
    quota_last_reset_at: configText(row.config, 'quota_last_reset_at'),
    quota_expires_at: configText(row.config, 'quota_expires_at'),
    rpm_limit: integer(row.config, 'rpm_limit'),
    rpm_used: 0,
    rpm_reset_at: null,
    is_active: row.is_active,
    total_endpoints: row.endpoints.length,
    active_endpoints: row.endpoints.filter((e) => e.is_active).length,
    total_keys: Number(row.total_keys),
    active_keys: activeKeys,
    total_models: Number(row.total_models),
    active_models: Number(row.total_models),
    avg_health_score: null,
    unhealthy_endpoints: 0,
    api_formats: row.endpoints.map((e) => e.api_format),
    endpoint_health_details: row.endpoints.map((e) => ({ api_format: e.api_format, is_active: e.is_active, health_score: null, active_keys: activeKeys })),
    config: row.config,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString()
  }
}

export type ProviderSummary = ReturnType<typeof toSummary>

const run = async <T>(db: Db, query: Fragment) => db.$queryRawUnsafe<T[]>(query.text, ...query.values)

/**
 * The summary rows of the providers `where` selects. providers is read by its primary
 * key or whole (a catalogue of a few rows); provider_endpoints through its unique
 * (provider_id, api_format) index and provider_api_keys through (provider_id), each
 * grouped once for all providers; model_prices through (model, effective_from), read
 * whole and grouped (price versions are a small table with no provider-leading index).
 */
const summarySql = (now: Date, where: Fragment, page: Fragment) => sql`
  SELECT p.id, p.name, p.billing_type::text AS billing_type, p.monthly_quota, p.monthly_used, p.monthly_used_month::text AS monthly_used_month, p.priority, p.is_active, p.config,
         p.created_at, p.updated_at, COALESCE(e.endpoints, '[]'::json) AS endpoints,
         COALESCE(k.total, 0) AS total_keys, COALESCE(k.active, 0) AS active_keys, COALESCE(m.models, 0) AS total_models
    FROM providers p
    LEFT JOIN (
      SELECT provider_id, json_agg(json_build_object('api_format', api_format, 'is_active', is_active) ORDER BY api_format) AS endpoints
        FROM provider_endpoints GROUP BY provider_id
    ) e ON e.provider_id = p.id
    LEFT JOIN (
      SELECT provider_id, count(*) AS total, count(*) FILTER (WHERE is_active AND (expires_at IS NULL OR expires_at > ${now})) AS active
        FROM provider_api_keys GROUP BY provider_id
    ) k ON k.provider_id = p.id
    LEFT JOIN (
      SELECT provider_id, count(DISTINCT model) AS models
        FROM model_prices WHERE provider_id IS NOT NULL AND effective_from <= ${now} GROUP BY provider_id
    ) m ON m.provider_id = p.id
   WHERE ${where}
   ORDER BY p.priority, p.name, p.id
   ${page}`

/** One page of summary rows and the number of providers matching, in two statements. */
export async function providerSummaries (db: Db, query: ProviderSummaryFilters, now = new Date()) {
  const where = query.is_active === undefined ? sql`TRUE` : sql`p.is_active = ${query.is_active}`
  const [rows, counted] = await Promise.all([
    run<SummaryRow>(db, summarySql(now, where, sql`LIMIT ${query.limit} OFFSET ${query.skip}`)),
    // providers (primary key): the whole catalogue
    run<{ total: bigint }>(db, sql`SELECT count(*) AS total FROM providers p WHERE ${where}`)
  ])
  return { rows: rows.map(toSummary), total: Number(counted[0]!.total) }
}

/** One provider's summary row (after a PATCH, in its transaction). */
export async function providerSummary (db: Db, id: string, now = new Date()): Promise<ProviderSummary> {
  const [row] = await run<SummaryRow>(db, summarySql(now, sql`p.id = ${id}::uuid`, empty))
  if (row === undefined) throw new Errors.NotFound('provider not found')
  return toSummary(row)
}
