-- CreateTable
CREATE TABLE "cache_timeline_tail" (
    "scope" TEXT NOT NULL,
    "scope_id" UUID NOT NULL,
    "last_at" TIMESTAMPTZ(3) NOT NULL,
    "last_request_id" TEXT NOT NULL,
    "user_id" UUID,
    "api_key_id" UUID NOT NULL,
    "cache_write_5m_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_write_1h_tokens" INTEGER NOT NULL DEFAULT 0,
    "cache_write_5m_price_per_1m" BIGINT,
    "cache_write_1h_price_per_1m" BIGINT,

    CONSTRAINT "cache_timeline_tail_pkey" PRIMARY KEY ("scope","scope_id")
);

-- CreateIndex
CREATE INDEX "cache_timeline_tail_scope_last_at_idx" ON "cache_timeline_tail"("scope", "last_at");
