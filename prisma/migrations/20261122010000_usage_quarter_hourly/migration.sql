-- CreateTable
CREATE TABLE "usage_quarter_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_quarter_hourly_pkey" PRIMARY KEY ("bucket","provider_id")
);

-- Backfill from the finished rows already ingested, as ingestion would have written
-- them (src/modules/usage/rollups.ts): one pass over usage, grouped in memory.
INSERT INTO "usage_quarter_hourly" ("bucket", "provider_id", "requests", "total_tokens", "total_cost", "actual_total_cost")
SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00'), COALESCE(provider_id, '00000000-0000-0000-0000-000000000000'),
       count(*), sum(total_tokens), sum(total_cost), sum(actual_total_cost)
  FROM usage
 WHERE status IN ('completed', 'failed', 'cancelled')
 GROUP BY 1, 2;
