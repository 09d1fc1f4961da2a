-- Slim rows, step two (issue 20, item 1; docs/accounting.md "Slim rows"). A usage row no
-- longer copies its unit prices (six bigints) nor its pricing_source: both follow from its
-- price version (model_price_id, an immutable price_snapshots row), its tokens (the input
-- context picks the tier, pricing.ts tierFor) and its status. SQL over usage rows joins the
-- row's tier in price_snapshot_tiers (pricing.ts tierPricesJoinSql), the snapshot's tiers as
-- rows with each tier's context range explicit.
--
-- Locks: price_snapshots SHARE ROW EXCLUSIVE for the whole migration (no price version is
-- added meanwhile, so every snapshot gets its tier rows); usage is read once without
-- blocking anyone (ACCESS SHARE), then ACCESS EXCLUSIVE for the DROP COLUMN alone (a catalog
-- change, no rewrite: the dropped bytes stay in old rows until they are rewritten). Every
-- existing row's copy is checked against what the join gives: any difference aborts the
-- migration (rolled back whole) and names a request_id.

LOCK TABLE "price_snapshots" IN SHARE ROW EXCLUSIVE MODE;

-- CreateTable
CREATE TABLE "price_snapshot_tiers" (
    "snapshot_id" UUID NOT NULL,
    "tier_index" INTEGER NOT NULL,
    "above" BIGINT NOT NULL,
    "up_to" BIGINT,
    "input_price_per_1m" BIGINT NOT NULL,
    "output_price_per_1m" BIGINT NOT NULL,
    "cache_write_5m_price_per_1m" BIGINT NOT NULL,
    "cache_write_1h_price_per_1m" BIGINT NOT NULL,
    "cache_read_price_per_1m" BIGINT NOT NULL,
    "price_per_request" BIGINT,

    CONSTRAINT "price_snapshot_tiers_pkey" PRIMARY KEY ("snapshot_id","tier_index")
);

-- AddForeignKey
ALTER TABLE "price_snapshot_tiers" ADD CONSTRAINT "price_snapshot_tiers_snapshot_id_fkey" FOREIGN KEY ("snapshot_id") REFERENCES "price_snapshots"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A snapshot's tiers as rows: tier i prices the contexts in (the previous tier's up_to, its
-- up_to]; the last tier is unbounded (tierFor gives it to any context no tier covers).
-- Tiers are validated on write (strictly rising up_to, only the last open): a snapshot that
-- is not so is refused here, as its ranges would not say what tierFor does.
CREATE FUNCTION price_snapshot_tier_rows(tiers jsonb) RETURNS TABLE (
  tier_index integer, above bigint, up_to bigint, input bigint, output bigint, write_5m bigint, write_1h bigint, read bigint
) LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  tier jsonb;
  i integer := 0;
  n integer := jsonb_array_length(tiers);
  previous bigint := -1;
  bound bigint;
BEGIN
  FOR tier IN SELECT e FROM jsonb_array_elements(tiers) WITH ORDINALITY AS x(e, o) ORDER BY o LOOP
    bound := CASE WHEN jsonb_typeof(tier->'up_to') = 'number' THEN (tier->>'up_to')::bigint END;
    IF i < n - 1 AND (bound IS NULL OR bound <= previous) THEN
      RAISE EXCEPTION 'price tiers % do not rise strictly to one open-ended last tier', tiers USING ERRCODE = 'check_violation';
    END IF;
    tier_index := i; above := previous; up_to := CASE WHEN i = n - 1 THEN NULL ELSE bound END;
    input := (tier->>'input')::bigint; output := (tier->>'output')::bigint;
    write_5m := (tier->>'cache_write_5m')::bigint; write_1h := (tier->>'cache_write_1h')::bigint; read := (tier->>'cache_read')::bigint;
    RETURN NEXT;
    previous := bound; i := i + 1;
  END LOOP;
END $$;

-- Each snapshot's tier rows, written with it (snapshots are never updated or deleted).
CREATE FUNCTION price_snapshots_tiers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO price_snapshot_tiers (snapshot_id, tier_index, above, up_to, input_price_per_1m, output_price_per_1m,
                                    cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m, price_per_request)
  SELECT NEW.id, t.tier_index, t.above, t.up_to, t.input, t.output, t.write_5m, t.write_1h, t.read, NEW.price_per_request
    FROM price_snapshot_tier_rows(NEW.tiers) t;
  RETURN NULL;
END $$;
CREATE TRIGGER price_snapshots_tiers AFTER INSERT ON price_snapshots FOR EACH ROW EXECUTE FUNCTION price_snapshots_tiers();

INSERT INTO price_snapshot_tiers (snapshot_id, tier_index, above, up_to, input_price_per_1m, output_price_per_1m,
                                  cache_write_5m_price_per_1m, cache_write_1h_price_per_1m, cache_read_price_per_1m, price_per_request)
SELECT s.id, t.tier_index, t.above, t.up_to, t.input, t.output, t.write_5m, t.write_1h, t.read, s.price_per_request
  FROM price_snapshots s CROSS JOIN LATERAL price_snapshot_tier_rows(s.tiers) t;

-- Every row's copy must be what the join gives: its six unit prices, and its pricing source
-- (null while in flight, else "model_price" when a version priced it, "unpriced" otherwise).
DO $$
DECLARE
  bad record;
BEGIN
  SELECT u.request_id, u.model_price_id, pt.snapshot_id IS NULL AS no_tier INTO bad
    FROM usage u
    CROSS JOIN LATERAL (SELECT u.input_tokens::bigint + u.cache_creation_5m_input_tokens + u.cache_creation_1h_input_tokens + u.cache_read_input_tokens AS context) c
    LEFT JOIN price_snapshot_tiers pt ON pt.snapshot_id = u.model_price_id AND c.context > pt.above AND (pt.up_to IS NULL OR c.context <= pt.up_to)
   WHERE (u.input_price_per_1m, u.output_price_per_1m, u.cache_write_5m_price_per_1m, u.cache_write_1h_price_per_1m, u.cache_read_price_per_1m, u.price_per_request)
         IS DISTINCT FROM (pt.input_price_per_1m, pt.output_price_per_1m, pt.cache_write_5m_price_per_1m, pt.cache_write_1h_price_per_1m, pt.cache_read_price_per_1m, pt.price_per_request)
      OR u.pricing_source IS DISTINCT FROM (CASE WHEN u.status IN ('pending', 'streaming') THEN NULL WHEN u.model_price_id IS NULL THEN 'unpriced' ELSE 'model_price' END)
   LIMIT 1;
  IF NOT FOUND THEN RETURN; END IF;
  RAISE EXCEPTION 'usage row % (price version %, its tier %): its unit prices or pricing source differ from what its price snapshot, tokens and status give; not dropped',
    bad.request_id, bad.model_price_id, CASE WHEN bad.no_tier THEN 'not found' ELSE 'found' END;
END $$;

-- AlterTable
ALTER TABLE "usage" DROP COLUMN "cache_read_price_per_1m",
DROP COLUMN "cache_write_1h_price_per_1m",
DROP COLUMN "cache_write_5m_price_per_1m",
DROP COLUMN "input_price_per_1m",
DROP COLUMN "output_price_per_1m",
DROP COLUMN "price_per_request",
DROP COLUMN "pricing_source";
