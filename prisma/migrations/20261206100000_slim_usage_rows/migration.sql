-- Slim usage rows (issue 20, item 1; docs/accounting.md "Slim rows"). A usage row no longer
-- copies its tier facts (tiered_pricing, more than half of the row): it keeps model_price_id,
-- now a reference to price_snapshots (every price version's content, immutable, kept after
-- the version is deleted), and the detail view derives the rest from the row's own tokens
-- (the context) with the rule that priced it (pricing.ts tierFor).
--
-- Locks: model_prices SHARE ROW EXCLUSIVE for the whole migration (price versions cannot be
-- added or deleted meanwhile); usage is read once without blocking anyone (ACCESS SHARE), then
-- ACCESS EXCLUSIVE for the DROP COLUMN alone (a catalog change, no rewrite). The dropped
-- column's bytes stay in the rows written before until they are rewritten (VACUUM FULL,
-- pg_repack or a conversion to partitions); rows written after are slim at once.
-- Every existing row's copy is checked against what the detail view derives now: any
-- difference aborts the migration (rolled back whole) and names a request_id.

-- CreateTable
CREATE TABLE "price_snapshots" (
    "id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "provider_id" UUID,
    "tiers" JSONB NOT NULL,
    "price_per_request" BIGINT,
    "effective_from" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "price_snapshots_pkey" PRIMARY KEY ("id")
);

-- Each version's snapshot, written with it (whoever inserts it: the API, the seed, a test).
CREATE FUNCTION model_prices_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO price_snapshots (id, model, provider_id, tiers, price_per_request, effective_from)
  VALUES (NEW.id, NEW.model, NEW.provider_id, NEW.tiers, NEW.price_per_request, NEW.effective_from);
  RETURN NULL;
END $$;
CREATE TRIGGER model_prices_snapshot AFTER INSERT ON model_prices FOR EACH ROW EXECUTE FUNCTION model_prices_snapshot();

-- A version is never edited in place (SPEC: a new row per change): its snapshot would no longer be its content.
CREATE FUNCTION price_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'price version % cannot change: insert a new version (model_prices rows and their snapshots are immutable)', OLD.id
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER model_prices_immutable BEFORE UPDATE ON model_prices FOR EACH ROW
  WHEN ((OLD.id, OLD.model, OLD.provider_id, OLD.tiers, OLD.price_per_request, OLD.effective_from)
        IS DISTINCT FROM (NEW.id, NEW.model, NEW.provider_id, NEW.tiers, NEW.price_per_request, NEW.effective_from))
  EXECUTE FUNCTION price_version_immutable();
-- usage rows reference snapshots without a foreign key (as usage's other references, for ingestion's speed): none may go
CREATE TRIGGER price_snapshots_immutable BEFORE UPDATE OR DELETE ON price_snapshots FOR EACH ROW EXECUTE FUNCTION price_version_immutable();

INSERT INTO price_snapshots (id, model, provider_id, tiers, price_per_request, effective_from, created_at)
SELECT id, model, provider_id, tiers, price_per_request, effective_from, created_at FROM model_prices;

-- One read of usage: its priced rows grouped by version and tier facts (a few hundred groups),
-- with each group's range of input contexts and its rows whose copied context differs.
CREATE TEMP TABLE slim_groups ON COMMIT DROP AS
SELECT u.model_price_id, u.tiered_pricing - 'total_input_context' AS facts, count(*) AS rows,
       min(c.context) AS min_context, max(c.context) AS max_context,
       count(*) FILTER (WHERE (u.tiered_pricing->>'total_input_context')::numeric IS DISTINCT FROM c.context) AS other_context,
       coalesce(min(u.request_id) FILTER (WHERE (u.tiered_pricing->>'total_input_context')::numeric IS DISTINCT FROM c.context), min(u.request_id)) AS example, min(u.model) AS model, min(u.provider_id::text)::uuid AS provider_id, max(u.price_per_request) AS price_per_request
  FROM usage u
 CROSS JOIN LATERAL (SELECT u.input_tokens::bigint + u.cache_creation_5m_input_tokens + u.cache_creation_1h_input_tokens + u.cache_read_input_tokens AS context) c
 WHERE u.model_price_id IS NOT NULL OR u.tiered_pricing IS NOT NULL
 GROUP BY 1, 2;

-- tiers as nano-USD numerics, from the copies' USD (scale 1e9: usdToNano's rounding) or the stored nano (scale 1)
CREATE FUNCTION pg_temp.nano_tiers(tiers jsonb, scale numeric) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_agg(jsonb_build_object('up_to', t->'up_to',
           'input', round((t->>'input')::numeric * scale), 'output', round((t->>'output')::numeric * scale),
           'cache_write_5m', round((t->>'cache_write_5m')::numeric * scale), 'cache_write_1h', round((t->>'cache_write_1h')::numeric * scale),
           'cache_read', round((t->>'cache_read')::numeric * scale)) ORDER BY o)
    FROM jsonb_array_elements(tiers) WITH ORDINALITY AS e(t, o) $$;

-- pricing.ts tierFor: the first tier whose up_to covers the context, else the last
CREATE FUNCTION pg_temp.tier_for(tiers jsonb, context numeric) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(min(o - 1), jsonb_array_length(tiers) - 1)
    FROM jsonb_array_elements(tiers) WITH ORDINALITY AS e(t, o)
   WHERE jsonb_typeof(t->'up_to') = 'null' OR context <= (t->>'up_to')::numeric $$;

-- Versions deleted before this migration (or with their provider): rebuilt from their rows' copy.
-- A provider's own price whose provider is gone too keeps the nil provider (its source stays "provider").
INSERT INTO price_snapshots (id, model, provider_id, tiers, price_per_request)
SELECT DISTINCT ON (g.model_price_id) g.model_price_id, g.model,
       CASE WHEN g.facts->>'source' = 'global' THEN NULL ELSE coalesce(g.provider_id, '00000000-0000-0000-0000-000000000000'::uuid) END,
       pg_temp.nano_tiers(g.facts->'tiers', 1000000000), g.price_per_request
  FROM slim_groups g
 WHERE g.model_price_id IS NOT NULL AND g.facts IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM price_snapshots s WHERE s.id = g.model_price_id)
 ORDER BY g.model_price_id, g.rows DESC;

-- Every copy must be what the detail view now derives: its version and source, its tiers, its
-- tier (for the group's smallest and largest context: tierFor is monotonic), its context.
DO $$
DECLARE
  bad record;
  example text;
BEGIN
  SELECT g.*, s.id IS NULL AS no_snapshot,
         (g.facts->>'tier_index')::bigint IS DISTINCT FROM pg_temp.tier_for(s.tiers, g.min_context) AS tier_at_min,
         (g.facts->>'tier_index')::bigint IS DISTINCT FROM pg_temp.tier_for(s.tiers, g.max_context) AS tier_at_max INTO bad
    FROM slim_groups g
    LEFT JOIN price_snapshots s ON s.id = g.model_price_id
   WHERE g.model_price_id IS NULL OR g.facts IS NULL OR s.id IS NULL OR g.other_context > 0
      OR g.facts->>'model_price_id' IS DISTINCT FROM g.model_price_id::text
      OR g.facts->>'source' IS DISTINCT FROM CASE WHEN s.provider_id IS NULL THEN 'global' ELSE 'provider' END
      OR (g.facts->>'tier_count')::bigint IS DISTINCT FROM jsonb_array_length(s.tiers)
      OR pg_temp.nano_tiers(g.facts->'tiers', 1000000000) IS DISTINCT FROM pg_temp.nano_tiers(s.tiers, 1)
      OR g.facts->'current_tier' IS DISTINCT FROM g.facts->'tiers'->((g.facts->>'tier_index')::int)
      OR (g.facts->>'tier_index')::bigint IS DISTINCT FROM pg_temp.tier_for(s.tiers, g.min_context)
      OR (g.facts->>'tier_index')::bigint IS DISTINCT FROM pg_temp.tier_for(s.tiers, g.max_context)
   LIMIT 1;
  IF NOT FOUND THEN RETURN; END IF;
  example := bad.example;
  -- a wrong tier: the row at the end of the group's contexts that the tier does not cover (a second read, on failure only)
  IF bad.other_context = 0 AND (bad.tier_at_min OR bad.tier_at_max) THEN
    SELECT u.request_id INTO example FROM usage u
     WHERE u.model_price_id = bad.model_price_id AND u.tiered_pricing - 'total_input_context' = bad.facts
       AND u.input_tokens::bigint + u.cache_creation_5m_input_tokens + u.cache_creation_1h_input_tokens + u.cache_read_input_tokens
           = CASE WHEN bad.tier_at_min THEN bad.min_context ELSE bad.max_context END
     LIMIT 1;
  END IF;
  RAISE EXCEPTION 'usage row % (price version %): its tiered_pricing differs from what its price snapshot and tokens give (no copy: %, no snapshot: %, rows of another context: %); not dropped',
    example, bad.model_price_id, bad.facts IS NULL, bad.no_snapshot, bad.other_context;
END $$;

-- AlterTable
ALTER TABLE "usage" DROP COLUMN "tiered_pricing";
