-- A key's daily_cost_limit is a limit alert rules can watch (per APP_TIMEZONE day)
ALTER TYPE "AlertLimitKind" ADD VALUE 'daily_cost';
