-- The dashboard's per-user settings (theme, language, time zone, notifications): one JSON
-- document per user, read and written whole by /api/users/me/preferences.
ALTER TABLE "users" ADD COLUMN "preferences" JSONB;
