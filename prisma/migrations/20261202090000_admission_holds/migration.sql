-- CreateTable
CREATE TABLE "admission_holds" (
    "request_id" TEXT NOT NULL,
    "api_key_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "model" TEXT,
    "amount" BIGINT NOT NULL,
    "started" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "admission_holds_pkey" PRIMARY KEY ("request_id")
);

-- CreateIndex
CREATE INDEX "admission_holds_api_key_id_idx" ON "admission_holds"("api_key_id");

-- CreateIndex
CREATE INDEX "admission_holds_user_id_idx" ON "admission_holds"("user_id");

-- CreateIndex
CREATE INDEX "admission_holds_expires_at_idx" ON "admission_holds"("expires_at");

-- AddForeignKey
ALTER TABLE "admission_holds" ADD CONSTRAINT "admission_holds_api_key_id_fkey" FOREIGN KEY ("api_key_id") REFERENCES "api_keys"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "admission_holds" ADD CONSTRAINT "admission_holds_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;
