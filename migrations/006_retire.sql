-- Up Migration

-- Retention of dataset versions (`bronze retire`): a retired dataset keeps its row and its lineage
-- forever (the audit trail), but `copy` no longer writes into it, `coverage` and `verify` report
-- it as retired, and `bronze gc --apply` deletes its files once it has been retired longer than
-- gc's grace period. The retirement itself is also a _meta_changes row (change_type 'retire').
ALTER TABLE _meta_datasets
    ADD COLUMN retired_at     TIMESTAMPTZ,
    ADD COLUMN retired_reason TEXT,
    ADD CONSTRAINT _meta_datasets_retired_shape CHECK ((retired_at IS NULL) = (retired_reason IS NULL));

-- Down Migration
ALTER TABLE _meta_datasets
    DROP CONSTRAINT IF EXISTS _meta_datasets_retired_shape,
    DROP COLUMN IF EXISTS retired_reason,
    DROP COLUMN IF EXISTS retired_at;
