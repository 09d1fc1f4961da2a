-- CreateTable
CREATE TABLE "cache_interval_daily" (
    "day" DATE NOT NULL,
    "scope" TEXT NOT NULL,
    "scope_id" UUID NOT NULL,
    "bin_index" INTEGER NOT NULL,
    "count" INTEGER NOT NULL DEFAULT 0,
    "sum_ms" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "cache_interval_daily_pkey" PRIMARY KEY ("scope","scope_id","day","bin_index")
);

-- CreateTable
CREATE TABLE "cache_points_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "count" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "cache_points_hourly_pkey" PRIMARY KEY ("bucket","user_id")
);

-- CreateIndex
CREATE INDEX "cache_interval_daily_scope_day_idx" ON "cache_interval_daily"("scope", "day");

-- CreateIndex
CREATE INDEX "cache_points_hourly_user_id_bucket_idx" ON "cache_points_hourly"("user_id", "bucket");
