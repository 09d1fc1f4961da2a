-- CreateTable
CREATE TABLE "cache_timeline_points" (
    "user_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "request_id" TEXT NOT NULL,
    "gap_ms" INTEGER NOT NULL,
    "model" TEXT NOT NULL,

    CONSTRAINT "cache_timeline_points_pkey" PRIMARY KEY ("user_id","created_at","request_id")
);

-- Backfill from the usage rows already recorded (the same query as the user pass of
-- src/modules/cache/rebuild.ts): each completed request's gap to its user's previous
-- completed request, kept when at most 120 minutes. In primary-key order, with the
-- second index built afterwards. Empty on a new database.
SET LOCAL work_mem = '256MB';
INSERT INTO "cache_timeline_points" ("user_id", "created_at", "request_id", "gap_ms", "model")
SELECT user_id, created_at, request_id, gap, model FROM (
  SELECT user_id, created_at, request_id, model,
         (extract(epoch FROM created_at - lag(created_at) OVER (PARTITION BY user_id ORDER BY created_at, request_id)) * 1000)::bigint AS gap
    FROM usage WHERE status = 'completed' AND user_id IS NOT NULL) t
 WHERE gap <= 7200000
 ORDER BY user_id, created_at, request_id;

-- CreateIndex
CREATE INDEX "cache_timeline_points_created_at_request_id_idx" ON "cache_timeline_points"("created_at", "request_id");
