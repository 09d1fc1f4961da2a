-- The tenant (src/modules/accounting/tenant.ts: a key's owner, or a standalone key itself) added to
-- the keys of the three tables keyed by a key or a scope alone, which a Citus cluster would distribute
-- by it (docs/scaling.md). Last in each key: one node's lookups keep their prefix.

-- The rate window's seconds: each key's tenant; a deleted key's seconds count for no window: dropped
ALTER TABLE "usage_key_seconds" ADD COLUMN "tenant_id" UUID;
UPDATE "usage_key_seconds" s SET "tenant_id" = CASE WHEN k."is_standalone" THEN k."id" ELSE k."user_id" END
  FROM "api_keys" k WHERE k."id" = s."api_key_id";
DELETE FROM "usage_key_seconds" WHERE "tenant_id" IS NULL;
ALTER TABLE "usage_key_seconds" ALTER COLUMN "tenant_id" SET NOT NULL,
  DROP CONSTRAINT "usage_key_seconds_pkey",
  ADD CONSTRAINT "usage_key_seconds_pkey" PRIMARY KEY ("api_key_id", "second", "tenant_id");

-- The histograms and the timelines' last requests: a user scope is its own tenant, a key scope its key's
-- (a hard-deleted key's rows went with it: accounting/corrections.ts forgetKey)
ALTER TABLE "cache_interval_hourly" ADD COLUMN "tenant_id" UUID;
UPDATE "cache_interval_hourly" h SET "tenant_id" = CASE WHEN h."scope" = 'user' THEN h."scope_id"
  ELSE (SELECT CASE WHEN k."is_standalone" THEN k."id" ELSE k."user_id" END FROM "api_keys" k WHERE k."id" = h."scope_id") END;
DELETE FROM "cache_interval_hourly" WHERE "tenant_id" IS NULL;
ALTER TABLE "cache_interval_hourly" ALTER COLUMN "tenant_id" SET NOT NULL,
  DROP CONSTRAINT "cache_interval_hourly_pkey",
  ADD CONSTRAINT "cache_interval_hourly_pkey" PRIMARY KEY ("scope", "scope_id", "bucket", "tenant_id");

ALTER TABLE "cache_timeline_tail" ADD COLUMN "tenant_id" UUID;
UPDATE "cache_timeline_tail" t SET "tenant_id" = CASE WHEN t."scope" = 'user' THEN t."scope_id"
  ELSE (SELECT CASE WHEN k."is_standalone" THEN k."id" ELSE k."user_id" END FROM "api_keys" k WHERE k."id" = t."scope_id") END;
DELETE FROM "cache_timeline_tail" WHERE "tenant_id" IS NULL;
ALTER TABLE "cache_timeline_tail" ALTER COLUMN "tenant_id" SET NOT NULL,
  DROP CONSTRAINT "cache_timeline_tail_pkey",
  ADD CONSTRAINT "cache_timeline_tail_pkey" PRIMARY KEY ("scope", "scope_id", "tenant_id");
