-- The user ranking without a provider dimension (usage_daily_user: day × user, only
-- requests that reached a provider that still exists; deleting a provider subtracts its
-- part), its hours beside the whole days (usage_hourly_user), and the heatmap's hours
-- (usage_hourly_provider). The DDL is what Prisma's schema engine generates for
-- prisma/schema.prisma, except that usage_daily_user is rebuilt instead of having its
-- provider column dropped in place (its rows are first regrouped by day and user).

-- usage_daily_user: regrouped by (day, user), keeping the providers that exist
ALTER TABLE "usage_daily_user" RENAME TO "usage_daily_user_by_provider";
ALTER TABLE "usage_daily_user_by_provider" RENAME CONSTRAINT "usage_daily_user_pkey" TO "usage_daily_user_by_provider_pkey";

CREATE TABLE "usage_daily_user" (
    "day" DATE NOT NULL,
    "user_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_user_pkey" PRIMARY KEY ("day","user_id")
);

INSERT INTO "usage_daily_user" ("day", "user_id", "requests", "errors", "total_tokens", "total_cost", "actual_total_cost")
SELECT "day", "user_id", sum("requests"), sum("errors"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_daily_user_by_provider"
 WHERE "provider_id" IN (SELECT "id" FROM "providers")
 GROUP BY 1, 2
 ORDER BY 1, 2;

DROP TABLE "usage_daily_user_by_provider";

-- CreateTable
CREATE TABLE "usage_hourly_user" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_user_pkey" PRIMARY KEY ("bucket","user_id")
);

-- CreateTable
CREATE TABLE "usage_hourly_provider" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_provider_pkey" PRIMARY KEY ("bucket","provider_id")
);

-- Backfill from the finest rollup (finished requests), as ingestion would have written them
INSERT INTO "usage_hourly_user" ("bucket", "user_id", "requests", "errors", "total_tokens", "total_cost", "actual_total_cost")
SELECT "bucket", "user_id", sum("requests"), sum("errors"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_hourly"
 WHERE "provider_id" IN (SELECT "id" FROM "providers")
 GROUP BY 1, 2
 ORDER BY 1, 2;

INSERT INTO "usage_hourly_provider" ("bucket", "provider_id", "requests", "total_tokens", "total_cost", "actual_total_cost")
SELECT "bucket", "provider_id", sum("requests"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_hourly_model"
 GROUP BY 1, 2
 ORDER BY 1, 2;
