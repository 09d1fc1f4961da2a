// Which thresholds a charge crosses, and the alert each writes: the one rule, called by
// ingestion inside the charge's transaction (the outbox). A threshold fires when the
// limit's use reaches that percent of it; it fires once per window of the limit, the
// unique index alerts (subject_kind, subject_id, limit_kind, limit_id, window_key,
// threshold) and ON CONFLICT DO NOTHING making that hold across concurrent batches.
// Each new alert queues one delivery per active webhook endpoint in the same statement.
//
// The windows (docs/alerts.md): a calendar budget's is its window (budgets/window.ts, via
// budgets/state.ts); a rolling budget slides, so it fires at most once per duration_seconds
// (epoch-aligned); a balance re-arms when topped up (its amount is part of the key); a
// total cost limit when changed; a daily cost limit each APP_TIMEZONE day, or when changed; a user's quota when reset (total_used − used moves) or
// changed; a provider's monthly quota each quota period monthly_used counts (from one
// reset day to the next), or when changed.
import sql, { empty, raw, type Sql as Fragment } from 'sql-template-tag'
import type { Sql } from '../../db/prisma.js'
import { PROVIDER_MONTH } from '../accounting/model.js'
import { finishedSpendSql } from '../accounting/read/counters.js'
import { budgetsSql } from '../budgets/state.js'

/** The end of the quota period a provider's monthly_used counts: the next reset day after monthly_used_month */
const PROVIDER_PERIOD_END = PROVIDER_MONTH.periodEndSql('p.monthly_used_month', PROVIDER_MONTH.resetDaySql('p.config'))

/** Whom a batch charged: the keys, users and providers whose limits may have moved. */
export interface Charged { keys: string[], users: string[], providers: string[] }

/** The thresholds a rule may hold: percents of the limit (above 100: overspend alerts). */
export const MIN_THRESHOLD = 1
export const MAX_THRESHOLD = 1000

/** Whether `used` has reached `threshold` percent of `limit` (numeric: a bigint × 100 may overflow). */
export const reachedSql = (used: Fragment, limit: Fragment, threshold: Fragment): Fragment =>
  sql`(${used})::numeric * 100 >= (${limit})::numeric * (${threshold})`

/** The active rules that watch a charged subject, its own or its kind's: alert_rules (subject_kind, limit_kind, subject_id) */
const rulesSql = (charged: Charged): Fragment => sql`
      SELECT subject_kind, subject_id, limit_kind, thresholds FROM alert_rules
       WHERE is_active AND ((subject_kind = 'api_key' AND (subject_id IS NULL OR subject_id = ANY(${charged.keys}::uuid[])))
          OR (subject_kind = 'user' AND (subject_id IS NULL OR subject_id = ANY(${charged.users}::uuid[])))
          OR (subject_kind = 'provider' AND (subject_id IS NULL OR subject_id = ANY(${charged.providers}::uuid[]))))`

/**
 * Every limit of the charged subjects that some active rule watches, with its window key,
 * its use and its amount. Served by alert_rules (subject_kind, limit_kind, subject_id), the
 * subjects' primary keys, and budgets (api_key_id) / (user_id) through budgetsSql.
 */
function watchedLimitsSql (charged: Charged, now: Date, timeZone: string | undefined): Fragment {
  const keys = sql`${charged.keys}::uuid[]`
  const users = sql`${charged.users}::uuid[]`
  const providers = sql`${charged.providers}::uuid[]`
  const at = sql`${now}::timestamptz`
  const watched = (subject: string, limit: string) => sql`EXISTS (SELECT 1 FROM rules WHERE subject_kind = ${subject}::"AlertSubjectKind" AND limit_kind = ${limit}::"AlertLimitKind")`
  const budgets = budgetsSql(sql`(b.api_key_id = ANY(${keys}) OR b.user_id = ANY(${users}))`, at)
  return sql`
    rules AS (${rulesSql(charged)}), limits AS (
      SELECT 'api_key'::"AlertSubjectKind" AS subject_kind, k.id AS subject_id, 'balance'::"AlertLimitKind" AS limit_kind, k.id AS limit_id,
             'balance:' || k.current_balance AS window_key, NULL::timestamptz AS window_start, NULL::timestamptz AS window_end,
             k.balance_used AS used, k.current_balance AS limit_amount
        FROM api_keys k WHERE k.id = ANY(${keys}) AND k.current_balance IS NOT NULL AND ${watched('api_key', 'balance')}
      UNION ALL
      SELECT 'api_key', k.id, 'total_cost', k.id, 'total:' || k.total_cost_limit, NULL, NULL, k.total_cost, k.total_cost_limit
        FROM api_keys k WHERE k.id = ANY(${keys}) AND k.total_cost_limit IS NOT NULL AND ${watched('api_key', 'total_cost')}
      ${timeZone === undefined ? empty : dailyCostSql(keys, at, timeZone, watched('api_key', 'daily_cost'))}
      UNION ALL
      SELECT 'user', u.id, 'quota', u.id, 'quota:' || u.quota || ':reset:' || (u.total_used - u.used), NULL, NULL, u.used, u.quota
        FROM users u WHERE u.id = ANY(${users}) AND u.quota IS NOT NULL AND ${watched('user', 'quota')}
      UNION ALL
      -- monthly_used counts the quota period starting on monthly_used_month, the latest a charge fell in; it ends on the next reset day (PROVIDER_MONTH)
      SELECT 'provider', p.id, 'quota', p.id, 'period:' || to_char(p.monthly_used_month, 'YYYY-MM-DD') || ':quota:' || p.monthly_quota,
             p.monthly_used_month::timestamp AT TIME ZONE 'UTC', ${raw(PROVIDER_PERIOD_END)}::timestamp AT TIME ZONE 'UTC', p.monthly_used, p.monthly_quota
        FROM providers p
       WHERE p.id = ANY(${providers}) AND p.monthly_quota IS NOT NULL AND p.monthly_used_month IS NOT NULL AND ${watched('provider', 'quota')}
      UNION ALL
      -- a budget's window and its finished spend by budgets/state.ts (holds are not spend: they alert nothing)
      SELECT CASE WHEN bs.api_key_id IS NULL THEN 'user' ELSE 'api_key' END::"AlertSubjectKind", COALESCE(bs.api_key_id, bs.user_id), 'budget', bs.id,
             CASE WHEN bs.period = 'rolling' THEN 'rolling:' || floor(extract(epoch FROM ${at}) / bs.duration_seconds)::bigint
                  ELSE 'window:' || floor(extract(epoch FROM bs.window_start) * 1000)::bigint END,
             CASE WHEN bs.period = 'rolling' THEN to_timestamp(floor(extract(epoch FROM ${at}) / bs.duration_seconds) * bs.duration_seconds) ELSE bs.window_start END,
             CASE WHEN bs.period = 'rolling' THEN to_timestamp((floor(extract(epoch FROM ${at}) / bs.duration_seconds) + 1) * bs.duration_seconds) ELSE bs.window_end END,
             bs.spent, bs."limit"
        FROM json_to_recordset(CASE WHEN EXISTS (SELECT 1 FROM rules WHERE limit_kind = 'budget') THEN ${budgets} ELSE '[]'::json END)
          AS bs(id uuid, api_key_id uuid, user_id uuid, period text, duration_seconds int, "limit" bigint, window_start timestamptz, window_end timestamptz, spent bigint)
    )`
}

/**
 * A key's daily cost limit: its finished spend in the APP_TIMEZONE day of the batch's clock,
 * summed as verify's today_cost is (finishedSpendSql), once per local day and limit amount.
 */
function dailyCostSql (keys: Fragment, at: Fragment, timeZone: string, watched: Fragment): Fragment {
  return sql`UNION ALL
      SELECT 'api_key', k.id, 'daily_cost', k.id, 'day:' || to_char(d.local_day, 'YYYY-MM-DD') || ':limit:' || k.daily_cost_limit,
             d.midnight, d.next_midnight, ${finishedSpendSql({ column: 'api_key_id', id: raw('k.id') }, raw('d.midnight'), raw('d.next_midnight'))}, k.daily_cost_limit
        FROM api_keys k
       CROSS JOIN LATERAL (SELECT l.local_day, l.local_day AT TIME ZONE ${timeZone}::text AS midnight, (l.local_day + interval '1 day') AT TIME ZONE ${timeZone}::text AS next_midnight
                             FROM (SELECT date_trunc('day', ${at} AT TIME ZONE ${timeZone}::text) AS local_day) l) d
       WHERE k.id = ANY(${keys}) AND k.daily_cost_limit IS NOT NULL AND ${watched}`
}

/** The thresholds each watched limit has reached: the rules' thresholds, of the subject's own rules and its kind's. */
function crossedSql (): Fragment {
  return sql`crossed AS (
      SELECT DISTINCT l.subject_kind, l.subject_id, l.limit_kind, l.limit_id, l.window_key, l.window_start, l.window_end, l.used, l.limit_amount, t.threshold
        FROM limits l
        JOIN rules r ON r.subject_kind = l.subject_kind AND r.limit_kind = l.limit_kind AND (r.subject_id IS NULL OR r.subject_id = l.subject_id)
       CROSS JOIN LATERAL unnest(r.thresholds) AS t(threshold)
       WHERE l.limit_amount > 0 AND ${reachedSql(raw('l.used'), raw('l.limit_amount'), raw('t.threshold'))}
    )`
}

/**
 * Writes the alerts of the thresholds the batch's charges reached (each at most once per
 * window, whichever transaction commits it first) and queues their deliveries. Call inside
 * the charge's transaction, after the charges are written; `timeZone` (APP_TIMEZONE) cuts the
 * days of the keys' daily cost limits, which are not watched without it. Returns how many alerts fired.
 */
export async function fireAlerts (db: Sql, charged: Charged, now: Date, timeZone?: string): Promise<number> {
  if (charged.keys.length + charged.users.length + charged.providers.length === 0) return 0
  // the statement below costs its planning (~6 ms, a custom plan each call) even when no rule watches anyone
  const watching = sql`SELECT EXISTS (${rulesSql(charged)}) AS any`
  if ((await db.query<{ any: boolean }>(watching.text, watching.values)).rows[0]?.any !== true) return 0
  const query = sql`
    WITH ${watchedLimitsSql(charged, now, timeZone)}, ${crossedSql()},
    fired AS (
      INSERT INTO alerts (subject_kind, subject_id, limit_kind, limit_id, window_key, window_start, window_end, threshold, used, limit_amount, created_at)
      SELECT subject_kind, subject_id, limit_kind, limit_id, window_key, window_start, window_end, threshold, used, limit_amount, ${now}::timestamptz
        FROM crossed
       -- one order for every batch: two batches firing the same alerts wait for each other instead of deadlocking
       ORDER BY subject_kind, subject_id, limit_kind, limit_id, window_key, threshold
      ON CONFLICT (subject_kind, subject_id, limit_kind, limit_id, window_key, threshold) DO NOTHING
      RETURNING id
    ), queued AS (
      INSERT INTO alert_deliveries (alert_id, endpoint_id, next_attempt_at, created_at, updated_at)
      SELECT f.id, e.id, ${now}::timestamptz, ${now}::timestamptz, ${now}::timestamptz FROM fired f CROSS JOIN webhook_endpoints e WHERE e.is_active
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM fired)::int AS fired, (SELECT count(*) FROM queued)::int AS queued`
  const { rows } = await db.query<{ fired: number }>(query.text, query.values)
  return rows[0]!.fired
}
