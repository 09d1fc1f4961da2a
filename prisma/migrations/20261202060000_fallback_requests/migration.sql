-- AlterTable
ALTER TABLE "provider_attempts_hourly" ADD COLUMN     "fallbacks" INTEGER NOT NULL DEFAULT 0;

-- Backfill as ingestion would have written it (src/modules/accounting/rollups.ts): each
-- request with more than one executed candidate counts once, in the hour of its
-- candidates' created_at (the request's), on the nil provider (a fallback is no one
-- provider's). Reads request_candidates once; usage is not read.
INSERT INTO "provider_attempts_hourly" ("bucket", "provider_id", "fallbacks")
SELECT bucket, '00000000-0000-0000-0000-000000000000'::uuid, count(*)
  FROM (
    SELECT date_trunc('hour', min(c.created_at), 'UTC') AS bucket
      FROM request_candidates c
     WHERE c.status NOT IN ('skipped', 'available')
     GROUP BY c.request_id
    HAVING count(*) > 1
  ) f
 GROUP BY bucket
ON CONFLICT ("bucket", "provider_id") DO UPDATE SET "fallbacks" = "provider_attempts_hourly"."fallbacks" + EXCLUDED."fallbacks";
