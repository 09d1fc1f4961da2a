-- The key ranking's and spend by tag's hours beside their whole days (analytics/queries.ts leaderboard,
-- analytics/tags.ts; accounting/model.ts ROLLUPS): usage_hourly without its user, provider, model and
-- format, one row a key an hour (at 10M usage rows, the 23 hours beside 29 days are ~13k rows instead of
-- ~28k). The DDL is Prisma's; the backfill regroups usage_hourly, as the seed's bulk load does.
-- CreateTable
CREATE TABLE "usage_hourly_api_key" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "api_key_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_api_key_pkey" PRIMARY KEY ("bucket","api_key_id")
);

INSERT INTO "usage_hourly_api_key" ("bucket", "api_key_id", "requests", "errors", "total_tokens", "total_cost", "actual_total_cost")
SELECT "bucket", "api_key_id", sum("requests"), sum("errors"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_hourly"
 GROUP BY 1, 2 ORDER BY 1, 2;
