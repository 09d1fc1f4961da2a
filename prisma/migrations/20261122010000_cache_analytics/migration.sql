-- CreateTable
CREATE TABLE "cache_savings_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "api_key_id" UUID NOT NULL,
    "read_saving" BIGINT NOT NULL DEFAULT 0,
    "write_5m_premium" BIGINT NOT NULL DEFAULT 0,
    "write_1h_premium" BIGINT NOT NULL DEFAULT 0,
    "cache_write_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_write_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_5m_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_1h_tokens" BIGINT NOT NULL DEFAULT 0,
    "wasted_cost" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "cache_savings_hourly_pkey" PRIMARY KEY ("bucket","user_id","api_key_id")
);

-- CreateIndex
CREATE INDEX "cache_savings_hourly_api_key_id_bucket_idx" ON "cache_savings_hourly"("api_key_id", "bucket");

-- CreateIndex
CREATE INDEX "cache_savings_hourly_user_id_bucket_idx" ON "cache_savings_hourly"("user_id", "bucket");

-- CreateIndex
CREATE INDEX "cache_interval_hourly_scope_bucket_idx" ON "cache_interval_hourly"("scope", "bucket");
