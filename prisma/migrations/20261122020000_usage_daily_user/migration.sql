-- CreateTable
CREATE TABLE "usage_daily_user" (
    "day" DATE NOT NULL,
    "user_id" UUID NOT NULL,
    "provider_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_user_pkey" PRIMARY KEY ("day","user_id","provider_id")
);

-- Backfill by regrouping the finest rollup (exact: integer sums regroup freely), as
-- ingestion would have written it (src/modules/usage/rollups.ts).
INSERT INTO "usage_daily_user" ("day", "user_id", "provider_id", "requests", "errors", "total_tokens", "total_cost", "actual_total_cost")
SELECT (bucket AT TIME ZONE 'UTC')::date, user_id, provider_id, sum(requests), sum(errors), sum(total_tokens), sum(total_cost), sum(actual_total_cost)
  FROM usage_hourly
 GROUP BY 1, 2, 3;
