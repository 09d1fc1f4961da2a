-- Provider allow-lists are now written as provider ids (src/modules/providers/allowlist.ts):
-- convert the stored lists of api_keys and users the same way. An entry that is a
-- provider's id (any case) becomes its lower-case id, one that is a provider's exact name
-- becomes that provider's id; a provider listed twice is kept once, at its first place.
-- An entry matching no provider is kept as it is: verify still treats such an entry as a
-- provider name, so the list keeps refusing or admitting exactly what it did.
-- A NULL (or non-array) list yields no entries and stays. Rows whose list is unchanged are not rewritten; updated_at is left alone (no one edited them).
WITH "entries" AS (
  SELECT k."id", e."ord", COALESCE(by_id."id"::text, by_name."id"::text, e."entry") AS "entry"
    FROM "api_keys" k
   CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(k."allowed_providers") = 'array' THEN k."allowed_providers" ELSE '[]' END) WITH ORDINALITY AS e("entry", "ord")
    LEFT JOIN "providers" by_id ON by_id."id" = CASE WHEN e."entry" ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN e."entry"::uuid END
    LEFT JOIN "providers" by_name ON by_name."name" = e."entry"
), "lists" AS (
  SELECT "id", jsonb_agg("entry" ORDER BY "ord") AS "list"
    FROM (SELECT "id", "entry", min("ord") AS "ord" FROM "entries" GROUP BY "id", "entry") f
   GROUP BY "id"
)
UPDATE "api_keys" k SET "allowed_providers" = l."list"
  FROM "lists" l
 WHERE k."id" = l."id" AND k."allowed_providers" IS DISTINCT FROM l."list";

WITH "entries" AS (
  SELECT u."id", e."ord", COALESCE(by_id."id"::text, by_name."id"::text, e."entry") AS "entry"
    FROM "users" u
   CROSS JOIN LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(u."allowed_providers") = 'array' THEN u."allowed_providers" ELSE '[]' END) WITH ORDINALITY AS e("entry", "ord")
    LEFT JOIN "providers" by_id ON by_id."id" = CASE WHEN e."entry" ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN e."entry"::uuid END
    LEFT JOIN "providers" by_name ON by_name."name" = e."entry"
), "lists" AS (
  SELECT "id", jsonb_agg("entry" ORDER BY "ord") AS "list"
    FROM (SELECT "id", "entry", min("ord") AS "ord" FROM "entries" GROUP BY "id", "entry") f
   GROUP BY "id"
)
UPDATE "users" u SET "allowed_providers" = l."list"
  FROM "lists" l
 WHERE u."id" = l."id" AND u."allowed_providers" IS DISTINCT FROM l."list";
