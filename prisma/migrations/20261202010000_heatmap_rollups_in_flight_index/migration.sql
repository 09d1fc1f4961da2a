-- The heatmap's rollups without a provider dimension: usage_hourly_global (hour) and
-- usage_quarter_hourly_global (quarter-hour, replacing the quarter-hour × provider
-- table, which only the heatmap read), each filled from the rollup it sums so a live
-- database answers right at once. And usage (status) made partial on the in-flight
-- statuses (accounting/rules.ts IN_FLIGHT_STATUSES), the only rows ever looked up by
-- status through it (stale sweep, active list, in-flight counter); src/db/drift.ts
-- declares it (EXTRA_INDEXES). The DDL is Prisma's format for prisma/schema.prisma.

-- CreateTable
CREATE TABLE "usage_hourly_global" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_global_pkey" PRIMARY KEY ("bucket")
);

-- CreateTable
CREATE TABLE "usage_quarter_hourly_global" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_quarter_hourly_global_pkey" PRIMARY KEY ("bucket")
);

-- Backfill: usage_hourly_provider and usage_quarter_hourly hold every finished request
-- (a deleted provider's part included), summed here over their providers.
INSERT INTO "usage_hourly_global" ("bucket", "requests", "total_tokens", "total_cost", "actual_total_cost")
SELECT "bucket", sum("requests"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_hourly_provider"
 GROUP BY "bucket"
 ORDER BY "bucket";

INSERT INTO "usage_quarter_hourly_global" ("bucket", "requests", "total_tokens", "total_cost", "actual_total_cost")
SELECT "bucket", sum("requests"), sum("total_tokens"), sum("total_cost"), sum("actual_total_cost")
  FROM "usage_quarter_hourly"
 GROUP BY "bucket"
 ORDER BY "bucket";

-- DropTable
DROP TABLE "usage_quarter_hourly";

-- DropIndex
DROP INDEX "usage_status_idx";

-- CreateIndex
CREATE INDEX "usage_status_idx" ON "usage" ("status") WHERE "status" IN ('pending', 'streaming');
