-- Provider attempts per quarter-hour, so the aggregation by provider reads a ragged range's whole
-- quarter-hours from a rollup and only what lies inside a quarter-hour from raw rows and their
-- candidates (at a busy window edge an hour of raw rows cost ~70 ms in the candidates' probes).

-- CreateTable
CREATE TABLE "provider_attempts_quarter_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "successes" INTEGER NOT NULL DEFAULT 0,
    "failures" INTEGER NOT NULL DEFAULT 0,
    "latency_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "latency_count" INTEGER NOT NULL DEFAULT 0,
    "fallbacks" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "provider_attempts_quarter_hourly_pkey" PRIMARY KEY ("bucket","provider_id")
);

-- What ingestion would have written (src/modules/accounting/bulk.ts rollupRegrouped, the same
-- statement): executed candidates on their providers; each finished request's implicit attempt
-- (the quarter-hour rollup's requests) less those of requests with an executed candidate; each
-- request with more than one executed candidate once as a fallback on the nil provider.
INSERT INTO "provider_attempts_quarter_hourly" (bucket, provider_id, attempts, successes, failures, latency_sum_ms, latency_count, fallbacks)
SELECT bucket, provider_id, sum(attempts), sum(successes), sum(failures), sum(latency_sum_ms), sum(latency_count), sum(fallbacks)
FROM (
  SELECT date_bin('15 minutes', c.created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket, c.provider_id, count(*) AS attempts,
         count(*) FILTER (WHERE c.status = 'success') AS successes, count(*) FILTER (WHERE c.status = 'failed') AS failures,
         coalesce(sum(c.latency_ms), 0) AS latency_sum_ms, count(c.latency_ms) AS latency_count, 0 AS fallbacks
    FROM request_candidates c WHERE c.status NOT IN ('skipped', 'available') AND c.provider_id IS NOT NULL GROUP BY 1, 2
  UNION ALL
  SELECT bucket, provider_id, sum(requests), sum(requests - errors), sum(errors), sum(response_time_sum_ms), sum(response_time_count), 0
    FROM usage_quarter_hourly_model WHERE provider_id <> '00000000-0000-0000-0000-000000000000'::uuid GROUP BY 1, 2
  UNION ALL
  SELECT date_bin('15 minutes', u.created_at, timestamptz '2000-01-01 00:00:00+00'), u.provider_id, -count(*), -count(*) FILTER (WHERE u.status <> 'failed'),
         -count(*) FILTER (WHERE u.status = 'failed'), -coalesce(sum(u.response_time_ms), 0), -count(u.response_time_ms), 0
    FROM (SELECT DISTINCT c.request_id FROM request_candidates c WHERE c.status NOT IN ('skipped', 'available')) c JOIN usage u ON u.request_id = c.request_id
   WHERE u.status IN ('completed', 'failed', 'cancelled') AND u.provider_id IS NOT NULL GROUP BY 1, 2
  UNION ALL
  SELECT date_bin('15 minutes', min(c.created_at), timestamptz '2000-01-01 00:00:00+00'), '00000000-0000-0000-0000-000000000000'::uuid, 0, 0, 0, 0, 0, 1
    FROM request_candidates c WHERE c.status NOT IN ('skipped', 'available') GROUP BY c.request_id HAVING count(*) > 1
) p
GROUP BY 1, 2
HAVING sum(attempts) <> 0 OR sum(latency_sum_ms) <> 0 OR sum(latency_count) <> 0 OR sum(fallbacks) <> 0
ORDER BY 1, 2;
