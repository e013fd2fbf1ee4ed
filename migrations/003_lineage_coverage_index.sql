-- Up Migration

-- `bronze coverage` and `bronze verify` walk a dataset's lineage in ledger order (window functions
-- over ledger_start) and total its bytes. This index hands them every column they read, so a
-- catalog of a million partitions is answered by one index-only scan, in order, with no sort and
-- no heap visits. (The unique (dataset_id, ledger_start, ledger_end) index also gives the order,
-- but each row's byte_size would cost a heap fetch.)
CREATE INDEX _meta_lineage_coverage ON _meta_lineage (dataset_id, ledger_start)
    INCLUDE (ledger_end, byte_size);

-- Down Migration
DROP INDEX IF EXISTS _meta_lineage_coverage;
