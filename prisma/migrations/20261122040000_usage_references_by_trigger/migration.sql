-- usage keeps its references to users, keys, providers, endpoints and provider keys
-- without foreign keys: five reference checks per inserted row were 40% of
-- ingestion's usage INSERT. Ingestion instead locks each row it references once per
-- batch (FOR KEY SHARE, the lock a foreign key check takes), so a referenced row
-- cannot be deleted between the check and the commit; and deleting a referenced row
-- sets usage's reference to NULL, as ON DELETE SET NULL did, by the triggers below.

-- DropForeignKey
ALTER TABLE "usage" DROP CONSTRAINT "usage_user_id_fkey";

-- DropForeignKey
ALTER TABLE "usage" DROP CONSTRAINT "usage_api_key_id_fkey";

-- DropForeignKey
ALTER TABLE "usage" DROP CONSTRAINT "usage_provider_id_fkey";

-- DropForeignKey
ALTER TABLE "usage" DROP CONSTRAINT "usage_provider_endpoint_id_fkey";

-- DropForeignKey
ALTER TABLE "usage" DROP CONSTRAINT "usage_provider_api_key_id_fkey";

-- ON DELETE SET NULL, once per deleting statement: TG_ARGV[0] names usage's column
CREATE FUNCTION "usage_clear_reference"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('UPDATE usage SET %1$I = NULL WHERE %1$I IN (SELECT id FROM gone)', TG_ARGV[0]);
  RETURN NULL;
END
$$;

CREATE TRIGGER "usage_user_id_set_null" AFTER DELETE ON "users"
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "usage_clear_reference"('user_id');
CREATE TRIGGER "usage_api_key_id_set_null" AFTER DELETE ON "api_keys"
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "usage_clear_reference"('api_key_id');
CREATE TRIGGER "usage_provider_id_set_null" AFTER DELETE ON "providers"
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "usage_clear_reference"('provider_id');
CREATE TRIGGER "usage_provider_endpoint_id_set_null" AFTER DELETE ON "provider_endpoints"
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "usage_clear_reference"('provider_endpoint_id');
CREATE TRIGGER "usage_provider_api_key_id_set_null" AFTER DELETE ON "provider_api_keys"
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "usage_clear_reference"('provider_api_key_id');
