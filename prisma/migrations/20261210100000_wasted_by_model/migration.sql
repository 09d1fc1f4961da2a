-- Wasted cache writes by model and provider (analytics/savings.ts by_model / by_provider):
-- a write's waste is attributed to the model and provider of the request that made it.
-- cache_timeline_tail keeps its last request's model and provider (judged against the clock at
-- read time); cache_savings_hourly gains both in its key, so a key's hard delete subtracts its
-- part exactly; cache_savings_hourly_model is it summed by hour × model × provider (the admin's
-- 30 days read a few thousand rows, not the ~400k user × key × hour rows).
-- The DDL is Prisma's, reordered around the backfill: no provider is the nil uuid.

-- AlterTable: each tail's model and provider from its last request (usage request_id unique)
ALTER TABLE "cache_timeline_tail" ADD COLUMN "model" TEXT,
ADD COLUMN "provider_id" UUID;

UPDATE "cache_timeline_tail" t
   SET "model" = u.model, "provider_id" = coalesce(u.provider_id, '00000000-0000-0000-0000-000000000000'::uuid)
  FROM usage u
 WHERE u.request_id = t.last_request_id;

ALTER TABLE "cache_timeline_tail" ALTER COLUMN "model" SET NOT NULL,
ALTER COLUMN "provider_id" SET NOT NULL;

-- AlterTable: the existing rows cannot be split by model, so the table is recomputed from the usage rows
-- (never deleted) by src/modules/accounting/cache/rebuild.ts's queries: the key pass's wasted writes (each
-- completed write against its key's next completed request) beside finish()'s savings of finished requests.
-- A database whose cache tables were never rebuilt (they started empty) gets its history too, as rebuild-cache gives.
TRUNCATE "cache_savings_hourly";

ALTER TABLE "cache_savings_hourly" DROP CONSTRAINT "cache_savings_hourly_pkey",
ADD COLUMN     "model" TEXT NOT NULL,
ADD COLUMN     "provider_id" UUID NOT NULL;

SET LOCAL work_mem = '256MB';
INSERT INTO "cache_savings_hourly" ("bucket", "user_id", "api_key_id", "model", "provider_id", "read_saving", "write_5m_premium", "write_1h_premium",
  "cache_write_5m_tokens", "cache_write_1h_tokens", "wasted_5m_tokens", "wasted_1h_tokens", "wasted_cost")
SELECT bucket, user_id, api_key_id, model, provider_id, sum(read_saving), sum(write_5m_premium), sum(write_1h_premium),
       sum(cache_write_5m_tokens), sum(cache_write_1h_tokens), sum(wasted_5m_tokens), sum(wasted_1h_tokens), sum(wasted_cost)
  FROM (
    SELECT date_trunc('hour', created_at, 'UTC') AS bucket, user_id, api_key_id, model, provider_id, 0 AS read_saving, 0 AS write_5m_premium, 0 AS write_1h_premium,
           0 AS cache_write_5m_tokens, 0 AS cache_write_1h_tokens, sum(x5) AS wasted_5m_tokens, sum(x1) AS wasted_1h_tokens,
           COALESCE(sum(round((x5::numeric * p5)::numeric * 0.000001)::bigint), 0) + COALESCE(sum(round((x1::numeric * p1)::numeric * 0.000001)::bigint), 0) AS wasted_cost
      FROM (
        SELECT *, CASE WHEN next_gap > 300000 THEN w5 ELSE 0 END AS x5, CASE WHEN next_gap > 3600000 THEN w1 ELSE 0 END AS x1
          FROM (
            SELECT api_key_id, user_id, model, coalesce(provider_id, '00000000-0000-0000-0000-000000000000'::uuid) AS provider_id, created_at,
                   cache_creation_5m_input_tokens AS w5, cache_creation_1h_input_tokens AS w1, cache_write_5m_price_per_1m AS p5, cache_write_1h_price_per_1m AS p1,
                   (extract(epoch FROM lead(created_at) OVER (PARTITION BY api_key_id ORDER BY created_at, request_id) - created_at) * 1000)::bigint AS next_gap
              FROM usage WHERE status = 'completed' AND api_key_id IS NOT NULL) t) w
     WHERE user_id IS NOT NULL AND (x5 > 0 OR x1 > 0)
     GROUP BY 1, 2, 3, 4, 5
    UNION ALL
    SELECT *, 0, 0, 0 FROM (
      SELECT date_trunc('hour', created_at, 'UTC') AS bucket, user_id, api_key_id, model, coalesce(provider_id, '00000000-0000-0000-0000-000000000000'::uuid) AS provider_id,
             COALESCE(sum(round((cache_read_input_tokens::numeric * (input_price_per_1m - cache_read_price_per_1m))::numeric * 0.000001)::bigint), 0) AS read_saving,
             COALESCE(sum(round((cache_creation_5m_input_tokens::numeric * (cache_write_5m_price_per_1m - input_price_per_1m))::numeric * 0.000001)::bigint), 0),
             COALESCE(sum(round((cache_creation_1h_input_tokens::numeric * (cache_write_1h_price_per_1m - input_price_per_1m))::numeric * 0.000001)::bigint), 0),
             sum(cache_creation_5m_input_tokens) AS w5_tokens, sum(cache_creation_1h_input_tokens) AS w1_tokens
        FROM usage WHERE status IN ('completed', 'failed', 'cancelled') AND user_id IS NOT NULL AND api_key_id IS NOT NULL
       GROUP BY 1, 2, 3, 4, 5) s
     -- the rows ingestion would have written: a write, or a read that saved something
     WHERE w5_tokens <> 0 OR w1_tokens <> 0 OR read_saving <> 0
  ) p
 GROUP BY 1, 2, 3, 4, 5
 ORDER BY 1, 2, 3, 4, 5;

ALTER TABLE "cache_savings_hourly" ADD CONSTRAINT "cache_savings_hourly_pkey" PRIMARY KEY ("bucket", "user_id", "api_key_id", "model", "provider_id");

-- the whole scope's hours: summed again from the recomputed rows (the rebuild's SUM_SAVINGS_GLOBAL)
TRUNCATE "cache_savings_hourly_global";
INSERT INTO "cache_savings_hourly_global" ("bucket", "read_saving", "write_5m_premium", "write_1h_premium", "cache_write_5m_tokens",
  "cache_write_1h_tokens", "wasted_5m_tokens", "wasted_1h_tokens", "wasted_cost")
SELECT "bucket", sum("read_saving"), sum("write_5m_premium"), sum("write_1h_premium"), sum("cache_write_5m_tokens"),
       sum("cache_write_1h_tokens"), sum("wasted_5m_tokens"), sum("wasted_1h_tokens"), sum("wasted_cost")
  FROM "cache_savings_hourly"
 GROUP BY 1 ORDER BY 1;

-- CreateTable
CREATE TABLE "cache_savings_hourly_model" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "model" TEXT NOT NULL,
    "provider_id" UUID NOT NULL,
    "read_saving" BIGINT NOT NULL DEFAULT 0,
    "write_5m_premium" BIGINT NOT NULL DEFAULT 0,
    "write_1h_premium" BIGINT NOT NULL DEFAULT 0,
    "cache_write_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_write_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "cache_savings_hourly_model_pkey" PRIMARY KEY ("bucket","model","provider_id")
);

-- the rebuild's SUM_SAVINGS_MODEL
INSERT INTO "cache_savings_hourly_model" ("bucket", "model", "provider_id", "read_saving", "write_5m_premium", "write_1h_premium", "cache_write_5m_tokens",
  "cache_write_1h_tokens", "wasted_5m_tokens", "wasted_1h_tokens", "wasted_cost")
SELECT "bucket", "model", "provider_id", sum("read_saving"), sum("write_5m_premium"), sum("write_1h_premium"), sum("cache_write_5m_tokens"),
       sum("cache_write_1h_tokens"), sum("wasted_5m_tokens"), sum("wasted_1h_tokens"), sum("wasted_cost")
  FROM "cache_savings_hourly"
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
