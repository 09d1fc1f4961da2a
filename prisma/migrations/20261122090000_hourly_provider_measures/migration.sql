-- usage_hourly_provider carries all of usage_hourly_model's measures, so the global stats
-- and the provider ranking read it (a few rows an hour) instead of provider × model ×
-- format. The DDL is Prisma's; the backfill sums usage_hourly_model per hour and provider.

-- AlterTable
ALTER TABLE "usage_hourly_provider" ADD COLUMN     "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_hit_requests" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "errors" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "input_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "output_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "response_time_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

UPDATE "usage_hourly_provider" t
   SET "errors" = m."errors", "input_tokens" = m."input_tokens", "output_tokens" = m."output_tokens",
       "cache_creation_tokens" = m."cache_creation_tokens", "cache_read_tokens" = m."cache_read_tokens",
       "cache_creation_cost" = m."cache_creation_cost", "cache_read_cost" = m."cache_read_cost",
       "response_time_sum_ms" = m."response_time_sum_ms", "response_time_count" = m."response_time_count",
       "cache_hit_requests" = m."cache_hit_requests"
  FROM (SELECT "bucket", "provider_id", sum("errors") AS "errors", sum("input_tokens") AS "input_tokens", sum("output_tokens") AS "output_tokens",
               sum("cache_creation_tokens") AS "cache_creation_tokens", sum("cache_read_tokens") AS "cache_read_tokens",
               sum("cache_creation_cost") AS "cache_creation_cost", sum("cache_read_cost") AS "cache_read_cost",
               sum("response_time_sum_ms") AS "response_time_sum_ms", sum("response_time_count") AS "response_time_count",
               sum("cache_hit_requests") AS "cache_hit_requests"
          FROM "usage_hourly_model" GROUP BY 1, 2) m
 WHERE t."bucket" = m."bucket" AND t."provider_id" = m."provider_id";
