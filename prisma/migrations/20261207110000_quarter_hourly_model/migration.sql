-- The time series' cut hours filtered by model, provider or api_format (issue 19;
-- accounting/model.ts ROLLUPS): quarter-hour × provider × model × api_format, every
-- measure of the series, so a filtered +05:30 series reads ~22 rows a quarter-hour instead
-- of the raw rows of the hours its midnights cut. The DDL is Prisma's; the backfill counts
-- the finished raw rows as the seed's bulk load does (a deleted provider's rows, whose
-- provider_id is NULL now, land on the nil provider, where a GROUP BY of the raw rows puts them).

-- CreateTable
CREATE TABLE "usage_quarter_hourly_model" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "api_format" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" INTEGER NOT NULL DEFAULT 0,
    "first_byte_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "first_byte_time_count" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_quarter_hourly_model_pkey" PRIMARY KEY ("bucket","provider_id","model","api_format")
);

INSERT INTO "usage_quarter_hourly_model" ("bucket", "provider_id", "model", "api_format", "requests", "errors", "input_tokens", "output_tokens", "cache_creation_tokens",
       "cache_creation_5m_tokens", "cache_creation_1h_tokens", "cache_read_tokens", "total_tokens", "total_cost", "actual_total_cost",
       "response_time_sum_ms", "response_time_count", "first_byte_time_sum_ms", "first_byte_time_count")
SELECT date_bin('15 minutes', "created_at", timestamptz '2000-01-01 00:00:00+00'), coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid), "model", coalesce("api_format", ''),
       count(*), count(*) FILTER (WHERE "status" = 'failed'), sum("input_tokens"), sum("output_tokens"), sum("cache_creation_input_tokens"),
       sum("cache_creation_5m_input_tokens"), sum("cache_creation_1h_input_tokens"), sum("cache_read_input_tokens"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost"),
       coalesce(sum("response_time_ms"), 0), count("response_time_ms"), coalesce(sum("first_byte_time_ms"), 0), count("first_byte_time_ms")
  FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled')
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
