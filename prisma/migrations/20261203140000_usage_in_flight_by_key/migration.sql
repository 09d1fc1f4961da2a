-- The in-flight rows by key and time (a partial index: only pending and streaming rows):
-- a key's in-flight count reads its range, where (api_key_id, created_at) read every row
-- of the key in the pending timeout, finished ones included; the stale sweep and the
-- active list read the whole (small) index, as they read usage_status_idx, which it replaces.
CREATE INDEX "usage_in_flight_key_idx" ON "usage" ("api_key_id", "created_at") WHERE "status" IN ('pending', 'streaming');

DROP INDEX "usage_status_idx";
