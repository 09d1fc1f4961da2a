-- The errors distribution's rollup (issue 19; accounting/model.ts, table usage_errors_hourly):
-- failed requests per hour (UTC) × provider (nil: none) × HTTP status (0: none), written by
-- ingestion with the other rollups. The DDL is Prisma's; the backfill counts the failed raw
-- rows (a deleted provider's rows, whose provider_id is NULL now, land on the nil provider,
-- where a GROUP BY of the raw rows puts them).

-- CreateTable
CREATE TABLE "usage_errors_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "status_code" INTEGER NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_errors_hourly_pkey" PRIMARY KEY ("bucket","provider_id","status_code")
);

INSERT INTO "usage_errors_hourly" ("bucket", "provider_id", "status_code", "requests")
SELECT date_trunc('hour', "created_at", 'UTC'), coalesce("provider_id", '00000000-0000-0000-0000-000000000000'::uuid), coalesce("status_code", 0), count(*)
  FROM "usage" WHERE "status" = 'failed'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
