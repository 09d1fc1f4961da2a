-- usage range-partitioned by UTC month on created_at (src/db/partitions.ts; docs/scaling.md, Time partitioning), as
-- audit_logs, request_candidates and usage_bodies were: the old table is attached whole as one partition spanning its
-- rows' months through the current one, so no usage row is copied. Prisma's own DDL for the model change: usage's key
-- gains created_at, its unique request_id goes, the bodies' foreign key references (id, created_at), and the new
-- table usage_requests keeps one row per request id across every partition (a partitioned table's unique key must
-- include created_at, and two batches creating one request may date it differently). usage's statement triggers
-- write usage_requests, so every writer of usage keeps it (ingestion, the seed, an operator's INSERT); a second usage
-- row for a request fails on its key, as it failed on usage_request_id_key before. The migration holds ACCESS
-- EXCLUSIVE on usage until it commits: ingestion, reservations and the statistics' raw reads wait meanwhile (measured
-- in docs/scaling.md).

-- the bodies' foreign key names usage's old key: it goes first and comes back on (id, created_at) below
ALTER TABLE "usage_bodies" DROP CONSTRAINT "usage_bodies_usage_id_fkey";

-- Bodies stored before 20261211090000 are dated when they were stored, a few seconds after their request; the new
-- key needs their request's time. Such a body is re-dated (it may move to its request's month partition), unless its
-- request also has a body dated by it (a completion stored again since): that one is what readers find, the old one goes.
DELETE FROM "usage_bodies" b USING "usage" u
 WHERE u.id = b.usage_id AND b.created_at <> u.created_at
   AND EXISTS (SELECT 1 FROM "usage_bodies" c WHERE c.usage_id = b.usage_id AND c.created_at = u.created_at);
UPDATE "usage_bodies" b SET created_at = u.created_at FROM "usage" u WHERE u.id = b.usage_id AND b.created_at <> u.created_at;

-- the request ids, one per request, filled before usage's unique index goes; the key built once the rows are in
CREATE TABLE "usage_requests" (
    "request_id" TEXT NOT NULL,
    "usage_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL
);
INSERT INTO "usage_requests" ("request_id", "usage_id", "created_at") SELECT "request_id", "id", "created_at" FROM "usage";
ALTER TABLE "usage_requests" ADD CONSTRAINT "usage_requests_pkey" PRIMARY KEY ("request_id");

-- the old table and its indexes step aside: the partitioned parent takes their names, which Prisma expects
ALTER TABLE "usage" DROP CONSTRAINT "usage_pkey";
DROP INDEX "usage_request_id_key";
ALTER TABLE "usage" RENAME TO "usage_unpartitioned";
ALTER INDEX "usage_created_at_idx" RENAME TO "usage_unpartitioned_created_at_idx";
ALTER INDEX "usage_api_key_id_created_at_idx" RENAME TO "usage_unpartitioned_api_key_id_created_at_idx";
ALTER INDEX "usage_user_id_created_at_idx" RENAME TO "usage_unpartitioned_user_id_created_at_idx";
ALTER INDEX "usage_model_created_at_idx" RENAME TO "usage_unpartitioned_model_created_at_idx";
ALTER INDEX "usage_provider_id_created_at_idx" RENAME TO "usage_unpartitioned_provider_id_created_at_idx";
ALTER INDEX "usage_provider_endpoint_id_idx" RENAME TO "usage_unpartitioned_provider_endpoint_id_idx";
ALTER INDEX "usage_provider_api_key_id_idx" RENAME TO "usage_unpartitioned_provider_api_key_id_idx";
ALTER INDEX "usage_failed_user_idx" RENAME TO "usage_unpartitioned_failed_user_idx";
ALTER INDEX "usage_in_flight_key_idx" RENAME TO "usage_unpartitioned_in_flight_key_idx";

-- CreateTable
CREATE TABLE "usage" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "request_id" TEXT NOT NULL,
    "user_id" UUID,
    "api_key_id" UUID,
    "provider_id" UUID,
    "provider_endpoint_id" UUID,
    "provider_api_key_id" UUID,
    "provider_name" TEXT,
    "model" TEXT NOT NULL,
    "target_model" TEXT,
    "api_format" TEXT,
    "is_stream" BOOLEAN NOT NULL DEFAULT false,
    "status" "usage_status" NOT NULL DEFAULT 'pending',
    "status_code" INTEGER,
    "error_message" TEXT,
    "input_tokens" INTEGER NOT NULL DEFAULT 0,
    "output_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_creation_input_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_creation_5m_input_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_creation_1h_input_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_read_input_tokens" INTEGER NOT NULL DEFAULT 0,
    "total_tokens" INTEGER NOT NULL DEFAULT 0,
    "input_cost" BIGINT NOT NULL DEFAULT 0,
    "output_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "request_cost" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "model_price_id" UUID,
    "rate_multiplier" DECIMAL(12,6) NOT NULL DEFAULT 1,
    "response_time_ms" INTEGER,
    "first_byte_time_ms" INTEGER,
    "metadata" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_pkey" PRIMARY KEY ("id","created_at")
) PARTITION BY RANGE ("created_at");

-- CreateIndex
CREATE INDEX "usage_created_at_idx" ON "usage"("created_at");
CREATE INDEX "usage_api_key_id_created_at_idx" ON "usage"("api_key_id", "created_at");
CREATE INDEX "usage_user_id_created_at_idx" ON "usage"("user_id", "created_at");
CREATE INDEX "usage_model_created_at_idx" ON "usage"("model", "created_at");
CREATE INDEX "usage_provider_id_created_at_idx" ON "usage"("provider_id", "created_at");
-- the partial ones (src/db/drift.ts EXTRA_INDEXES), as their migrations made them
CREATE INDEX "usage_provider_endpoint_id_idx" ON "usage" ("provider_endpoint_id") WHERE "provider_endpoint_id" IS NOT NULL;
CREATE INDEX "usage_provider_api_key_id_idx" ON "usage" ("provider_api_key_id") WHERE "provider_api_key_id" IS NOT NULL;
CREATE INDEX "usage_failed_user_idx" ON "usage" ("user_id", "created_at") INCLUDE ("provider_id", "status_code") WHERE "status" = 'failed';
CREATE INDEX "usage_in_flight_key_idx" ON "usage" ("api_key_id", "created_at") WHERE "status" IN ('pending', 'streaming');

-- usage_requests follows usage: a statement's inserted rows add their ids (a request already there fails on
-- usage_requests_pkey: ingestion runs its batch again, as it did on usage_request_id_key), its deleted rows take
-- theirs away. Per statement, not per row: ingestion's upsert pays one INSERT … SELECT a batch. A month dropped whole
-- fires no trigger: the cleanup deletes its ids first (src/db/partitions.ts). usage's id, request_id and created_at are
-- never updated (ingestion's upsert leaves them as inserted).
CREATE FUNCTION "usage_requests_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_requests (request_id, usage_id, created_at) SELECT request_id, id, created_at FROM inserted;
  RETURN NULL;
END $$;
CREATE FUNCTION "usage_requests_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM usage_requests q USING deleted d WHERE q.request_id = d.request_id AND q.usage_id = d.id;
  RETURN NULL;
END $$;

-- The old table becomes one partition of usage spanning its rows' months through the current one (an empty table
-- becomes the current month's), its `indexes` renamed after it; then the months ahead the app keeps ready
-- (src/db/partitions.ts MONTHS_AHEAD = 3), named as it names them, and the default (as in 20261211090000).
CREATE FUNCTION pg_temp.attach_whole (parent text, indexes text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  old text := parent || '_unpartitioned';
  this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
  first_month timestamp;
  end_month timestamp;
  name text;
  suffix text;
  month timestamp;
BEGIN
  EXECUTE format('SELECT date_trunc(''month'', min(created_at) AT TIME ZONE ''UTC''), date_trunc(''month'', max(created_at) AT TIME ZONE ''UTC'') + interval ''1 month'' FROM %I', old)
    INTO first_month, end_month;
  first_month := least(coalesce(first_month, this_month), this_month);
  end_month := greatest(coalesce(end_month, this_month + interval '1 month'), this_month + interval '1 month');
  name := parent || '_p' || to_char(first_month, 'YYYY_MM')
    || CASE WHEN end_month = first_month + interval '1 month' THEN '' ELSE '_' || to_char(end_month - interval '1 month', 'YYYY_MM') END;
  EXECUTE format('ALTER TABLE %I RENAME TO %I', old, name);
  FOREACH suffix IN ARRAY indexes LOOP
    EXECUTE format('ALTER INDEX %I RENAME TO %I', old || '_' || suffix, name || '_' || suffix);
  END LOOP;
  EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, name,
    to_char(first_month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'), to_char(end_month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
  month := end_month;
  WHILE month <= this_month + interval '3 months' LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', parent || '_p' || to_char(month, 'YYYY_MM'), parent,
      to_char(month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'), to_char(month + interval '1 month', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
    month := month + interval '1 month';
  END LOOP;
  -- a row whose month has no partition yet lands here, never refused (src/db/partitions.ts)
  EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
END $$;

SELECT pg_temp.attach_whole('usage', ARRAY['created_at_idx', 'api_key_id_created_at_idx', 'user_id_created_at_idx', 'model_created_at_idx',
  'provider_id_created_at_idx', 'provider_endpoint_id_idx', 'provider_api_key_id_idx', 'failed_user_idx', 'in_flight_key_idx']);
DROP FUNCTION pg_temp.attach_whole(text, text[]);

-- A partition never analysed is planned as ten pages of rows however empty it is, and autovacuum waits for writes: the
-- empty months ahead and defaults of every partitioned table are analysed once (instant), as the app analyses those it makes.
DO $$ DECLARE p regclass; BEGIN
  FOR p IN SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN ('usage'::regclass, 'request_candidates'::regclass, 'usage_bodies'::regclass, 'audit_logs'::regclass)
              AND c.reltuples < 0
  LOOP EXECUTE format('ANALYZE %s', p); END LOOP;
END $$;

-- after the attach, so the old rows (whose ids are in already) fire nothing
CREATE TRIGGER "usage_requests_insert" AFTER INSERT ON "usage" REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION "usage_requests_insert"();
CREATE TRIGGER "usage_requests_delete" AFTER DELETE ON "usage" REFERENCING OLD TABLE AS deleted
  FOR EACH STATEMENT EXECUTE FUNCTION "usage_requests_delete"();

-- AddForeignKey: checked once against the new key, which ATTACH built on the old table
ALTER TABLE "usage_bodies" ADD CONSTRAINT "usage_bodies_usage_id_created_at_fkey" FOREIGN KEY ("usage_id", "created_at") REFERENCES "usage"("id", "created_at") ON DELETE CASCADE ON UPDATE CASCADE;
