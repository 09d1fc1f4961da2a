-- CreateEnum
CREATE TYPE "user_role" AS ENUM ('admin', 'user');

-- CreateEnum
CREATE TYPE "billing_type" AS ENUM ('monthly_quota', 'pay_as_you_go', 'free_tier');

-- CreateEnum
CREATE TYPE "usage_status" AS ENUM ('pending', 'streaming', 'completed', 'failed', 'cancelled');

-- CreateEnum
CREATE TYPE "candidate_status" AS ENUM ('available', 'pending', 'streaming', 'success', 'failed', 'skipped');

-- CreateTable
CREATE TABLE "users" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "email" TEXT,
    "username" TEXT NOT NULL,
    "password_hash" TEXT NOT NULL,
    "role" "user_role" NOT NULL DEFAULT 'user',
    "allowed_providers" JSONB,
    "allowed_api_formats" JSONB,
    "allowed_models" JSONB,
    "quota" BIGINT,
    "used" BIGINT NOT NULL DEFAULT 0,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "is_deleted" BOOLEAN NOT NULL DEFAULT false,
    "last_login_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "user_sessions" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" UUID NOT NULL,
    "token_hash" TEXT NOT NULL,
    "ip" TEXT,
    "user_agent" TEXT,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_keys" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" UUID NOT NULL,
    "key_hash" TEXT NOT NULL,
    "key_prefix" TEXT NOT NULL,
    "key_encrypted" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "tags" JSONB,
    "allowed_providers" JSONB,
    "allowed_api_formats" JSONB,
    "allowed_models" JSONB,
    "rate_limit" INTEGER,
    "concurrent_limit" INTEGER,
    "daily_cost_limit" BIGINT,
    "total_cost_limit" BIGINT,
    "is_standalone" BOOLEAN NOT NULL DEFAULT false,
    "current_balance" BIGINT,
    "balance_used" BIGINT NOT NULL DEFAULT 0,
    "total_requests" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "expires_at" TIMESTAMPTZ(3),
    "auto_delete_on_expiry" BOOLEAN,
    "last_used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "providers" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "billing_type" "billing_type" NOT NULL DEFAULT 'pay_as_you_go',
    "monthly_quota" BIGINT,
    "monthly_used" BIGINT NOT NULL DEFAULT 0,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "config" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "providers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "provider_endpoints" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "provider_id" UUID NOT NULL,
    "api_format" TEXT NOT NULL,
    "base_url" TEXT NOT NULL,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "provider_endpoints_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "provider_api_keys" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "provider_id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "secret_encrypted" TEXT NOT NULL,
    "secret_display" TEXT NOT NULL,
    "rate_multiplier" DECIMAL(12,6) NOT NULL DEFAULT 1,
    "cache_ttl_minutes" INTEGER NOT NULL DEFAULT 5,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "expires_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "provider_api_keys_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "model_prices" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "model" TEXT NOT NULL,
    "provider_id" UUID,
    "tiers" JSONB NOT NULL,
    "price_per_request" BIGINT,
    "effective_from" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "model_prices_pkey" PRIMARY KEY ("id")
);

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
    "actual_input_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_output_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_request_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "input_price_per_1m" BIGINT,
    "output_price_per_1m" BIGINT,
    "cache_write_5m_price_per_1m" BIGINT,
    "cache_write_1h_price_per_1m" BIGINT,
    "cache_read_price_per_1m" BIGINT,
    "price_per_request" BIGINT,
    "pricing_source" TEXT,
    "model_price_id" UUID,
    "tiered_pricing" JSONB,
    "rate_multiplier" DECIMAL(12,6) NOT NULL DEFAULT 1,
    "response_time_ms" INTEGER,
    "first_byte_time_ms" INTEGER,
    "metadata" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finished_at" TIMESTAMPTZ(3),
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "usage_bodies" (
    "usage_id" UUID NOT NULL,
    "request_headers" JSONB,
    "response_headers" JSONB,
    "request_body" JSONB,
    "response_body" JSONB,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_bodies_pkey" PRIMARY KEY ("usage_id")
);

-- CreateTable
CREATE TABLE "gateway_events" (
    "request_id" TEXT NOT NULL,
    "event_type" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "gateway_events_pkey" PRIMARY KEY ("request_id","event_type")
);

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

    CONSTRAINT "request_candidates_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "usage_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "user_id" UUID NOT NULL,
    "api_key_id" UUID NOT NULL,
    "provider_id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "api_format" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" INTEGER NOT NULL DEFAULT 0,
    "cache_hit_requests" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_pkey" PRIMARY KEY ("bucket","user_id","api_key_id","provider_id","model","api_format")
);

-- CreateTable
CREATE TABLE "usage_hourly_model" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "provider_id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "api_format" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_cost" BIGINT NOT NULL DEFAULT 0,
    "cache_read_cost" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" INTEGER NOT NULL DEFAULT 0,
    "cache_hit_requests" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_hourly_model_pkey" PRIMARY KEY ("bucket","provider_id","model","api_format")
);

-- CreateTable
CREATE TABLE "usage_daily_key" (
    "day" DATE NOT NULL,
    "user_id" UUID NOT NULL,
    "api_key_id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "requests" INTEGER NOT NULL DEFAULT 0,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "input_tokens" BIGINT NOT NULL DEFAULT 0,
    "output_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_creation_tokens" BIGINT NOT NULL DEFAULT 0,
    "cache_read_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_tokens" BIGINT NOT NULL DEFAULT 0,
    "total_cost" BIGINT NOT NULL DEFAULT 0,
    "actual_total_cost" BIGINT NOT NULL DEFAULT 0,
    "response_time_sum_ms" BIGINT NOT NULL DEFAULT 0,
    "response_time_count" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "usage_daily_key_pkey" PRIMARY KEY ("day","user_id","api_key_id","model")
);

-- CreateTable
CREATE TABLE "cache_interval_hourly" (
    "bucket" TIMESTAMPTZ(3) NOT NULL,
    "scope" TEXT NOT NULL,
    "scope_id" UUID NOT NULL,
    "bin_index" INTEGER NOT NULL,
    "count" INTEGER NOT NULL DEFAULT 0,
    "sum_ms" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "cache_interval_hourly_pkey" PRIMARY KEY ("scope","scope_id","bucket","bin_index")
);

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

    CONSTRAINT "audit_logs_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "management_tokens" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "user_id" UUID NOT NULL,
    "token_hash" TEXT NOT NULL,
    "token_prefix" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "allowed_ips" JSONB,
    "expires_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),
    "last_used_ip" TEXT,
    "usage_count" INTEGER NOT NULL DEFAULT 0,
    "is_active" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "management_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");

-- CreateIndex
CREATE UNIQUE INDEX "users_username_key" ON "users"("username");

-- CreateIndex
CREATE UNIQUE INDEX "user_sessions_token_hash_key" ON "user_sessions"("token_hash");

-- CreateIndex
CREATE INDEX "user_sessions_user_id_idx" ON "user_sessions"("user_id");

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys"("key_hash");

-- CreateIndex
CREATE INDEX "api_keys_user_id_idx" ON "api_keys"("user_id");

-- CreateIndex
CREATE INDEX "api_keys_is_active_expires_at_idx" ON "api_keys"("is_active", "expires_at");

-- CreateIndex
CREATE UNIQUE INDEX "providers_name_key" ON "providers"("name");

-- CreateIndex
CREATE UNIQUE INDEX "provider_endpoints_provider_id_api_format_key" ON "provider_endpoints"("provider_id", "api_format");

-- CreateIndex
CREATE INDEX "provider_api_keys_provider_id_idx" ON "provider_api_keys"("provider_id");

-- CreateIndex
CREATE INDEX "model_prices_model_effective_from_idx" ON "model_prices"("model", "effective_from");

-- CreateIndex
CREATE UNIQUE INDEX "model_prices_model_provider_id_effective_from_key" ON "model_prices"("model", "provider_id", "effective_from");

-- CreateIndex
CREATE UNIQUE INDEX "usage_request_id_key" ON "usage"("request_id");

-- CreateIndex
CREATE INDEX "usage_created_at_idx" ON "usage"("created_at");

-- CreateIndex
CREATE INDEX "usage_api_key_id_created_at_idx" ON "usage"("api_key_id", "created_at");

-- CreateIndex
CREATE INDEX "usage_user_id_created_at_idx" ON "usage"("user_id", "created_at");

-- CreateIndex
CREATE INDEX "usage_model_created_at_idx" ON "usage"("model", "created_at");

-- CreateIndex
CREATE INDEX "usage_provider_id_created_at_idx" ON "usage"("provider_id", "created_at");

-- CreateIndex
CREATE INDEX "usage_status_idx" ON "usage"("status");

-- CreateIndex
CREATE INDEX "usage_bodies_created_at_idx" ON "usage_bodies"("created_at");

-- CreateIndex
CREATE INDEX "request_candidates_provider_id_created_at_idx" ON "request_candidates"("provider_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "request_candidates_request_id_candidate_index_retry_index_key" ON "request_candidates"("request_id", "candidate_index", "retry_index");

-- CreateIndex
CREATE INDEX "usage_hourly_api_key_id_bucket_idx" ON "usage_hourly"("api_key_id", "bucket");

-- CreateIndex
CREATE INDEX "usage_hourly_user_id_bucket_idx" ON "usage_hourly"("user_id", "bucket");

-- CreateIndex
CREATE INDEX "usage_daily_key_api_key_id_day_idx" ON "usage_daily_key"("api_key_id", "day");

-- CreateIndex
CREATE INDEX "usage_daily_key_user_id_day_idx" ON "usage_daily_key"("user_id", "day");

-- CreateIndex
CREATE INDEX "audit_logs_created_at_idx" ON "audit_logs"("created_at");

-- CreateIndex
CREATE INDEX "audit_logs_user_id_created_at_idx" ON "audit_logs"("user_id", "created_at");

-- CreateIndex
CREATE INDEX "audit_logs_action_created_at_idx" ON "audit_logs"("action", "created_at");

-- CreateIndex
CREATE INDEX "audit_logs_event_type_created_at_idx" ON "audit_logs"("event_type", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "management_tokens_token_hash_key" ON "management_tokens"("token_hash");

-- CreateIndex
CREATE UNIQUE INDEX "management_tokens_user_id_name_key" ON "management_tokens"("user_id", "name");

-- AddForeignKey
ALTER TABLE "user_sessions" ADD CONSTRAINT "user_sessions_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_endpoints" ADD CONSTRAINT "provider_endpoints_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "providers"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_api_keys" ADD CONSTRAINT "provider_api_keys_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "providers"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "model_prices" ADD CONSTRAINT "model_prices_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "providers"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage" ADD CONSTRAINT "usage_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage" ADD CONSTRAINT "usage_api_key_id_fkey" FOREIGN KEY ("api_key_id") REFERENCES "api_keys"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage" ADD CONSTRAINT "usage_provider_id_fkey" FOREIGN KEY ("provider_id") REFERENCES "providers"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage" ADD CONSTRAINT "usage_provider_endpoint_id_fkey" FOREIGN KEY ("provider_endpoint_id") REFERENCES "provider_endpoints"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage" ADD CONSTRAINT "usage_provider_api_key_id_fkey" FOREIGN KEY ("provider_api_key_id") REFERENCES "provider_api_keys"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "usage_bodies" ADD CONSTRAINT "usage_bodies_usage_id_fkey" FOREIGN KEY ("usage_id") REFERENCES "usage"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "management_tokens" ADD CONSTRAINT "management_tokens_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;
