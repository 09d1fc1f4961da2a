-- Latency histograms for the percentiles (issue 19; accounting/model.ts HISTOGRAMS): per
-- rollup row of usage_hourly_model and usage_hourly_provider, a bigint[] of counts per
-- latency bucket (element i + 1 counts bucket i; trailing zeros may be left off), for
-- response time and time to first byte. The functions add, negate and sum them and count
-- a group's buckets; latency_bucket is model.ts latencyBucket over the same bounds (the
-- literal below is LATENCY_BOUNDS; test/modules/analytics/percentiles-buckets.test.ts
-- proves the two agree). The DDL of the columns is Prisma's; the backfill counts the
-- finished raw rows into usage_hourly_model, then sums those into usage_hourly_provider,
-- as the seed's bulk load does (accounting/bulk.ts). A deleted provider's old rows
-- (usage.provider_id set NULL, the rollups keeping its id) find no rollup row and stay
-- without a histogram.

-- bucket 0: below 1 ms; bucket i: [bound i, bound i + 1); the last is open-ended
CREATE FUNCTION latency_bucket(ms integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN width_bucket(ms, '{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,22,24,26,28,30,33,36,39,42,46,50,55,60,66,72,79,86,94,103,113,124,136,149,163,179,196,215,236,259,284,312,343,377,414,455,500,550,605,665,731,804,884,972,1069,1175,1292,1421,1563,1719,1890,2079,2286,2514,2765,3041,3345,3679,4046,4450,4895,5384,5922,6514,7165,7881,8669,9535,10488,11536,12689,13957,15352,16887,18575,20432,22475,24722,27194,29913,32904,36194,39813,43794,48173,52990,58289,64117,70528,77580,85338,93871,103258,113583,124941,137435,151178,166295,182924,201216,221337,243470,267817,294598,324057,356462,392108,431318,474449,521893,574082,631490,694639,764102,840512,924563,1017019,1118720,1230592,1353651,1489016,1637917,1801708,1981878,2180065,2398071,2637878,2901665,3191831,3511014,3600000}'::integer[]);

-- elementwise a + b (either may be shorter or NULL)
CREATE FUNCTION latency_hist_add(a bigint[], b bigint[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(coalesce(a[i], 0) + coalesce(b[i], 0) ORDER BY i), '{}')
    FROM generate_series(1, greatest(coalesce(cardinality(a), 0), coalesce(cardinality(b), 0))) i
$$;

CREATE FUNCTION latency_hist_negate(a bigint[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(-v ORDER BY o), '{}') FROM unnest(a) WITH ORDINALITY x(v, o)
$$;

-- the histogram of a group's buckets (array_agg(latency_bucket(ms)): linear in the rows)
CREATE FUNCTION latency_hist_of(buckets integer[]) RETURNS bigint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(coalesce(c.n, 0) ORDER BY i), '{}')
    FROM generate_series(0, (SELECT max(b) FROM unnest(buckets) b)) i
    LEFT JOIN (SELECT b, count(*) AS n FROM unnest(buckets) b GROUP BY b) c ON c.b = i
$$;

CREATE AGGREGATE latency_hist_sum(bigint[]) (SFUNC = latency_hist_add, STYPE = bigint[], INITCOND = '{}');

-- AlterTable
ALTER TABLE "usage_hourly_model" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

-- AlterTable
ALTER TABLE "usage_hourly_provider" ADD COLUMN     "first_byte_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[],
ADD COLUMN     "response_time_hist" BIGINT[] DEFAULT ARRAY[]::BIGINT[];

UPDATE "usage_hourly_model" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT date_trunc('hour', "created_at", 'UTC') AS "bucket", coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid) AS "provider_id",
               "model", coalesce("api_format", '') AS "api_format",
               latency_hist_of(array_agg(latency_bucket("response_time_ms")) FILTER (WHERE "response_time_ms" IS NOT NULL)) AS "rt",
               latency_hist_of(array_agg(latency_bucket("first_byte_time_ms")) FILTER (WHERE "first_byte_time_ms" IS NOT NULL)) AS "fb"
          FROM "usage" WHERE "status" IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id" AND t."model" = s."model" AND t."api_format" = s."api_format";

UPDATE "usage_hourly_provider" t
   SET "response_time_hist" = s."rt", "first_byte_time_hist" = s."fb"
  FROM (SELECT "bucket", "provider_id", latency_hist_sum("response_time_hist") AS "rt", latency_hist_sum("first_byte_time_hist") AS "fb"
          FROM "usage_hourly_model" GROUP BY 1, 2) s
 WHERE t."bucket" = s."bucket" AND t."provider_id" = s."provider_id";
