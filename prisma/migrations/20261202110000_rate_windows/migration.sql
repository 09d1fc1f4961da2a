-- AlterTable
ALTER TABLE "api_keys" ADD COLUMN     "rate_window_seconds" INTEGER NOT NULL DEFAULT 60,
ADD COLUMN     "token_limit" BIGINT;

-- AlterTable
ALTER TABLE "admission_holds" ADD COLUMN     "tokens" BIGINT NOT NULL DEFAULT 0;
