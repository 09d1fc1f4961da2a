-- The interval timeline's sample (accounting/read/cache.ts scanFirstPoints) reads a window of
-- points in (created_at, request_id) order: with the columns it returns in the index, an
-- index-only scan hands them over in that order, with no heap visit and no sort (at 1M rows,
-- 24 hours: ~45 ms where the bitmap scan and its sort took ~52–62 ms). Rebuilt under the same
-- name; the build holds a SHARE lock on cache_timeline_points (ingestion's point inserts wait
-- for it: seconds at 10M usage rows).
DROP INDEX "cache_timeline_points_created_at_request_id_idx";
CREATE INDEX "cache_timeline_points_created_at_request_id_idx" ON "cache_timeline_points"("created_at", "request_id") INCLUDE ("user_id", "model", "gap_ms");
