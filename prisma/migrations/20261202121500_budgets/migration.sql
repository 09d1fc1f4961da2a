-- CreateEnum
CREATE TYPE "BudgetPeriod" AS ENUM ('day', 'week', 'month', 'rolling');

-- CreateTable
CREATE TABLE "budgets" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "api_key_id" UUID,
    "user_id" UUID,
    "model" TEXT,
    "period" "BudgetPeriod" NOT NULL,
    "time_zone" TEXT,
    "week_start" SMALLINT,
    "duration_seconds" INTEGER,
    "cost_limit" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "budgets_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "budgets_api_key_id_idx" ON "budgets"("api_key_id");

-- CreateIndex
CREATE INDEX "budgets_user_id_idx" ON "budgets"("user_id");

-- AddForeignKey
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_api_key_id_fkey" FOREIGN KEY ("api_key_id") REFERENCES "api_keys"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Checks Prisma cannot model (the API refuses the same inputs first, with a 400 naming the field):
-- exactly one owner, a positive limit, and each period's own fields only.
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_one_owner" CHECK (num_nonnulls("api_key_id", "user_id") = 1);
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_cost_limit_positive" CHECK ("cost_limit" > 0);
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_period_fields" CHECK (
  CASE "period"
    WHEN 'rolling' THEN "time_zone" IS NULL AND "week_start" IS NULL AND "duration_seconds" BETWEEN 60 AND 31622400
    WHEN 'week' THEN "time_zone" IS NOT NULL AND "week_start" BETWEEN 0 AND 6 AND "duration_seconds" IS NULL
    ELSE "time_zone" IS NOT NULL AND "week_start" IS NULL AND "duration_seconds" IS NULL
  END);
