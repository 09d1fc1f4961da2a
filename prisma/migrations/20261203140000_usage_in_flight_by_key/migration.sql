-- A key's requests in flight (its concurrency counter) by one range of a partial index:
-- (api_key_id, created_at) alone made the counter read every row of the key in the
-- pending timeout, finished ones included (a hot key: its last ten minutes of traffic per verify).
CREATE INDEX "usage_in_flight_key_idx" ON "usage" ("api_key_id", "created_at") WHERE "status" IN ('pending', 'streaming');
