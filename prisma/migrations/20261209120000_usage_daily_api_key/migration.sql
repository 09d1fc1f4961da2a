-- The key ranking's and spend by tag's whole days (analytics/queries.ts leaderboard, analytics/tags.ts;
-- accounting/model.ts ROLLUPS): usage_daily_key without its user and model, one row a key a day (at
-- 10M usage rows, 30 days are 30k rows instead of 172k). The DDL is Prisma's; the backfill regroups
-- usage_daily_key, as the seed's bulk load does.
-- CreateTable
CREATE TABLE "usage_daily_api_key" (
    "day" DATE NOT NULL,
    "api_key_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_api_key_pkey" PRIMARY KEY ("day","api_key_id")
);

INSERT INTO "usage_daily_api_key" ("day", "api_key_id", "requests", "errors", "total_tokens", "total_cost", "actual_total_cost")
SELECT "day", "api_key_id", sum("requests"), sum("errors"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_daily_key"
 GROUP BY 1, 2 ORDER BY 1, 2;
