-- Cache economics at the model and provider grains (issue 19's cost/savings): what cache
-- reads saved against the input price and what writes cost above it, summed with the
-- rule cache_savings_hourly uses (accounting/pricing.ts cacheEconomics). The DDL is
-- Prisma's; the backfill sums the finished raw rows into usage_hourly, then regroups the
-- others from it, as the seed's bulk load does (accounting/bulk.ts). An unpriced row
-- (NULL prices) adds zero.

-- AlterTable
ALTER TABLE "usage_hourly" ADD COLUMN     "cache_read_saving" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_write_premium" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_hourly_model" ADD COLUMN     "cache_read_saving" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_write_premium" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_daily_model" ADD COLUMN     "cache_read_saving" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_write_premium" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_hourly_provider" ADD COLUMN     "cache_read_saving" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_write_premium" BIGINT NOT NULL DEFAULT 0;

UPDATE "usage_hourly" t
   SET "cache_read_saving" = s."saving", "cache_write_premium" = s."premium"
  FROM (SELECT date_trunc('hour', "created_at", 'UTC') AS "bucket", coalesce("user_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "user_id",
               coalesce("api_key_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "api_key_id",
               coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "provider_id", "model", coalesce("api_format", '') AS "api_format",
               coalesce(sum(round(("cache_read_input_tokens"::numeric * ("input_price_per_1m" - "cache_read_price_per_1m"))::numeric * 0.000001)::bigint), 0) AS "saving",
               coalesce(sum(round(("cache_creation_5m_input_tokens"::numeric * ("cache_write_5m_price_per_1m" - "input_price_per_1m"))::numeric * 0.000001)::bigint), 0)
                 + coalesce(sum(round(("cache_creation_1h_input_tokens"::numeric * ("cache_write_1h_price_per_1m" - "input_price_per_1m"))::numeric * 0.000001)::bigint), 0) AS "premium"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled') AND "input_price_per_1m" IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6) s
 WHERE t."bucket" = s."bucket" AND t."user_id" = s."user_id" AND t."api_key_id" = s."api_key_id" AND t."provider_id" = s."provider_id"
   AND t."model" = s."model" AND t."api_format" = s."api_format" AND (s."saving" <> 0 OR s."premium" <> 0);

UPDATE "usage_hourly_model" t
   SET "cache_read_saving" = s."saving", "cache_write_premium" = s."premium"
  FROM (SELECT "bucket", "provider_id", "model", "api_format", sum("cache_read_saving") AS "saving", sum("cache_write_premium") AS "premium"
          FROM "usage_hourly" GROUP BY 1, 2, 3, 4) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format"
   AND (s."saving" <> 0 OR s."premium" <> 0);

UPDATE "usage_daily_model" t
   SET "cache_read_saving" = s."saving", "cache_write_premium" = s."premium"
  FROM (SELECT ("bucket" AT TIME ZONE 'UTC')::date AS "day", "provider_id", "model", "api_format", sum("cache_read_saving") AS "saving", sum("cache_write_premium") AS "premium"
          FROM "usage_hourly_model" GROUP BY 1, 2, 3, 4) s
 WHERE t."day" = s."day" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format"
   AND (s."saving" <> 0 OR s."premium" <> 0);

UPDATE "usage_hourly_provider" t
   SET "cache_read_saving" = s."saving", "cache_write_premium" = s."premium"
  FROM (SELECT "bucket", "provider_id", sum("cache_read_saving") AS "saving", sum("cache_write_premium") AS "premium"
          FROM "usage_hourly_model" GROUP BY 1, 2) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id" AND (s."saving" <> 0 OR s."premium" <> 0);
