-- CreateTable
CREATE TABLE "cache_points_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "count" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "cache_points_hourly_pkey" PRIMARY KEY ("bucket","user_id")
);

-- CreateIndex
CREATE INDEX "cache_points_hourly_user_id_bucket_idx" ON "cache_points_hourly"("user_id", "bucket");
