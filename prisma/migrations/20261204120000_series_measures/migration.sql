-- The analytics time series' measures in the hourly rollups (and usage_daily_model, which
-- sums the same list): time to first byte (sum and count) and the cache writes by TTL.
-- The DDL is Prisma's; the backfill sums the finished raw rows into usage_hourly and
-- usage_hourly_provider_key (the tables summed from raw rows), then regroups the others
-- from them, as the seed's bulk load does (accounting/bulk.ts). A deleted provider's
-- rows (usage.provider_id set NULL, usage_hourly keeping its id) find no rollup row and
-- stay zero in these four columns.

-- AlterTable
ALTER TABLE "usage_hourly" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_hourly_model" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_daily_model" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_hourly_provider" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_hourly_provider_key" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

UPDATE "usage_hourly" t
   SET "first_byte_time_sum_ms" = s."fb_sum", "first_byte_time_count" = s."fb_count",
       "cache_creation_5m_tokens" = s."w5", "cache_creation_1h_tokens" = s."w1"
  FROM (SELECT date_trunc('hour', "created_at", 'UTC') AS "bucket", coalesce("user_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "user_id",
               coalesce("api_key_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "api_key_id",
               coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "provider_id", "model", coalesce("api_format", '') AS "api_format",
               coalesce(sum("first_byte_time_ms"), 0) AS "fb_sum", count("first_byte_time_ms") AS "fb_count",
               sum("cache_creation_5m_input_tokens") AS "w5", sum("cache_creation_1h_input_tokens") AS "w1"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4, 5, 6) s
 WHERE t."bucket" = s."bucket" AND t."user_id" = s."user_id" AND t."api_key_id" = s."api_key_id" AND t."provider_id" = s."provider_id"
   AND t."model" = s."model" AND t."api_format" = s."api_format";

UPDATE "usage_hourly_provider_key" t
   SET "first_byte_time_sum_ms" = s."fb_sum", "first_byte_time_count" = s."fb_count",
       "cache_creation_5m_tokens" = s."w5", "cache_creation_1h_tokens" = s."w1"
  FROM (SELECT coalesce("provider_api_key_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "provider_api_key_id", date_trunc('hour', "created_at", 'UTC') AS "bucket",
               coalesce(sum("first_byte_time_ms"), 0) AS "fb_sum", count("first_byte_time_ms") AS "fb_count",
               sum("cache_creation_5m_input_tokens") AS "w5", sum("cache_creation_1h_input_tokens") AS "w1"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2) s
 WHERE t."provider_api_key_id" = s."provider_api_key_id" AND t."bucket" = s."bucket";

UPDATE "usage_hourly_model" t
   SET "first_byte_time_sum_ms" = s."fb_sum", "first_byte_time_count" = s."fb_count",
       "cache_creation_5m_tokens" = s."w5", "cache_creation_1h_tokens" = s."w1"
  FROM (SELECT "bucket", "provider_id", "model", "api_format", sum("first_byte_time_sum_ms") AS "fb_sum", sum("first_byte_time_count") AS "fb_count",
               sum("cache_creation_5m_tokens") AS "w5", sum("cache_creation_1h_tokens") AS "w1"
          FROM "usage_hourly" GROUP BY 1, 2, 3, 4) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format";

UPDATE "usage_daily_model" t
   SET "first_byte_time_sum_ms" = s."fb_sum", "first_byte_time_count" = s."fb_count",
       "cache_creation_5m_tokens" = s."w5", "cache_creation_1h_tokens" = s."w1"
  FROM (SELECT ("bucket" AT TIME ZONE 'UTC')::date AS "day", "provider_id", "model", "api_format", sum("first_byte_time_sum_ms") AS "fb_sum",
               sum("first_byte_time_count") AS "fb_count", sum("cache_creation_5m_tokens") AS "w5", sum("cache_creation_1h_tokens") AS "w1"
          FROM "usage_hourly_model" GROUP BY 1, 2, 3, 4) s
 WHERE t."day" = s."day" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format";

UPDATE "usage_hourly_provider" t
   SET "first_byte_time_sum_ms" = s."fb_sum", "first_byte_time_count" = s."fb_count",
       "cache_creation_5m_tokens" = s."w5", "cache_creation_1h_tokens" = s."w1"
  FROM (SELECT "bucket", "provider_id", sum("first_byte_time_sum_ms") AS "fb_sum", sum("first_byte_time_count") AS "fb_count",
               sum("cache_creation_5m_tokens") AS "w5", sum("cache_creation_1h_tokens") AS "w1"
          FROM "usage_hourly_model" GROUP BY 1, 2) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id";
