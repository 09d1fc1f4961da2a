-- The model quarter-hours keep the cache economics (accounting/model.ts CACHE_ECONOMICS), so cost/savings
-- reads a range's whole quarter-hours at its ends from them and only what lies inside a quarter-hour from
-- raw rows (lib/spans.ts quarterCut). The DDL is Prisma's; the backfill sums the finished rows priced by
-- their tier, as the bulk load does (accounting/bulk.ts fromUsageSql). An unpriced row adds zero.

-- AlterTable
ALTER TABLE "usage_quarter_hourly_model" ADD COLUMN     "cache_read_saving" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "cache_write_premium" BIGINT NOT NULL DEFAULT 0;

-- One pass over the finished rows that read or wrote cache (the others add zero), at the rollup's grain:
-- UTC quarter-hour, provider (nil uuid: none), model, format ('': none)
CREATE TEMP TABLE quarter_economics ON COMMIT DROP AS
SELECT date_bin('15 minutes', u.created_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
       coalesce(u.provider_id, '00000000-0000-0000-0000-000000000000'::uuid) AS provider_id, u.model, coalesce(u.api_format, '') AS api_format,
       coalesce(sum(round((u.cache_read_input_tokens::numeric * (pt.input_price_per_1m - pt.cache_read_price_per_1m))::numeric * 0.000001)::bigint), 0) AS saving,
       coalesce(sum(round((u.cache_creation_5m_input_tokens::numeric * (pt.cache_write_5m_price_per_1m - pt.input_price_per_1m))::numeric * 0.000001)::bigint), 0)
         + coalesce(sum(round((u.cache_creation_1h_input_tokens::numeric * (pt.cache_write_1h_price_per_1m - pt.input_price_per_1m))::numeric * 0.000001)::bigint), 0) AS premium
  FROM usage u
  JOIN price_snapshot_tiers pt ON pt.snapshot_id = u.model_price_id
   AND (u.input_tokens::bigint + u.cache_creation_5m_input_tokens::bigint + u.cache_creation_1h_input_tokens::bigint + u.cache_read_input_tokens::bigint) > pt.above
   AND (pt.up_to IS NULL OR (u.input_tokens::bigint + u.cache_creation_5m_input_tokens::bigint + u.cache_creation_1h_input_tokens::bigint + u.cache_read_input_tokens::bigint) <= pt.up_to)
 WHERE u.status IN ('completed', 'failed', 'cancelled')
   AND (u.cache_read_input_tokens <> 0 OR u.cache_creation_5m_input_tokens <> 0 OR u.cache_creation_1h_input_tokens <> 0)
 GROUP BY 1, 2, 3, 4;

UPDATE "usage_quarter_hourly_model" t SET "cache_read_saving" = e.saving, "cache_write_premium" = e.premium
  FROM quarter_economics e
 WHERE t."bucket" = e.bucket AND t."provider_id" = e.provider_id AND t."model" = e.model AND t."api_format" = e.api_format
   AND (e.saving <> 0 OR e.premium <> 0);
