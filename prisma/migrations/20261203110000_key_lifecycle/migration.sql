-- AlterTable
ALTER TABLE "api_keys" ADD COLUMN     "allowed_ips" JSONB,
ADD COLUMN     "allowed_user_agents" JSONB,
ADD COLUMN     "previous_key_expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "previous_key_hash" TEXT;

-- CreateIndex
CREATE UNIQUE INDEX "api_keys_previous_key_hash_key" ON "api_keys"("previous_key_hash");
