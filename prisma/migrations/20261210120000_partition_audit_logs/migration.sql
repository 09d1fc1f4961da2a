-- audit_logs range-partitioned by UTC month on created_at (src/db/partitions.ts; docs/scaling.md, Time partitioning).
-- Prisma's own DDL for the model change is only the key: DROP CONSTRAINT "audit_logs_pkey", ADD PRIMARY KEY ("id", "created_at").
-- The cheap path: the existing table is attached whole as one partition spanning the months its rows cover, so no
-- row is copied; ATTACH checks its rows by one scan, and builds its (id, created_at) key index. Every other index
-- of the old table matches the parent's and is attached as it is. The whole migration holds ACCESS EXCLUSIVE on
-- the old table (the first ALTER takes it), so nothing writes or reads audit rows until it commits.

-- the old table and its indexes step aside: the partitioned parent takes their names, which Prisma expects
ALTER TABLE "audit_logs" DROP CONSTRAINT "audit_logs_pkey";
ALTER TABLE "audit_logs" RENAME TO "audit_logs_unpartitioned";
ALTER INDEX "audit_logs_created_at_idx" RENAME TO "audit_logs_unpartitioned_created_at_idx";
ALTER INDEX "audit_logs_user_id_created_at_idx" RENAME TO "audit_logs_unpartitioned_user_id_created_at_idx";
ALTER INDEX "audit_logs_action_created_at_idx" RENAME TO "audit_logs_unpartitioned_action_created_at_idx";
ALTER INDEX "audit_logs_event_type_created_at_idx" RENAME TO "audit_logs_unpartitioned_event_type_created_at_idx";

-- CreateTable
CREATE TABLE "audit_logs" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "event_type" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "principal_type" TEXT NOT NULL,
    "user_id" UUID,
    "management_token_id" UUID,
    "ip" TEXT,
    "user_agent" TEXT,
    "request_id" TEXT,
    "method" TEXT,
    "path" TEXT,
    "status_code" INTEGER,
    "success" BOOLEAN NOT NULL,
    "duration_ms" INTEGER,
    "metadata" JSONB,
    "error_message" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_logs_pkey" PRIMARY KEY ("id", "created_at")
) PARTITION BY RANGE ("created_at");

-- CreateIndex
CREATE INDEX "audit_logs_created_at_idx" ON "audit_logs"("created_at");

-- CreateIndex
CREATE INDEX "audit_logs_user_id_created_at_idx" ON "audit_logs"("user_id", "created_at");

-- CreateIndex
CREATE INDEX "audit_logs_action_created_at_idx" ON "audit_logs"("action", "created_at");

-- CreateIndex
CREATE INDEX "audit_logs_event_type_created_at_idx" ON "audit_logs"("event_type", "created_at");

-- months as UTC wall-clock timestamps, turned into timestamptz literals only in the DDL
DO $$
DECLARE
  this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
  first_month timestamp;
  end_month timestamp;
  name text;
  month timestamp;
BEGIN
  SELECT date_trunc('month', min(created_at) AT TIME ZONE 'UTC'), date_trunc('month', max(created_at) AT TIME ZONE 'UTC') + interval '1 month'
    INTO first_month, end_month FROM "audit_logs_unpartitioned";
  -- the old rows' months, through the current one (an empty table becomes the current month's partition)
  first_month := least(coalesce(first_month, this_month), this_month);
  end_month := greatest(coalesce(end_month, this_month + interval '1 month'), this_month + interval '1 month');
  name := 'audit_logs_p' || to_char(first_month, 'YYYY_MM')
    || CASE WHEN end_month = first_month + interval '1 month' THEN '' ELSE '_' || to_char(end_month - interval '1 month', 'YYYY_MM') END;
  EXECUTE format('ALTER TABLE "audit_logs_unpartitioned" RENAME TO %I', name);
  EXECUTE format('ALTER INDEX "audit_logs_unpartitioned_created_at_idx" RENAME TO %I', name || '_created_at_idx');
  EXECUTE format('ALTER INDEX "audit_logs_unpartitioned_user_id_created_at_idx" RENAME TO %I', name || '_user_id_created_at_idx');
  EXECUTE format('ALTER INDEX "audit_logs_unpartitioned_action_created_at_idx" RENAME TO %I', name || '_action_created_at_idx');
  EXECUTE format('ALTER INDEX "audit_logs_unpartitioned_event_type_created_at_idx" RENAME TO %I', name || '_event_type_created_at_idx');
  EXECUTE format('ALTER TABLE "audit_logs" ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name,
    to_char(first_month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'), to_char(end_month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
  -- the months ahead the app keeps ready (src/db/partitions.ts MONTHS_AHEAD = 3), named as it names them
  month := end_month;
  WHILE month <= this_month + interval '3 months' LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF "audit_logs" FOR VALUES FROM (%L) TO (%L)', 'audit_logs_p' || to_char(month, 'YYYY_MM'),
      to_char(month, 'YYYY-MM-DD"T"HH24:MI:SS"+00"'), to_char(month + interval '1 month', 'YYYY-MM-DD"T"HH24:MI:SS"+00"'));
    month := month + interval '1 month';
  END LOOP;
END $$;

-- a row whose month has no partition yet lands here, never refused (src/db/partitions.ts)
CREATE TABLE "audit_logs_default" PARTITION OF "audit_logs" DEFAULT;
