-- DropIndex
DROP INDEX "admission_holds_api_key_id_idx";

-- DropIndex
DROP INDEX "admission_holds_user_id_idx";

-- CreateIndex
CREATE INDEX "admission_holds_api_key_id_expires_at_idx" ON "admission_holds"("api_key_id", "expires_at");

-- CreateIndex
CREATE INDEX "admission_holds_user_id_expires_at_idx" ON "admission_holds"("user_id", "expires_at");
