-- CreateTable
CREATE TABLE "usage_key_seconds" (
    "api_key_id" UUID NOT NULL,
    "second" TIMESTAMPTZ(3) NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "tokens" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "usage_key_seconds_pkey" PRIMARY KEY ("api_key_id","second")
);

-- CreateIndex
CREATE INDEX "usage_key_seconds_second_idx" ON "usage_key_seconds"("second");

-- The windows already open: every key's usage rows of the last day, by second (any status)
INSERT INTO "usage_key_seconds" ("api_key_id", "second", "requests", "tokens")
SELECT "api_key_id", date_trunc('second', "created_at"), count(*), sum("total_tokens")
  FROM "usage"
 WHERE "api_key_id" IS NOT NULL AND "created_at" > now() - interval '1 day'
 GROUP BY 1, 2;
