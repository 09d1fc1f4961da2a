-- The delete triggers of usage_references_by_trigger look usage rows up by the deleted
-- endpoint's or provider key's id, and deleting a provider reads usage_hourly by
-- provider_id: without these indexes each such delete scanned the whole table inside
-- the admin transaction. Partial, as only rows that still hold a reference are ever
-- looked up. Partial indexes cannot be written in schema.prisma: src/db/drift.ts
-- declares these three (EXTRA_INDEXES) so the drift test checks them, predicate included.

-- CreateIndex
CREATE INDEX "usage_provider_endpoint_id_idx" ON "usage" ("provider_endpoint_id") WHERE "provider_endpoint_id" IS NOT NULL;

-- CreateIndex
CREATE INDEX "usage_provider_api_key_id_idx" ON "usage" ("provider_api_key_id") WHERE "provider_api_key_id" IS NOT NULL;

-- CreateIndex
CREATE INDEX "usage_hourly_provider_id_idx" ON "usage_hourly" ("provider_id");
