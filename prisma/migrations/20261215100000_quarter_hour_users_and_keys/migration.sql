-- The user and key rankings (aggregation by user, leaderboards of users and keys, spend by tag)
-- read a ragged range's whole quarter-hours from rollups, and only what lies inside a quarter-hour
-- from raw rows (lib/spans.ts quarterCut), as the model and provider readers already do.

-- CreateTable
CREATE TABLE "usage_quarter_hourly_user" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "provider_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_quarter_hourly_user_pkey" PRIMARY KEY ("bucket","user_id","provider_id")
);

-- CreateTable
CREATE TABLE "usage_quarter_hourly_api_key" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "api_key_id" UUID NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_quarter_hourly_api_key_pkey" PRIMARY KEY ("bucket","api_key_id")
);

-- Both from one pass over the finished rows (src/modules/accounting/bulk.ts fromUsageSql sums the
-- same per table): quarter-hour × user × key × provider, a missing one the nil uuid
CREATE TEMP TABLE quarter_parts ON COMMIT DROP AS
SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
       coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid) AS user_id,
       coalesce(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid) AS api_key_id,
       coalesce(provider_id, '00000000-0000-0000-0000-000000000000'::uuid) AS provider_id,
       count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS errors,
       sum(total_tokens) AS total_tokens, sum(total_cost) AS total_cost, sum(actual_total_cost) AS actual_total_cost
  FROM usage
 WHERE status IN ('completed', 'failed', 'cancelled')
 GROUP BY 1, 2, 3, 4;

INSERT INTO "usage_quarter_hourly_user" (bucket, user_id, provider_id, requests, errors, total_tokens, total_cost, actual_total_cost)
SELECT bucket, user_id, provider_id, sum(requests), sum(errors), sum(total_tokens), sum(total_cost), sum(actual_total_cost)
  FROM quarter_parts GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

INSERT INTO "usage_quarter_hourly_api_key" (bucket, api_key_id, requests, errors, total_tokens, total_cost, actual_total_cost)
SELECT bucket, api_key_id, sum(requests), sum(errors), sum(total_tokens), sum(total_cost), sum(actual_total_cost)
  FROM quarter_parts GROUP BY 1, 2 ORDER BY 1, 2;
