-- Slim rows, step three (issue 20, item 1; docs/accounting.md "Slim rows"). A usage row no
-- longer stores the five components of its actual cost (40 bytes): each is its cost
-- component × the row's rate_multiplier, rounded half away from zero (pricing.ts
-- costsInBigints; a free tier's rows carry the multiplier 0), which SQL derives where the
-- detail view and ingestion's read-back need them (pricing.ts storedActualCostsSql).
-- actual_total_cost stays: the rollups, budgets and provider quotas sum it.
--
-- Locks: usage is read once without blocking anyone (ACCESS SHARE), then ACCESS EXCLUSIVE
-- for the DROP COLUMN alone (a catalog change, no rewrite). Every existing row is checked:
-- a stored component that differs from its derivation aborts the migration (rolled back
-- whole) and names a request_id.

DO $$
DECLARE
  bad text;
BEGIN
  SELECT u.request_id INTO bad FROM usage u
   WHERE (u.actual_input_cost, u.actual_output_cost, u.actual_cache_creation_cost, u.actual_cache_read_cost, u.actual_request_cost)
         IS DISTINCT FROM (round(u.input_cost::numeric * u.rate_multiplier)::bigint, round(u.output_cost::numeric * u.rate_multiplier)::bigint,
                           round(u.cache_creation_cost::numeric * u.rate_multiplier)::bigint, round(u.cache_read_cost::numeric * u.rate_multiplier)::bigint,
                           round(u.request_cost::numeric * u.rate_multiplier)::bigint)
   LIMIT 1;
  IF NOT FOUND THEN RETURN; END IF;
  RAISE EXCEPTION 'usage row %: its actual cost components differ from its costs × its rate multiplier; not dropped', bad;
END $$;

-- AlterTable
ALTER TABLE "usage" DROP COLUMN "actual_cache_creation_cost",
DROP COLUMN "actual_cache_read_cost",
DROP COLUMN "actual_input_cost",
DROP COLUMN "actual_output_cost",
DROP COLUMN "actual_request_cost";
