-- The late-write count (one row): a batch that writes rollups of a settled hour adds one,
-- so an in-process cache of settled hours (the heatmap's past days) knows to rebuild.
CREATE TABLE "rollup_late_writes" (
    "id" SMALLINT NOT NULL DEFAULT 1,
    "writes" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "rollup_late_writes_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "rollup_late_writes_one_row" CHECK ("id" = 1)
);

INSERT INTO "rollup_late_writes" ("id", "writes") VALUES (1, 0);
