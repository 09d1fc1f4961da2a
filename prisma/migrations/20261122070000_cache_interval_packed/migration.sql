-- cache_interval_hourly: one row per (scope, id, hour) with the hour's bins packed in a
-- bytea, instead of one row per (scope, id, hour, bin) (src/modules/cache/packed.ts).
--
-- Prisma's own diff (scripts/prisma-diff.sh) for this change is
--   ALTER TABLE "cache_interval_hourly" DROP CONSTRAINT "cache_interval_hourly_pkey",
--   DROP COLUMN "bin_index", DROP COLUMN "count", DROP COLUMN "sum_ms",
--   ADD COLUMN "bins" BYTEA NOT NULL,
--   ADD CONSTRAINT "cache_interval_hourly_pkey" PRIMARY KEY ("scope", "scope_id", "bucket");
-- which fails on a table with rows and would drop the histogram. Instead the packed
-- table is built beside the old one from its rows and takes its place: the same
-- columns, keys and index as that diff yields, the keys built after the bulk insert.

-- CreateTable
CREATE TABLE "cache_interval_hourly_packed" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "scope" TEXT NOT NULL,
    "scope_id" UUID NOT NULL,
    "bins" BYTEA NOT NULL
);

-- Backfill: each hour's non-empty bins, 14 bytes each (bin int2, count int4, sum_ms
-- int8), in bin order: the form ingestion and the rebuild write. Rows in time order,
-- as ingestion appends them, so a window's rows lie together.
SET LOCAL work_mem = '256MB';
SET LOCAL maintenance_work_mem = '1GB';
INSERT INTO "cache_interval_hourly_packed" ("bucket", "scope", "scope_id", "bins")
SELECT bucket, scope, scope_id, string_agg(int2send(bin_index::int2) || int4send(count) || int8send(sum_ms), ''::bytea ORDER BY bin_index)
  FROM "cache_interval_hourly"
 WHERE count <> 0
 GROUP BY scope, scope_id, bucket
 ORDER BY scope, bucket, scope_id;

DROP TABLE "cache_interval_hourly";
ALTER TABLE "cache_interval_hourly_packed" RENAME TO "cache_interval_hourly";

-- AddPrimaryKey
ALTER TABLE "cache_interval_hourly" ADD CONSTRAINT "cache_interval_hourly_pkey" PRIMARY KEY ("scope", "scope_id", "bucket");

-- CreateIndex
CREATE INDEX "cache_interval_hourly_scope_bucket_idx" ON "cache_interval_hourly"("scope", "bucket");
