-- The whole scope's cache savings by hour (analytics/savings.ts, read/cache.ts savingsTotals):
-- cache_savings_hourly summed over users and keys, so the admin's 30 days read 720 rows, not
-- the ~400k user × key × hour rows they span at 10M usage rows (150 ms cold, 80 ms warm).
-- The DDL is Prisma's; the backfill sums the existing rows, as the rebuild does.
-- CreateTable
CREATE TABLE "cache_savings_hourly_global" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "read_saving" BIGINT NOT NULL DEFAULT 0,
    "write_5m_premium" BIGINT NOT NULL DEFAULT 0,
    "write_1h_premium" BIGINT NOT NULL DEFAULT 0,
    "cache_write_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_write_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "cache_savings_hourly_global_pkey" PRIMARY KEY ("bucket")
);

INSERT INTO "cache_savings_hourly_global" ("bucket", "read_saving", "write_5m_premium", "write_1h_premium", "cache_write_5m_tokens",
  "cache_write_1h_tokens", "wasted_5m_tokens", "wasted_1h_tokens", "wasted_cost")
SELECT "bucket", sum("read_saving"), sum("write_5m_premium"), sum("write_1h_premium"), sum("cache_write_5m_tokens"),
       sum("cache_write_1h_tokens"), sum("wasted_5m_tokens"), sum("wasted_1h_tokens"), sum("wasted_cost")
  FROM "cache_savings_hourly"
 GROUP BY 1 ORDER BY 1;
