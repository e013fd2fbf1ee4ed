-- Up Migration

-- Gaps and islands, written once. _meta_islands(dataset, from, to) returns the contiguous runs
-- ("islands") of a dataset's lineage that overlap [from, to] (NULL: unbounded), each with its
-- partitions, rows and bytes; the gaps are what lies between them. `bronze coverage`, resume
-- (contiguous coverage from a run's start) and `checkpoint show` all read it, and so does the
-- _meta_coverage view that psql users query.
--
-- Reads only columns of the covering index (migration 003), so it is an index-only scan in
-- ledger order; with a lower bound, the scan starts at the partition holding `from` (one index
-- probe), so a window deep inside a long dataset reads only the partitions it overlaps. STABLE
-- and a single SELECT: the planner inlines it into the caller's query.
CREATE FUNCTION _meta_islands(p_dataset integer, p_from bigint, p_to bigint)
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

-- Same columns as before, now from the one definition above.
CREATE OR REPLACE VIEW _meta_coverage AS
SELECT d.id AS dataset_id, d.domain, d.dataset, d.version, d.era_id, d.network,
       i.ledger_start, i.ledger_end, i.partitions, i.row_count, i.byte_size
FROM _meta_datasets d
CROSS JOIN LATERAL _meta_islands(d.id, NULL, NULL) i;

-- Down Migration
CREATE OR REPLACE VIEW _meta_coverage AS
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
DROP FUNCTION IF EXISTS _meta_islands(integer, bigint, bigint);
