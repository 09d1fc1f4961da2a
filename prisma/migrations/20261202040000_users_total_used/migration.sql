-- A user's all-time spend (Aether's total_usd), kept beside `used`, which a quota reset
-- sets to 0. Backfilled from `used`: no path reset it before this migration, so it
-- already holds every finished request's cost ever charged to the user, by the very
-- charges ingestion will keep adding to both.

-- AlterTable
ALTER TABLE "users" ADD COLUMN     "total_used" BIGINT NOT NULL DEFAULT 0;

-- Backfill
UPDATE "users" SET "total_used" = "used" WHERE "used" <> 0;
