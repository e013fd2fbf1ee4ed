-- Up Migration

-- Fleet copiers (`bronze copy --fleet`) share one range cell by cell: each cell a copier works on
-- is a claim row of its own, held alive by that copier's session advisory lock like any claim, so
-- disjoint-range copiers and fleets exclude each other through the same no-overlap constraint.
-- A cell claim also records the fleet's whole range and partition size, for `bronze fleet`.
ALTER TABLE _meta_copier_claims
    ADD COLUMN fleet_start    BIGINT,
    ADD COLUMN fleet_end      BIGINT,
    ADD COLUMN partition_size INTEGER,
    ADD CONSTRAINT _meta_copier_claims_fleet_shape CHECK (
        (fleet_start IS NULL) = (fleet_end IS NULL)
        AND (fleet_start IS NULL) = (partition_size IS NULL)
        AND (fleet_start IS NULL OR (fleet_start <= ledger_start AND ledger_end <= fleet_end))
    );

-- Down Migration
ALTER TABLE _meta_copier_claims
    DROP CONSTRAINT IF EXISTS _meta_copier_claims_fleet_shape,
    DROP COLUMN IF EXISTS partition_size,
    DROP COLUMN IF EXISTS fleet_end,
    DROP COLUMN IF EXISTS fleet_start;
