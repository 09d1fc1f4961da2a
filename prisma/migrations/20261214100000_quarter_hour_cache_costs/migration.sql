-- The quarter-hour rollups keep the two measures they lacked of those the hour rollups' totals read
-- (src/modules/accounting/read/sql.ts ROLLUP_MEASURES), so a ragged range's whole quarter-hours are read
-- from them and only what lies inside a quarter-hour from raw rows (lib/spans.ts quarterCut).

-- AlterTable
ALTER TABLE "usage_quarter_hourly_model" ADD COLUMN     "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_cost" BIGINT NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "usage_quarter_hourly_global" ADD COLUMN     "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_read_cost" BIGINT NOT NULL DEFAULT 0;

-- Filled from the finished rows in one pass (the rollups' grain: UTC quarter-hour, provider (nil uuid: none), model, format ('': none))
CREATE TEMP TABLE quarter_costs ON COMMIT DROP AS
SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
       coalesce(provider_id, '00000000-0000-0000-0000-000000000000'::uuid) AS provider_id, model, coalesce(api_format, '') AS api_format,
       sum(cache_creation_cost) AS cache_creation_cost, sum(cache_read_cost) AS cache_read_cost
  FROM usage
 WHERE status IN ('completed', 'failed', 'cancelled')
 GROUP BY 1, 2, 3, 4
HAVING sum(cache_creation_cost) <> 0 OR sum(cache_read_cost) <> 0;

UPDATE "usage_quarter_hourly_model" t SET "cache_creation_cost" = c.cache_creation_cost, "cache_read_cost" = c.cache_read_cost
  FROM quarter_costs c
 WHERE t."bucket" = c.bucket AND t."provider_id" = c.provider_id AND t."model" = c.model AND t."api_format" = c.api_format;

UPDATE "usage_quarter_hourly_global" t SET "cache_creation_cost" = c.cache_creation_cost, "cache_read_cost" = c.cache_read_cost
  FROM (SELECT bucket, sum(cache_creation_cost) AS cache_creation_cost, sum(cache_read_cost) AS cache_read_cost FROM quarter_costs GROUP BY bucket) c
 WHERE t."bucket" = c.bucket;
