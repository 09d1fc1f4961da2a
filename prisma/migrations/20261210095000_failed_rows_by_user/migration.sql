-- A user's own errors distribution (analytics/errors.ts failuresOf) reads their failed rows
-- only: a few percent of the table, so a partial index stays small and costs ingestion only
-- on failures. Prisma's schema cannot express it: src/db/drift.ts EXTRA_INDEXES names it.
-- Built in the migration's transaction (SHARE lock on usage: writes wait for the build).
CREATE INDEX "usage_failed_user_idx" ON "usage" ("user_id", "created_at") INCLUDE ("provider_id", "status_code") WHERE "status" = 'failed';
