-- The analytics' cut hours and whole days (issue 19; accounting/model.ts ROLLUPS):
-- usage_quarter_hourly_global gains the time series' measures (an unfiltered series and
-- the forecast read the hours a +05:30 midnight cuts by quarter-hour, not from raw rows);
-- usage_errors_quarter_hourly is usage_errors_hourly by quarter-hour (the errors
-- distribution's cut hours); usage_daily_model keeps latency histograms and
-- usage_daily_provider is new (the percentiles' whole UTC days). The DDL is Prisma's; the
-- backfill counts the finished (failed) raw rows as the seed's bulk load does
-- (accounting/bulk.ts), and sums the daily histograms from the hourly ones.

-- AlterTable
ALTER TABLE "usage_quarter_hourly_global" ADD COLUMN     "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "errors" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "input_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "output_tokens" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "response_time_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_daily_model" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

-- CreateTable
CREATE TABLE "usage_daily_provider" (
    "day" DATE NOT NULL,
    "provider_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
    "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],

    CONSTRAINT "usage_daily_provider_pkey" PRIMARY KEY ("day","provider_id")
);

-- CreateTable
CREATE TABLE "usage_errors_quarter_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "status_code" INTEGER NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_errors_quarter_hourly_pkey" PRIMARY KEY ("bucket","provider_id","status_code")
);

-- every quarter-hour with a finished request has its row already (the heatmap's measures)
UPDATE "usage_quarter_hourly_global" t
   SET "errors" = s."errors", "input_tokens" = s."input_tokens", "output_tokens" = s."output_tokens", "cache_creation_tokens" = s."cache_creation_tokens",
       "cache_creation_5m_tokens" = s."cache_creation_5m_tokens", "cache_creation_1h_tokens" = s."cache_creation_1h_tokens", "cache_read_tokens" = s."cache_read_tokens",
       "response_time_sum_ms" = s."response_time_sum_ms", "response_time_count" = s."response_time_count",
       "first_byte_time_sum_ms" = s."first_byte_time_sum_ms", "first_byte_time_count" = s."first_byte_time_count"
  FROM (SELECT date_bin('15 minutes', "created_at", timestamptz '2000-01-01 00:00:00+00') AS "bucket",
               count(*) FILTER (WHERE "status" = 'failed') AS "errors", sum("input_tokens") AS "input_tokens", sum("output_tokens") AS "output_tokens",
               sum("cache_creation_input_tokens") AS "cache_creation_tokens", sum("cache_creation_5m_input_tokens") AS "cache_creation_5m_tokens",
               sum("cache_creation_1h_input_tokens") AS "cache_creation_1h_tokens", sum("cache_read_input_tokens") AS "cache_read_tokens",
               coalesce(sum("response_time_ms"), 0) AS "response_time_sum_ms", count("response_time_ms") AS "response_time_count",
               coalesce(sum("first_byte_time_ms"), 0) AS "first_byte_time_sum_ms", count("first_byte_time_ms") AS "first_byte_time_count"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled') GROUP BY 1) s
 WHERE t."bucket" = s."bucket";

-- a deleted provider's failed rows (provider_id NULL now) land on the nil provider, as in usage_errors_hourly's backfill
INSERT INTO "usage_errors_quarter_hourly" ("bucket", "provider_id", "status_code", "requests")
SELECT date_bin('15 minutes', "created_at", timestamptz '2000-01-01 00:00:00+00'), coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid), coalesce("status_code", 0), count(*)
  FROM "usage" WHERE "status" = 'failed'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

UPDATE "usage_daily_model" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT ("bucket" AT TIME ZONE 'UTC')::date AS "day", "provider_id", "model", "api_format",
               latency_hist_sum("response_time_hist") AS "rt", latency_hist_sum("first_byte_time_hist") AS "fb"
          FROM "usage_hourly_model" GROUP BY 1, 2, 3, 4) s
 WHERE t."day" = s."day" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format";

INSERT INTO "usage_daily_provider" ("day", "provider_id", "requests", "response_time_hist", "first_byte_time_hist")
SELECT ("bucket" AT TIME ZONE 'UTC')::date, "provider_id", sum("requests"), latency_hist_sum("response_time_hist"), latency_hist_sum("first_byte_time_hist")
  FROM "usage_hourly_provider"
 GROUP BY 1, 2 ORDER BY 1, 2;
