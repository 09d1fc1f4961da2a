-- CreateTable
CREATE TABLE "provider_attempts_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "successes" INTEGER NOT NULL DEFAULT 0,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "latency_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "latency_count" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "provider_attempts_hourly_pkey" PRIMARY KEY ("bucket","provider_id")
);

-- Backfill from the rows already ingested, as ingestion would have written them
-- (src/modules/usage/rollups.ts). Set-based and without a scan of usage: the implicit
-- attempts are usage_hourly_model's finished requests per hour and provider, less
-- those of the requests that have an executed candidate (one usage (request_id) probe
-- per such request); the explicit ones are the executed candidates themselves.
INSERT INTO "provider_attempts_hourly" ("bucket", "provider_id", "attempts", "successes", "failures", "latency_sum_ms", "latency_count")
SELECT bucket, provider_id, sum(attempts), sum(successes), sum(failures), sum(latency_sum_ms), sum(latency_count)
  FROM (
    -- executed candidates, on the candidate's provider
    SELECT date_trunc('hour', c.created_at, 'UTC') AS bucket, c.provider_id, count(*) AS attempts,
           count(*) FILTER (WHERE c.status = 'success') AS successes, count(*) FILTER (WHERE c.status = 'failed') AS failures,
           COALESCE(sum(c.latency_ms), 0) AS latency_sum_ms, count(c.latency_ms) AS latency_count
      FROM request_candidates c
     WHERE c.status NOT IN ('skipped', 'available') AND c.provider_id IS NOT NULL
     GROUP BY 1, 2
    UNION ALL
    -- every finished request on its provider, as one implicit attempt...
    SELECT m.bucket, m.provider_id, sum(m.requests), sum(m.requests - m.errors), sum(m.errors), sum(m.response_time_sum_ms), sum(m.response_time_count)
      FROM usage_hourly_model m
     WHERE m.provider_id <> '00000000-0000-0000-0000-000000000000'
     GROUP BY 1, 2
    UNION ALL
    -- ...less the requests that have an executed candidate
    SELECT date_trunc('hour', u.created_at, 'UTC'), u.provider_id, -count(*), -count(*) FILTER (WHERE u.status <> 'failed'),
           -count(*) FILTER (WHERE u.status = 'failed'), -COALESCE(sum(u.response_time_ms), 0), -count(u.response_time_ms)
      FROM (SELECT DISTINCT request_id FROM request_candidates WHERE status NOT IN ('skipped', 'available')) c
      JOIN usage u ON u.request_id = c.request_id
     WHERE u.status IN ('completed', 'failed', 'cancelled') AND u.provider_id IS NOT NULL
     GROUP BY 1, 2
  ) p
 GROUP BY bucket, provider_id
HAVING sum(attempts) <> 0 OR sum(latency_count) <> 0 OR sum(latency_sum_ms) <> 0;
