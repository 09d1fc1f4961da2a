-- AlterTable
ALTER TABLE "providers" ADD COLUMN     "monthly_used_month" DATE;

-- CreateTable
CREATE TABLE "usage_hourly_provider_key" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_api_key_id" UUID NOT NULL,
    "requests" BIGINT NOT NULL DEFAULT 0,
    "errors" BIGINT NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_hit_requests" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_provider_key_pkey" PRIMARY KEY ("provider_api_key_id","bucket")
);

-- Back-fill from the raw rows ingestion has already counted (finished ones, as
-- accounting/model.ts's measures count them), so the new rollup starts equal to them.
INSERT INTO "usage_hourly_provider_key" ("provider_api_key_id", "bucket", "requests", "errors", "input_tokens", "output_tokens",
  "cache_creation_tokens", "cache_read_tokens", "total_tokens", "total_cost", "actual_total_cost", "response_time_sum_ms",
  "response_time_count", "cache_creation_cost", "cache_read_cost", "cache_hit_requests")
SELECT coalesce("provider_api_key_id", '00000000-0000-0000-0000-000000000000'::uuid), date_trunc('hour', "created_at", 'UTC'),
       count(*), count(*) FILTER (WHERE "status" = 'failed'), sum("input_tokens"), sum("output_tokens"),
       sum("cache_creation_input_tokens"), sum("cache_read_input_tokens"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost"),
       coalesce(sum("response_time_ms"), 0), count("response_time_ms"), sum("cache_creation_cost"), sum("cache_read_cost"),
       count(*) FILTER (WHERE "cache_read_input_tokens" > 0)
  FROM "usage"
 WHERE "status" IN ('completed', 'failed', 'cancelled')
 GROUP BY 1, 2
 ORDER BY 1, 2;

-- This UTC month's actual cost per provider, as ingestion keeps it from now on.
UPDATE "providers" p
   SET "monthly_used" = s."cost", "monthly_used_month" = s."month"
  FROM (SELECT "provider_id", (date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC')::date AS "month", sum("actual_total_cost") AS "cost"
          FROM "usage_hourly_provider"
         WHERE "bucket" >= date_trunc('month', now(), 'UTC')
         GROUP BY 1) s
 WHERE p."id" = s."provider_id";
