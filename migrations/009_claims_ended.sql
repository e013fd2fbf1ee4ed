-- Up Migration

-- A claim row lives only while its copier holds it (migration 002): released, or swept once its
-- session ended, it leaves no trace, so the catalog could not tell which copiers died, which cells
-- they held, or who took them over, nor what each copier committed. From now on every claim that
-- ends is recorded here, by the statement that ends it (the release, or the sweep inside the
-- claiming transaction that holds the dataset's sweep lock): no extra round trip, and nothing
-- changes about when a claim is live or may be taken over. Read by `bronze status` and the status
-- page: dead copiers and their cells' fate, each copier's pace (the lineage rows committed in its
-- cells while it held them), a fleet's range after its last copier left.
CREATE TABLE _meta_claims_ended (
    id              BIGSERIAL PRIMARY KEY,
    claim_id        INTEGER NOT NULL,
    dataset_id      INTEGER NOT NULL REFERENCES _meta_datasets(id),
    copier_id       VARCHAR(64) NOT NULL,
    host            TEXT,
    pid             INTEGER,
    ledger_start    BIGINT NOT NULL,
    ledger_end      BIGINT NOT NULL,
    fleet_start     BIGINT,
    fleet_end       BIGINT,
    partition_size  INTEGER,
    claimed_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- 'released': its copier let it go; 'died': swept, its copier's session (or process) was gone.
    how             VARCHAR(16) NOT NULL,
    -- For 'died': who swept it (the claiming copier's id, or 'gc').
    ended_by        VARCHAR(64),
    CONSTRAINT _meta_claims_ended_how CHECK (how IN ('released', 'died')),
    CONSTRAINT _meta_claims_ended_by CHECK ((how = 'died') = (ended_by IS NOT NULL))
);

-- The status page reads the recent ones of each dataset.
CREATE INDEX _meta_claims_ended_recent ON _meta_claims_ended (dataset_id, ended_at);

-- Down Migration
DROP TABLE IF EXISTS _meta_claims_ended;
