-- A request's candidates are found by (request_id, created_at) (src/db/partitions.ts candidatesOfSql:
-- created_at prunes the probe to one month). With created_at fourth in the unique index, PostgreSQL 18
-- costs that probe as a skip scan over candidate_index and retry_index and picks the provider index
-- instead (13 index searches a probe); second, it is a two-column prefix. The index is built on each
-- month's partition, holding SHARE on request_candidates until it commits (ingestion waits).

-- CreateIndex
CREATE UNIQUE INDEX "request_candidates_request_id_created_at_candidate_index_re_key" ON "request_candidates"("request_id", "created_at", "candidate_index", "retry_index");

-- DropIndex
DROP INDEX "request_candidates_request_id_candidate_index_retry_index_c_key";
