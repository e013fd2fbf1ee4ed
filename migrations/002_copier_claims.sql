-- Up Migration

-- Copiers of one dataset may run at once only on disjoint ranges. Each running copier holds a
-- claim row here AND a session advisory lock keyed on the row's id; a claim whose lock nobody
-- holds belongs to a copier that died, and is swept by the next claimer. So a crash never leaves
-- a claim that blocks forever.
CREATE TABLE _meta_copier_claims (
    id              SERIAL PRIMARY KEY,
    dataset_id      INTEGER NOT NULL REFERENCES _meta_datasets(id),
    copier_id       VARCHAR(64) NOT NULL,
    ledger_start    BIGINT NOT NULL,
    ledger_end      BIGINT NOT NULL,
    host            TEXT,
    pid             INTEGER,
    -- The claiming session, so a claim of a copier known dead can be ended at once.
    backend_pid     INTEGER,
    claimed_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT _meta_copier_claims_range_valid CHECK (ledger_end >= ledger_start),
    CONSTRAINT _meta_copier_claims_no_overlap EXCLUDE USING gist (
        dataset_id WITH =,
        int8range(ledger_start, ledger_end, '[]') WITH &&
    )
);

-- Down Migration
DROP TABLE IF EXISTS _meta_copier_claims;
