-- Up Migration

-- Compaction (`bronze compact`): a grid cell covered by several partial partitions gets one
-- full-cell file, byte-identical to a backfill's, recorded in ONE transaction with the partials
-- marked superseded by it. Lineage stays an audit trail: a row never changes, except for that
-- one mark, set once, from unset to set. Everything that reads lineage for coverage reads the
-- current rows: the no-overlap rule, the covering index and _meta_islands() hold them alone.

ALTER TABLE _meta_lineage
    ADD COLUMN superseded_by INTEGER,
    ADD COLUMN superseded_at TIMESTAMPTZ,
    ADD CONSTRAINT _meta_lineage_superseded_by_fkey FOREIGN KEY (superseded_by)
        REFERENCES _meta_lineage(id) DEFERRABLE INITIALLY DEFERRED,
    ADD CONSTRAINT _meta_lineage_superseded_shape CHECK (
        (superseded_by IS NULL) = (superseded_at IS NULL) AND superseded_by IS DISTINCT FROM id);

-- The one change a lineage row may receive: its superseded mark, once, and nothing else with it.
CREATE OR REPLACE FUNCTION _meta_lineage_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.superseded_by IS NULL AND NEW.superseded_by IS NOT NULL
       AND (to_jsonb(NEW) - 'superseded_by' - 'superseded_at')
           = (to_jsonb(OLD) - 'superseded_by' - 'superseded_at') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '_meta_lineage is append-only: % is not allowed%', TG_OP,
        CASE WHEN TG_OP = 'UPDATE' THEN ' (but marking a current row superseded, once)' ELSE '' END
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

-- No two CURRENT rows of a dataset overlap, or repeat a range; a superseded row lies under the
-- row that replaced it.
ALTER TABLE _meta_lineage DROP CONSTRAINT _meta_lineage_unique_range;
CREATE UNIQUE INDEX _meta_lineage_unique_range ON _meta_lineage (dataset_id, ledger_start, ledger_end)
    WHERE superseded_by IS NULL;
ALTER TABLE _meta_lineage DROP CONSTRAINT _meta_lineage_no_overlap;
ALTER TABLE _meta_lineage ADD CONSTRAINT _meta_lineage_no_overlap EXCLUDE USING gist (
    dataset_id WITH =,
    int8range(ledger_start, ledger_end, '[]') WITH &&
) WHERE (superseded_by IS NULL);

-- The covering index of migration 003, for current rows only (same name: the plans that read
-- it are unchanged).
DROP INDEX IF EXISTS _meta_lineage_coverage;
CREATE INDEX _meta_lineage_coverage ON _meta_lineage (dataset_id, ledger_start)
    INCLUDE (ledger_end, byte_size) WHERE superseded_by IS NULL;

CREATE OR REPLACE FUNCTION _meta_islands(p_dataset integer, p_from bigint, p_to bigint)
RETURNS TABLE (ledger_start bigint, ledger_end bigint, partitions bigint, row_count bigint,
               byte_size bigint)
LANGUAGE sql STABLE AS $$
    SELECT min(s.ledger_start), max(s.ledger_end), count(*),
           sum(s.ledger_end - s.ledger_start + 1)::bigint, sum(s.byte_size)::bigint
    FROM (
        SELECT o.ledger_start, o.ledger_end, o.byte_size,
               sum(o.starts_island) OVER (ORDER BY o.ledger_start) AS island
        FROM (
            SELECT l.ledger_start, l.ledger_end, l.byte_size,
                   CASE WHEN l.ledger_start = 1 + lag(l.ledger_end) OVER (ORDER BY l.ledger_start)
                        THEN 0 ELSE 1 END AS starts_island
            FROM _meta_lineage l
            WHERE l.dataset_id = p_dataset AND l.superseded_by IS NULL
              AND l.ledger_start >= coalesce(
                    (SELECT max(m.ledger_start) FROM _meta_lineage m
                     WHERE m.dataset_id = p_dataset AND m.superseded_by IS NULL
                       AND m.ledger_start <= p_from),
                    p_from, 0)
              AND l.ledger_start <= coalesce(p_to, 9223372036854775807)
              AND l.ledger_end >= coalesce(p_from, 0)
        ) o
    ) s
    GROUP BY s.island
    ORDER BY 1
$$;

-- Down Migration
-- (Superseded rows would overlap the rows that replaced them: the old rule cannot come back while
-- any exists. Undo compaction first, by hand.)
CREATE OR REPLACE FUNCTION _meta_islands(p_dataset integer, p_from bigint, p_to bigint)
RETURNS TABLE (ledger_start bigint, ledger_end bigint, partitions bigint, row_count bigint,
               byte_size bigint)
LANGUAGE sql STABLE AS $$
    SELECT min(s.ledger_start), max(s.ledger_end), count(*),
           sum(s.ledger_end - s.ledger_start + 1)::bigint, sum(s.byte_size)::bigint
    FROM (
        SELECT o.ledger_start, o.ledger_end, o.byte_size,
               sum(o.starts_island) OVER (ORDER BY o.ledger_start) AS island
        FROM (
            SELECT l.ledger_start, l.ledger_end, l.byte_size,
                   CASE WHEN l.ledger_start = 1 + lag(l.ledger_end) OVER (ORDER BY l.ledger_start)
                        THEN 0 ELSE 1 END AS starts_island
            FROM _meta_lineage l
            WHERE l.dataset_id = p_dataset
              AND l.ledger_start >= coalesce(
                    (SELECT max(m.ledger_start) FROM _meta_lineage m
                     WHERE m.dataset_id = p_dataset AND m.ledger_start <= p_from),
                    p_from, 0)
              AND l.ledger_start <= coalesce(p_to, 9223372036854775807)
              AND l.ledger_end >= coalesce(p_from, 0)
        ) o
    ) s
    GROUP BY s.island
    ORDER BY 1
$$;
DROP INDEX IF EXISTS _meta_lineage_coverage;
CREATE INDEX _meta_lineage_coverage ON _meta_lineage (dataset_id, ledger_start)
    INCLUDE (ledger_end, byte_size);
ALTER TABLE _meta_lineage DROP CONSTRAINT _meta_lineage_no_overlap;
ALTER TABLE _meta_lineage ADD CONSTRAINT _meta_lineage_no_overlap EXCLUDE USING gist (
    dataset_id WITH =,
    int8range(ledger_start, ledger_end, '[]') WITH &&
);
DROP INDEX IF EXISTS _meta_lineage_unique_range;
ALTER TABLE _meta_lineage ADD CONSTRAINT _meta_lineage_unique_range
    UNIQUE (dataset_id, ledger_start, ledger_end);
CREATE OR REPLACE FUNCTION _meta_lineage_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '_meta_lineage is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
ALTER TABLE _meta_lineage
    DROP CONSTRAINT IF EXISTS _meta_lineage_superseded_shape,
    DROP CONSTRAINT IF EXISTS _meta_lineage_superseded_by_fkey,
    DROP COLUMN IF EXISTS superseded_at,
    DROP COLUMN IF EXISTS superseded_by;
