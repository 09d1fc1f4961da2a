-- The tenant (src/modules/accounting/tenant.ts: a key's owner, or a standalone key itself) added to
-- the keys of the three tables keyed by a key or a scope alone, which a Citus cluster would distribute
-- by it (docs/scaling.md). Last in each key: one node's lookups keep their prefix. Each table is
-- rewritten once by ALTER … TYPE … USING (an UPDATE of every row would leave each table twice its size).

-- a key's tenant (USING allows no subquery; a function may read)
CREATE FUNCTION pg_temp.key_tenant(key uuid) RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT CASE WHEN k.is_standalone THEN k.id ELSE k.user_id END FROM api_keys k WHERE k.id = key $$;

-- The rate window's seconds; a deleted key's count for no window: dropped
DELETE FROM "usage_key_seconds" s WHERE NOT EXISTS (SELECT FROM "api_keys" k WHERE k."id" = s."api_key_id");
ALTER TABLE "usage_key_seconds" ADD COLUMN "tenant_id" UUID;
ALTER TABLE "usage_key_seconds" ALTER COLUMN "tenant_id" TYPE UUID USING pg_temp.key_tenant("api_key_id"),
  ALTER COLUMN "tenant_id" SET NOT NULL,
  DROP CONSTRAINT "usage_key_seconds_pkey",
  ADD CONSTRAINT "usage_key_seconds_pkey" PRIMARY KEY ("api_key_id", "second", "tenant_id");

-- The histograms and the timelines' last requests: a user scope is its own tenant, a key scope its key's
-- (a hard-deleted key's rows went with it: accounting/corrections.ts forgetKey)
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES ('cache_interval_hourly', 'scope, scope_id, bucket, tenant_id'), ('cache_timeline_tail', 'scope, scope_id, tenant_id')) AS v(name, key) LOOP
    EXECUTE format($q$DELETE FROM %I s WHERE s.scope <> 'user' AND NOT EXISTS (SELECT FROM api_keys k WHERE k.id = s.scope_id)$q$, t.name);
    EXECUTE format('ALTER TABLE %I ADD COLUMN tenant_id UUID', t.name);
    EXECUTE format($q$ALTER TABLE %I ALTER COLUMN tenant_id TYPE UUID USING CASE WHEN scope = 'user' THEN scope_id ELSE pg_temp.key_tenant(scope_id) END,
      ALTER COLUMN tenant_id SET NOT NULL, DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY (%s)$q$,
      t.name, t.name || '_pkey', t.name || '_pkey', t.key);
  END LOOP;
END $$;

DROP FUNCTION pg_temp.key_tenant(uuid);
