-- The unfiltered percentiles' whole hours (analytics/percentiles.ts; accounting/model.ts
-- HISTOGRAM_TABLES): usage_hourly_global keeps the latency histograms usage_hourly_provider
-- has, one row an hour instead of one per provider (at 10M rows, a 30-day Europe/Berlin
-- range merged 486 hourly rows for its 81 moved hours). The DDL is Prisma's; the backfill
-- sums each hour's provider histograms, as the rollup regroups them.
-- AlterTable
ALTER TABLE "usage_hourly_global" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

UPDATE "usage_hourly_global" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT "bucket", latency_hist_sum("response_time_hist") AS "rt", latency_hist_sum("first_byte_time_hist") AS "fb"
          FROM "usage_hourly_provider" GROUP BY 1) s
 WHERE t."bucket" = s."bucket";
