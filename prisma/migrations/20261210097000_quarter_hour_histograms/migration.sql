-- The percentiles' cut hours (analytics/percentiles.ts; accounting/model.ts HISTOGRAM_TABLES): a
-- zone whose midnight falls inside a UTC hour (+05:30) cut ~30 hours of a 30-day range, each read
-- as raw rows (1.6-2.8 s at 10M rows). The quarter-hour rollups keep the latency histograms, so
-- those hours are four primary-key rows each. The DDL is Prisma's; the backfill counts the model
-- table's histograms from the raw rows in one pass over usage, grouped as the
-- seed's bulk load does) and sums them into the global quarter-hours, as the rollup regroups them.
-- AlterTable
ALTER TABLE "usage_quarter_hourly_model" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

-- AlterTable
ALTER TABLE "usage_quarter_hourly_global" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

UPDATE "usage_quarter_hourly_model" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT date_bin('15 minutes', "created_at", timestamptz '2000-01-01 00:00:00+00') AS "bucket",
               coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "provider_id", "model", coalesce("api_format", '') AS "api_format",
               latency_hist_of(array_agg(latency_bucket("response_time_ms")) FILTER (WHERE "response_time_ms" IS NOT NULL)) AS "rt",
               latency_hist_of(array_agg(latency_bucket("first_byte_time_ms")) FILTER (WHERE "first_byte_time_ms" IS NOT NULL)) AS "fb"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled')
         GROUP BY 1, 2, 3, 4) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format";

UPDATE "usage_quarter_hourly_global" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT "bucket", latency_hist_sum("response_time_hist") AS "rt", latency_hist_sum("first_byte_time_hist") AS "fb"
          FROM "usage_quarter_hourly_model" GROUP BY 1) s
 WHERE t."bucket" = s."bucket";
