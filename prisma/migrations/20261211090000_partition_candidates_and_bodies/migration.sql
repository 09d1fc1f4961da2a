-- request_candidates and usage_bodies range-partitioned by UTC month on created_at (src/db/partitions.ts;
-- docs/scaling.md, Time partitioning), as audit_logs was (20261210120000): each old table is attached whole as one
-- partition spanning its rows' months through the current one, so no row is copied. Prisma's own DDL for the model
-- change is only the keys: both primary keys gain created_at, and the candidates' unique key
-- (request_id, candidate_index, retry_index) gains it too. A candidate's created_at is its request's (ingestion and
-- the seed write it so), so one candidate still has one key. ATTACH scans each old table once to check its rows'
-- months and builds the new key indexes on it; the other indexes and the bodies' foreign key match the parent's and
-- are attached as they are. The migration holds ACCESS EXCLUSIVE on both tables until it commits: ingestion, which
-- writes candidates and bodies, waits meanwhile (measured in docs/scaling.md).

-- the old tables and their indexes step aside: the partitioned parents take their names, which Prisma expects
ALTER TABLE "request_candidates" DROP CONSTRAINT "request_candidates_pkey";
DROP INDEX "request_candidates_request_id_candidate_index_retry_index_key";
ALTER TABLE "request_candidates" RENAME TO "request_candidates_unpartitioned";
ALTER INDEX "request_candidates_provider_id_created_at_idx" RENAME TO "request_candidates_unpartitioned_provider_id_created_at_idx";
ALTER TABLE "usage_bodies" DROP CONSTRAINT "usage_bodies_pkey";
ALTER TABLE "usage_bodies" RENAME TO "usage_bodies_unpartitioned";
ALTER INDEX "usage_bodies_created_at_idx" RENAME TO "usage_bodies_unpartitioned_created_at_idx";

-- CreateTable
CREATE TABLE "request_candidates" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "request_id" TEXT NOT NULL,
    "candidate_index" INTEGER NOT NULL,
    "retry_index" INTEGER NOT NULL DEFAULT 0,
    "user_id" UUID,
    "api_key_id" UUID,
    "provider_id" UUID,
    "provider_endpoint_id" UUID,
    "provider_api_key_id" UUID,
    "status" "candidate_status" NOT NULL,
    "skip_reason" TEXT,
    "is_cached" BOOLEAN NOT NULL DEFAULT false,
    "status_code" INTEGER,
    "error_type" TEXT,
    "error_message" TEXT,
    "latency_ms" INTEGER,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "request_candidates_pkey" PRIMARY KEY ("id", "created_at")
) PARTITION BY RANGE ("created_at");

-- CreateIndex
CREATE INDEX "request_candidates_provider_id_created_at_idx" ON "request_candidates"("provider_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "request_candidates_request_id_candidate_index_retry_index_c_key" ON "request_candidates"("request_id", "candidate_index", "retry_index", "created_at");

-- CreateTable
CREATE TABLE "usage_bodies" (
    "usage_id" UUID NOT NULL,
    "request_headers" JSONB,
    "response_headers" JSONB,
    "request_body" JSONB,
    "response_body" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_bodies_pkey" PRIMARY KEY ("usage_id", "created_at")
) PARTITION BY RANGE ("created_at");

-- CreateIndex
CREATE INDEX "usage_bodies_created_at_idx" ON "usage_bodies"("created_at");

-- AddForeignKey (the old table's own, of the same definition, is attached to it below rather than checked again)
ALTER TABLE "usage_bodies" ADD CONSTRAINT "usage_bodies_usage_id_fkey" FOREIGN KEY ("usage_id") REFERENCES "usage"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The old table `parent`_unpartitioned becomes one partition of `parent` spanning its rows' months through the
-- current one (an empty table becomes the current month's), its `indexes` renamed after it; then the months ahead the
-- app keeps ready (src/db/partitions.ts MONTHS_AHEAD = 3), named as it names them, and the default. Months are UTC
-- wall-clock timestamps, turned into timestamptz literals only in the DDL.
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

SELECT pg_temp.attach_whole('request_candidates', ARRAY['provider_id_created_at_idx']);
SELECT pg_temp.attach_whole('usage_bodies', ARRAY['created_at_idx']);
DROP FUNCTION pg_temp.attach_whole(text, text[]);
