-- Up Migration

-- The _meta_* catalog of Pitch 04 with the changes of design.md: TIMESTAMPTZ, dataset_id NOT NULL,
-- immutable lineage, no overlapping lineage within a dataset, a coverage view, and the columns
-- the copier and verify need (full storage URI, hash-chain ends of each partition).

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE _meta_datasets (
    id              SERIAL PRIMARY KEY,
    domain          VARCHAR(64)  NOT NULL,
    dataset         VARCHAR(128) NOT NULL,
    version         VARCHAR(32)  NOT NULL,
    era_id          VARCHAR(64)  NOT NULL,
    network         VARCHAR(32)  NOT NULL,
    schema_hash     VARCHAR(64),
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (domain, dataset, version, era_id, network)
);

CREATE TABLE _meta_lineage (
    id                          SERIAL PRIMARY KEY,
    dataset_id                  INTEGER NOT NULL REFERENCES _meta_datasets(id),
    ledger_start                BIGINT NOT NULL,
    ledger_end                  BIGINT NOT NULL,
    row_count                   BIGINT NOT NULL,
    byte_size                   BIGINT NOT NULL,
    checksum                    VARCHAR(128) NOT NULL,
    storage_path                TEXT NOT NULL,
    storage_uri                 TEXT NOT NULL,
    first_previous_ledger_hash  VARCHAR(64) NOT NULL,
    last_ledger_hash            VARCHAR(64) NOT NULL,
    producer_version            VARCHAR(64) NOT NULL,
    producer_git_sha            VARCHAR(64),
    source_type                 VARCHAR(32),
    source_location             TEXT,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT _meta_lineage_range_valid CHECK (ledger_start >= 1 AND ledger_end >= ledger_start),
    -- Stellar ledgers are contiguous: a partition that holds fewer rows than its range is a lie
    -- about coverage (the predecessor recorded requested ranges, not what was read).
    CONSTRAINT _meta_lineage_rows_match_range CHECK (row_count = ledger_end - ledger_start + 1),
    CONSTRAINT _meta_lineage_unique_range UNIQUE (dataset_id, ledger_start, ledger_end),
    CONSTRAINT _meta_lineage_no_overlap EXCLUDE USING gist (
        dataset_id WITH =,
        int8range(ledger_start, ledger_end, '[]') WITH &&
    )
);

-- The seed's idx_lineage_range (dataset_id, ledger_start, ledger_end) is the unique constraint's
-- own index above; a second identical index would only slow every insert.

-- Lineage is an audit trail: once committed a row never changes and never goes away.
CREATE FUNCTION _meta_lineage_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '_meta_lineage is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER _meta_lineage_no_update_delete
    BEFORE UPDATE OR DELETE ON _meta_lineage
    FOR EACH ROW EXECUTE FUNCTION _meta_lineage_immutable();

CREATE TRIGGER _meta_lineage_no_truncate
    BEFORE TRUNCATE ON _meta_lineage
    FOR EACH STATEMENT EXECUTE FUNCTION _meta_lineage_immutable();

CREATE TABLE _meta_quality (
    id              SERIAL PRIMARY KEY,
    lineage_id      INTEGER NOT NULL REFERENCES _meta_lineage(id),
    metric_name     VARCHAR(64) NOT NULL,
    metric_value    DOUBLE PRECISION,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_quality_lineage ON _meta_quality (lineage_id);

CREATE TABLE _meta_changes (
    id              SERIAL PRIMARY KEY,
    dataset_id      INTEGER NOT NULL REFERENCES _meta_datasets(id),
    change_type     VARCHAR(32) NOT NULL,
    description     TEXT,
    old_version     VARCHAR(32),
    new_version     VARCHAR(32),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per contiguous run of ledgers ("island") per dataset; gaps are what lies between.
CREATE VIEW _meta_coverage AS
WITH ordered AS (
    SELECT l.dataset_id, l.ledger_start, l.ledger_end, l.row_count, l.byte_size,
           CASE WHEN l.ledger_start = 1 + lag(l.ledger_end) OVER w THEN 0 ELSE 1 END AS starts_island
    FROM _meta_lineage l
    WINDOW w AS (PARTITION BY l.dataset_id ORDER BY l.ledger_start)
), islands AS (
    SELECT o.*, sum(starts_island) OVER (PARTITION BY dataset_id ORDER BY ledger_start) AS island
    FROM ordered o
)
SELECT d.id AS dataset_id, d.domain, d.dataset, d.version, d.era_id, d.network,
       min(i.ledger_start) AS ledger_start,
       max(i.ledger_end) AS ledger_end,
       count(*) AS partitions,
       sum(i.row_count)::BIGINT AS row_count,
       sum(i.byte_size)::BIGINT AS byte_size
FROM islands i
JOIN _meta_datasets d ON d.id = i.dataset_id
GROUP BY d.id, d.domain, d.dataset, d.version, d.era_id, d.network, i.island;

-- Down Migration
DROP VIEW IF EXISTS _meta_coverage;
DROP TABLE IF EXISTS _meta_changes;
DROP TABLE IF EXISTS _meta_quality;
DROP TABLE IF EXISTS _meta_lineage;
DROP FUNCTION IF EXISTS _meta_lineage_immutable();
DROP TABLE IF EXISTS _meta_datasets;
