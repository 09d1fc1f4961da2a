-- The model and api_format rankings' whole days (usage_daily_model), backfilled from
-- usage_hourly_model by UTC day. The DDL is Prisma's.

-- CreateTable
CREATE TABLE "usage_daily_model" (
    "day" DATE NOT NULL,
    "provider_id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "api_format" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" INTEGER NOT NULL DEFAULT 0,
    "cache_hit_requests" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_model_pkey" PRIMARY KEY ("day","provider_id","model","api_format")
);

INSERT INTO "usage_daily_model" ("day", "provider_id", "model", "api_format", "requests", "errors", "input_tokens", "output_tokens",
  "cache_creation_tokens", "cache_read_tokens", "total_tokens", "cache_creation_cost", "cache_read_cost", "total_cost", "actual_total_cost",
  "response_time_sum_ms", "response_time_count", "cache_hit_requests")
SELECT ("bucket" AT TIME ZONE 'UTC')::date, "provider_id", "model", "api_format", sum("requests"), sum("errors"), sum("input_tokens"), sum("output_tokens"),
       sum("cache_creation_tokens"), sum("cache_read_tokens"), sum("total_tokens"), sum("cache_creation_cost"), sum("cache_read_cost"), sum("total_cost"),
       sum("actual_total_cost"), sum("response_time_sum_ms"), sum("response_time_count"), sum("cache_hit_requests")
  FROM "usage_hourly_model"
 GROUP BY 1, 2, 3, 4
 ORDER BY 1, 2, 3, 4;
