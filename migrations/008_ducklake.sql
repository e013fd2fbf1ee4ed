-- Up Migration

-- The catalog is also a DuckLake (design.md "The catalog"): DuckDB's ducklake extension attaches
-- this database READ_ONLY and reads every dataset as a table, at every snapshot, without a file a
-- lineage row does not hold. DuckLake spec version 1.0: the tables below are exactly those the
-- ducklake extension 5ef9e03d of DuckDB 1.5.6 creates in a fresh PostgreSQL catalog (pg_dump -s of
-- one, table for table, column for column), with the rows it writes for the same acts.
--
-- Mapping (README "Reading the data"): one DuckLake schema per network (`testnet`), one table per
-- dataset `<dataset>_<era>_<version>` (`ledgers_lcm_raw_default_v1`), its columns the Parquet
-- file's, NOT NULL as the file's REQUIRED ones. Files have no Parquet field ids: the table has one
-- name mapping (map_by_name), as ducklake_add_data_files gives such files. The DuckLake data path
-- is the storage root of the first dataset registered; a table under it has a relative path
-- (`<era>/<version>/ledgers_lcm_raw/` in its schema's `<network>/`), one stored elsewhere an
-- absolute one, and each file's path is relative to its table's (`range=1-100/part-1-100.parquet`),
-- so `ATTACH ... (DATA_PATH '<storage root>', READ_ONLY)` reads local, gs:// and s3:// roots.
--
-- bronze is the only writer: each commit that records lineage calls one function below in its
-- transaction, which makes ONE snapshot (author = the copier, a commit message, the lineage ids in
-- commit_extra_info) adding the partition's file with its row count, size and the min/max of
-- ledger_sequence and close_time (so a reader's filter skips files), and, for a compaction, ending
-- the files of the rows it supersedes. Snapshot ids come from the latest snapshot, read under a
-- transaction-level advisory lock taken by a deferred trigger when the transaction commits:
-- concurrent committers get unique, increasing ids in commit order, and each holds the lock only
-- for its own COMMIT.
-- Readers must attach READ_ONLY: a DuckLake writer would add files bronze's lineage does not know.


CREATE TABLE ducklake_column (
    column_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint,
    table_id bigint,
    column_order bigint,
    column_name character varying,
    column_type character varying,
    initial_default character varying,
    default_value character varying,
    nulls_allowed boolean,
    parent_column bigint,
    default_value_type character varying,
    default_value_dialect character varying
);
CREATE TABLE ducklake_column_mapping (
    mapping_id bigint,
    table_id bigint,
    type character varying
);
CREATE TABLE ducklake_column_tag (
    table_id bigint,
    column_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint,
    key character varying,
    value character varying
);
CREATE TABLE ducklake_data_file (
    data_file_id bigint NOT NULL,
    table_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint,
    file_order bigint,
    path character varying,
    path_is_relative boolean,
    file_format character varying,
    record_count bigint,
    file_size_bytes bigint,
    footer_size bigint,
    row_id_start bigint,
    partition_id bigint,
    encryption_key character varying,
    mapping_id bigint,
    partial_max bigint
);
CREATE TABLE ducklake_delete_file (
    delete_file_id bigint NOT NULL,
    table_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint,
    data_file_id bigint,
    path character varying,
    path_is_relative boolean,
    format character varying,
    delete_count bigint,
    file_size_bytes bigint,
    footer_size bigint,
    encryption_key character varying,
    partial_max bigint
);
CREATE TABLE ducklake_file_column_stats (
    data_file_id bigint,
    table_id bigint,
    column_id bigint,
    column_size_bytes bigint,
    value_count bigint,
    null_count bigint,
    min_value character varying,
    max_value character varying,
    contains_nan boolean,
    extra_stats character varying
);
CREATE TABLE ducklake_file_partition_value (
    data_file_id bigint,
    table_id bigint,
    partition_key_index bigint,
    partition_value character varying
);
CREATE TABLE ducklake_file_variant_stats (
    data_file_id bigint,
    table_id bigint,
    column_id bigint,
    variant_path character varying,
    shredded_type character varying,
    column_size_bytes bigint,
    value_count bigint,
    null_count bigint,
    min_value character varying,
    max_value character varying,
    contains_nan boolean,
    extra_stats character varying
);
CREATE TABLE ducklake_files_scheduled_for_deletion (
    data_file_id bigint,
    path character varying,
    path_is_relative boolean,
    schedule_start timestamp with time zone
);
CREATE TABLE ducklake_inlined_data_tables (
    table_id bigint,
    table_name character varying,
    schema_version bigint
);
CREATE TABLE ducklake_macro (
    schema_id bigint,
    macro_id bigint,
    macro_name character varying,
    begin_snapshot bigint,
    end_snapshot bigint
);
CREATE TABLE ducklake_macro_impl (
    macro_id bigint,
    impl_id bigint,
    dialect character varying,
    sql character varying,
    type character varying
);
CREATE TABLE ducklake_macro_parameters (
    macro_id bigint,
    impl_id bigint,
    column_id bigint,
    parameter_name character varying,
    parameter_type character varying,
    default_value character varying,
    default_value_type character varying
);
CREATE TABLE ducklake_metadata (
    key character varying NOT NULL,
    value character varying NOT NULL,
    scope character varying,
    scope_id bigint
);
CREATE TABLE ducklake_name_mapping (
    mapping_id bigint,
    column_id bigint,
    source_name character varying,
    target_field_id bigint,
    parent_column bigint,
    is_partition boolean
);
CREATE TABLE ducklake_partition_column (
    partition_id bigint,
    table_id bigint,
    partition_key_index bigint,
    column_id bigint,
    transform character varying
);
CREATE TABLE ducklake_partition_info (
    partition_id bigint,
    table_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint
);
CREATE TABLE ducklake_schema (
    schema_id bigint NOT NULL,
    schema_uuid uuid,
    begin_snapshot bigint,
    end_snapshot bigint,
    schema_name character varying,
    path character varying,
    path_is_relative boolean
);
CREATE TABLE ducklake_schema_versions (
    begin_snapshot bigint,
    schema_version bigint,
    table_id bigint
);
CREATE TABLE ducklake_snapshot (
    snapshot_id bigint NOT NULL,
    snapshot_time timestamp with time zone,
    schema_version bigint,
    next_catalog_id bigint,
    next_file_id bigint
);
CREATE TABLE ducklake_snapshot_changes (
    snapshot_id bigint NOT NULL,
    changes_made character varying,
    author character varying,
    commit_message character varying,
    commit_extra_info character varying
);
CREATE TABLE ducklake_sort_expression (
    sort_id bigint,
    table_id bigint,
    sort_key_index bigint,
    expression character varying,
    dialect character varying,
    sort_direction character varying,
    null_order character varying
);
CREATE TABLE ducklake_sort_info (
    sort_id bigint,
    table_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint
);
CREATE TABLE ducklake_table (
    table_id bigint,
    table_uuid uuid,
    begin_snapshot bigint,
    end_snapshot bigint,
    schema_id bigint,
    table_name character varying,
    path character varying,
    path_is_relative boolean
);
CREATE TABLE ducklake_table_column_stats (
    table_id bigint,
    column_id bigint,
    contains_null boolean,
    contains_nan boolean,
    min_value character varying,
    max_value character varying,
    extra_stats character varying
);
CREATE TABLE ducklake_table_stats (
    table_id bigint,
    record_count bigint,
    next_row_id bigint,
    file_size_bytes bigint
);
CREATE TABLE ducklake_tag (
    object_id bigint,
    begin_snapshot bigint,
    end_snapshot bigint,
    key character varying,
    value character varying
);
CREATE TABLE ducklake_view (
    view_id bigint,
    view_uuid uuid,
    begin_snapshot bigint,
    end_snapshot bigint,
    schema_id bigint,
    view_name character varying,
    dialect character varying,
    sql character varying,
    column_aliases character varying
);
ALTER TABLE ducklake_data_file
    ADD CONSTRAINT ducklake_data_file_pkey PRIMARY KEY (data_file_id);
ALTER TABLE ducklake_delete_file
    ADD CONSTRAINT ducklake_delete_file_pkey PRIMARY KEY (delete_file_id);
ALTER TABLE ducklake_schema
    ADD CONSTRAINT ducklake_schema_pkey PRIMARY KEY (schema_id);
ALTER TABLE ducklake_snapshot_changes
    ADD CONSTRAINT ducklake_snapshot_changes_pkey PRIMARY KEY (snapshot_id);
ALTER TABLE ducklake_snapshot
    ADD CONSTRAINT ducklake_snapshot_pkey PRIMARY KEY (snapshot_id);

-- A fresh DuckLake: snapshot 0 creates the schema `main`, as the extension's does. The data path
-- is set when the first dataset is registered (its storage root), or below for an existing catalog.
INSERT INTO ducklake_metadata (key, value) VALUES
    ('version', '1.0'), ('created_by', 'bronze'), ('data_path', ''), ('encrypted', 'false');
INSERT INTO ducklake_snapshot VALUES
    (0, least(now(), (SELECT min(created_at) FROM _meta_lineage)), 0, 1, 0);
INSERT INTO ducklake_snapshot_changes VALUES
    (0, 'created_schema:"main"', 'bronze migrate', 'the DuckLake catalog of bronze', NULL);
INSERT INTO ducklake_schema VALUES (0, gen_random_uuid(), 0, NULL, 'main', 'main/', true);

-- bronze's own lookups: the live files of a table by path (compaction ends them, verify compares),
-- and the rows a compaction's row superseded (few: a partial index).
CREATE INDEX _bronze_ducklake_live_files ON ducklake_data_file (table_id, path)
    WHERE end_snapshot IS NULL;
CREATE INDEX _meta_lineage_superseded_by ON _meta_lineage (superseded_by)
    WHERE superseded_by IS NOT NULL;

-- A dataset's storage root and grid are properties of the dataset (issue 21), recorded when it is
-- registered; commands that act on its partitions take them from here. Its DuckLake table, too.
ALTER TABLE _meta_datasets
    ADD COLUMN storage_root      TEXT,
    ADD COLUMN partition_size    INTEGER CHECK (partition_size > 0),
    ADD COLUMN ducklake_table_id BIGINT;

-- Existing datasets: the storage root is where their current rows are (storage_uri without its
-- storage_path; a file:// URL as its path), when they all agree on one; a dataset with no row, or
-- rows under several roots, keeps none, and the next copy or compact records the one it is given.
CREATE FUNCTION _bronze_inferred_storage_root(p_dataset integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN count(DISTINCT root) = 1 AND count(*) = count(root) THEN min(root) END
    FROM (SELECT CASE WHEN right(storage_uri, length(storage_path) + 1) = '/' || storage_path
                      THEN regexp_replace(left(storage_uri, length(storage_uri) - length(storage_path) - 1),
                                          '^file://', '') END AS root
          FROM _meta_lineage WHERE dataset_id = p_dataset AND superseded_by IS NULL) r
$$;

-- The grid: the longest current row, when it starts a cell of its own length and no current row
-- crosses a cell of that size (a backfill's full cells); otherwise (no rows, only partials that
-- fit no one grid, or rows of several grids) none, and the next copy or compact records the one
-- it is given. (`catalog rebuild` infers a new dataset's grid the same way.)
CREATE FUNCTION _bronze_inferred_partition_size(p_dataset integer) RETURNS integer
LANGUAGE sql STABLE AS $$
    WITH cur AS (
        SELECT ledger_start, ledger_end, ledger_end - ledger_start + 1 AS len FROM _meta_lineage
        WHERE dataset_id = p_dataset AND superseded_by IS NULL
    ), g AS (SELECT max(len) AS size FROM cur)
    SELECT g.size::integer FROM g
    WHERE g.size <= 10000000
      AND EXISTS (SELECT 1 FROM cur WHERE cur.len = g.size AND (cur.ledger_start - 1) % g.size = 0)
      AND NOT EXISTS (SELECT 1 FROM cur
                      WHERE (cur.ledger_start - 1) / g.size <> (cur.ledger_end - 1) / g.size)
$$;

UPDATE _meta_datasets SET storage_root = _bronze_inferred_storage_root(id),
                          partition_size = _bronze_inferred_partition_size(id);

UPDATE ducklake_metadata SET value = coalesce((
    SELECT storage_root || '/' FROM _meta_datasets WHERE storage_root IS NOT NULL
    GROUP BY storage_root ORDER BY count(*) DESC, min(id) LIMIT 1), '')
WHERE key = 'data_path';

-- A path as DuckDB reads it: a local file:// URL is its path; gs:// and s3:// URLs stay as they are.
CREATE FUNCTION _bronze_ducklake_uri(p_uri text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT regexp_replace(p_uri, '^file://', '') $$;

-- The absolute folder of a table: its path, resolved against its schema's and the data path.
CREATE FUNCTION _bronze_ducklake_table_root(p_table bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN t.path_is_relative
                THEN CASE WHEN s.path_is_relative
                          THEN (SELECT value FROM ducklake_metadata
                                WHERE key = 'data_path' AND scope IS NULL) || s.path
                          ELSE s.path END || t.path
                ELSE t.path END
    FROM ducklake_table t JOIN ducklake_schema s ON s.schema_id = t.schema_id
    WHERE t.table_id = p_table
$$;

-- A lineage row's file as its DuckLake path: relative to its table's folder when it lies inside it
-- (every file of a dataset stored where it was registered), absolute otherwise.
CREATE FUNCTION _bronze_ducklake_file_path(p_table_root text, p_uri text,
                                           OUT path text, OUT path_is_relative boolean)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN inside THEN substr(u, length(p_table_root) + 1) ELSE u END, inside
    FROM (SELECT u, coalesce(starts_with(u, p_table_root), false) AS inside
          FROM (SELECT _bronze_ducklake_uri(p_uri) AS u) a) b
$$;

-- A time in milliseconds as the extension writes a TIMESTAMPTZ statistic: '2023-11-14 22:13:26+00'.
CREATE FUNCTION _bronze_ducklake_time(p_ms double precision) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT regexp_replace(to_char((timestamptz 'epoch' + p_ms::bigint * interval '1 millisecond')
                                  AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), '\.000$', '') || '+00'
$$;

-- The latest snapshot, read under the lock that serializes bronze's snapshots (advisory lock class
-- 0x62726f70, "brop": claims.ts holds the classes beside it). Transaction-level: it is held until
-- the caller's COMMIT or ROLLBACK, so the next committer reads this one's snapshot.
CREATE FUNCTION _bronze_ducklake_last_snapshot() RETURNS ducklake_snapshot
LANGUAGE plpgsql VOLATILE AS $$
DECLARE s ducklake_snapshot;
BEGIN
    PERFORM pg_advisory_xact_lock(1651666800, 0);
    SELECT * INTO STRICT s FROM ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1;
    RETURN s;
END $$;

-- The snapshot after `p_last`, with its changes (never earlier than the one before it).
CREATE FUNCTION _bronze_ducklake_snapshot(p_last ducklake_snapshot, p_schema_version bigint,
    p_next_catalog_id bigint, p_next_file_id bigint, p_changes text, p_author text,
    p_message text, p_extra text, p_time timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ducklake_snapshot VALUES (p_last.snapshot_id + 1,
        greatest(coalesce(p_time, clock_timestamp()), p_last.snapshot_time),
        p_schema_version, p_next_catalog_id, p_next_file_id);
    INSERT INTO ducklake_snapshot_changes
        VALUES (p_last.snapshot_id + 1, p_changes, p_author, p_message, p_extra);
    RETURN p_last.snapshot_id + 1;
END $$;

-- A name as changes_made quotes it: "a""b".
CREATE FUNCTION _bronze_ducklake_quoted(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '"' || replace(p_name, '"', '""') || '"' $$;

-- The live DuckLake table of a dataset, or NULL.
CREATE FUNCTION _bronze_ducklake_table_of(p_dataset integer) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT t.table_id FROM _meta_datasets d
    JOIN ducklake_table t ON t.table_id = d.ducklake_table_id AND t.end_snapshot IS NULL
    WHERE d.id = p_dataset
$$;

-- Registers a dataset's DuckLake table (and its network's schema, if new) in ONE snapshot: the
-- columns, a name mapping for files without field ids, empty statistics. The table's folder is
-- `<p_root>/<p_prefix>` (p_root NULL: the data path's), relative to its schema's when inside it.
-- A dataset that has a live table keeps it (its id is returned); a retired one gets none (NULL).
CREATE FUNCTION _bronze_ducklake_register(p_dataset integer, p_schema text, p_table text,
    p_root text, p_prefix text, p_columns text[], p_types text[], p_nullable boolean[],
    p_author text, p_message text, p_time timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s ducklake_snapshot;
    v_table bigint := _bronze_ducklake_table_of(p_dataset);
    v_sid bigint;
    v_catalog bigint;
    v_mapping bigint;
    v_schema bigint;
    v_schema_root text;
    v_data_path text;
    v_table_root text;
    v_changes text[] := '{}';
BEGIN
    IF v_table IS NOT NULL THEN RETURN v_table; END IF;
    IF EXISTS (SELECT 1 FROM _meta_datasets WHERE id = p_dataset AND retired_at IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    s := _bronze_ducklake_last_snapshot();
    v_sid := s.snapshot_id + 1;
    v_catalog := s.next_catalog_id;
    SELECT value INTO v_data_path FROM ducklake_metadata WHERE key = 'data_path' AND scope IS NULL;
    IF coalesce(v_data_path, '') = '' AND p_root IS NOT NULL THEN
        v_data_path := rtrim(p_root, '/') || '/';
        UPDATE ducklake_metadata SET value = v_data_path WHERE key = 'data_path' AND scope IS NULL;
    END IF;
    SELECT schema_id, CASE WHEN path_is_relative THEN v_data_path || path ELSE path END
      INTO v_schema, v_schema_root
      FROM ducklake_schema WHERE schema_name = p_schema AND end_snapshot IS NULL;
    IF v_schema IS NULL THEN
        v_schema := v_catalog;
        v_catalog := v_catalog + 1;
        INSERT INTO ducklake_schema
            VALUES (v_schema, gen_random_uuid(), v_sid, NULL, p_schema, p_schema || '/', true);
        v_schema_root := v_data_path || p_schema || '/';
        v_changes := v_changes || ('created_schema:' || _bronze_ducklake_quoted(p_schema));
    ELSIF EXISTS (SELECT 1 FROM ducklake_table
                  WHERE schema_id = v_schema AND table_name = p_table AND end_snapshot IS NULL) THEN
        RAISE EXCEPTION 'DuckLake table %.% is already another dataset''s', p_schema, p_table
            USING ERRCODE = 'duplicate_object';
    END IF;
    v_table := v_catalog;
    v_catalog := v_catalog + 1;
    v_table_root := coalesce(rtrim(p_root, '/') || '/', v_data_path) || p_prefix;
    INSERT INTO ducklake_table VALUES (v_table, gen_random_uuid(), v_sid, NULL, v_schema, p_table,
        CASE WHEN starts_with(v_table_root, v_schema_root)
             THEN substr(v_table_root, length(v_schema_root) + 1) ELSE v_table_root END,
        starts_with(v_table_root, v_schema_root));
    INSERT INTO ducklake_column
        SELECT i, v_sid, NULL, v_table, i, p_columns[i], p_types[i], NULL, 'NULL', p_nullable[i],
               NULL, 'literal', 'duckdb'
        FROM generate_subscripts(p_columns, 1) AS i;
    v_mapping := s.next_file_id;
    INSERT INTO ducklake_column_mapping VALUES (v_mapping, v_table, 'map_by_name');
    INSERT INTO ducklake_name_mapping
        SELECT v_mapping, i - 1, p_columns[i], i, NULL, false
        FROM generate_subscripts(p_columns, 1) AS i;
    INSERT INTO ducklake_table_stats VALUES (v_table, 0, 0, 0);
    INSERT INTO ducklake_schema_versions VALUES (v_sid, s.schema_version + 1, v_table);
    v_changes := v_changes || ('created_table:' || _bronze_ducklake_quoted(p_schema) || '.' ||
                               _bronze_ducklake_quoted(p_table));
    PERFORM _bronze_ducklake_snapshot(s, s.schema_version + 1, v_catalog, s.next_file_id + 1,
        array_to_string(v_changes, ','), p_author, p_message,
        json_build_object('dataset_id', p_dataset)::text, p_time);
    UPDATE _meta_datasets SET ducklake_table_id = v_table WHERE id = p_dataset;
    RETURN v_table;
END $$;

-- Ends the live files of a table at snapshot p_sid: those at `p_paths` (NULL: all of them).
CREATE FUNCTION _bronze_ducklake_end_files(p_table bigint, p_paths text[], p_sid bigint,
    OUT files bigint, OUT record_count bigint, OUT file_size_bytes bigint)
LANGUAGE plpgsql AS $$
BEGIN
    files := 0;
    record_count := 0;
    file_size_bytes := 0;
    IF p_paths IS NULL THEN
        WITH ended AS (
            UPDATE ducklake_data_file f SET end_snapshot = p_sid
            WHERE f.table_id = p_table AND f.end_snapshot IS NULL
            RETURNING f.record_count, f.file_size_bytes
        )
        SELECT count(*), coalesce(sum(e.record_count), 0), coalesce(sum(e.file_size_bytes), 0)
          INTO files, record_count, file_size_bytes FROM ended e;
    ELSIF cardinality(p_paths) > 0 THEN
        WITH ended AS (
            UPDATE ducklake_data_file f SET end_snapshot = p_sid
            WHERE f.table_id = p_table AND f.end_snapshot IS NULL AND f.path = ANY(p_paths)
            RETURNING f.record_count, f.file_size_bytes
        )
        SELECT count(*), coalesce(sum(e.record_count), 0), coalesce(sum(e.file_size_bytes), 0)
          INTO files, record_count, file_size_bytes FROM ended e;
    END IF;
    IF files = 0 THEN RETURN; END IF;
    UPDATE ducklake_table_stats t
       SET record_count = t.record_count - _bronze_ducklake_end_files.record_count,
           file_size_bytes = t.file_size_bytes - _bronze_ducklake_end_files.file_size_bytes
     WHERE t.table_id = p_table;
END $$;

-- Widens a table's statistics of one column to hold [p_min, p_max] (compared as p_kind, bigint or
-- timestamptz); they cover every file the table ever had, as the extension keeps them.
CREATE FUNCTION _bronze_ducklake_widen(p_table bigint, p_column bigint, p_min text, p_max text,
                                       p_kind text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_column IS NULL OR p_min IS NULL OR p_max IS NULL THEN RETURN; END IF;
    UPDATE ducklake_table_column_stats
       SET min_value = CASE WHEN min_value IS NULL OR (CASE p_kind
                                WHEN 'bigint' THEN p_min::bigint < min_value::bigint
                                ELSE p_min::timestamptz < min_value::timestamptz END)
                            THEN p_min ELSE min_value END,
           max_value = CASE WHEN max_value IS NULL OR (CASE p_kind
                                WHEN 'bigint' THEN p_max::bigint > max_value::bigint
                                ELSE p_max::timestamptz > max_value::timestamptz END)
                            THEN p_max ELSE max_value END
     WHERE table_id = p_table AND column_id = p_column;
    IF NOT FOUND THEN
        INSERT INTO ducklake_table_column_stats
            VALUES (p_table, p_column, false, NULL, p_min, p_max, NULL);
    END IF;
END $$;

-- Adds the files of lineage rows `p_lineage` of a dataset to its table at snapshot p_sid, ids
-- from p_file_id on, in ledger order: path, row count, size, the table's name mapping, row ids
-- after the table's last, and the min/max of ledger_sequence (the row's range) and close_time
-- (its close_time_min_ms/close_time_max_ms quality rows, recorded from the build; rows older than
-- them: first_close_time_ms/last_close_time_ms, equal for Stellar, whose close times only grow).
CREATE FUNCTION _bronze_ducklake_add_files(p_table bigint, p_dataset integer, p_lineage integer[],
    p_sid bigint, p_file_id bigint,
    OUT files bigint, OUT record_count bigint, OUT file_size_bytes bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_root text := _bronze_ducklake_table_root(p_table);
    v_next_row bigint;
    v_mapping bigint;
    v_seq bigint;
    v_close bigint;
    v_min_seq bigint;
    v_max_seq bigint;
    v_min_close double precision;
    v_max_close double precision;
BEGIN
    SELECT next_row_id INTO v_next_row FROM ducklake_table_stats WHERE table_id = p_table;
    SELECT min(mapping_id) INTO v_mapping FROM ducklake_column_mapping WHERE table_id = p_table;
    SELECT column_id INTO v_seq FROM ducklake_column
     WHERE table_id = p_table AND column_name = 'ledger_sequence' AND end_snapshot IS NULL;
    SELECT column_id INTO v_close FROM ducklake_column
     WHERE table_id = p_table AND column_name = 'close_time' AND end_snapshot IS NULL;
    WITH adding AS (
        SELECT p_file_id + row_number() OVER w - 1 AS data_file_id, l.ledger_start, l.ledger_end,
               l.row_count, l.byte_size, p.path, p.path_is_relative,
               coalesce(v_next_row, 0) + sum(l.row_count) OVER w - l.row_count AS row_id_start,
               coalesce(q.close_min, q.first_close) AS close_min,
               coalesce(q.close_max, q.last_close) AS close_max
        FROM _meta_lineage l
        CROSS JOIN LATERAL _bronze_ducklake_file_path(v_root, l.storage_uri) p
        LEFT JOIN LATERAL (
            SELECT max(metric_value) FILTER (WHERE metric_name = 'close_time_min_ms') AS close_min,
                   max(metric_value) FILTER (WHERE metric_name = 'close_time_max_ms') AS close_max,
                   max(metric_value) FILTER (WHERE metric_name = 'first_close_time_ms') AS first_close,
                   max(metric_value) FILTER (WHERE metric_name = 'last_close_time_ms') AS last_close
            FROM _meta_quality
            WHERE lineage_id = l.id AND metric_name IN ('close_time_min_ms', 'close_time_max_ms',
                                                        'first_close_time_ms', 'last_close_time_ms')
        ) q ON true
        WHERE l.id = ANY(p_lineage) AND l.dataset_id = p_dataset
        WINDOW w AS (ORDER BY l.ledger_start)
    ), data_files AS (
        INSERT INTO ducklake_data_file (data_file_id, table_id, begin_snapshot, end_snapshot,
            file_order, path, path_is_relative, file_format, record_count, file_size_bytes,
            footer_size, row_id_start, partition_id, encryption_key, mapping_id, partial_max)
        SELECT a.data_file_id, p_table, p_sid, NULL, NULL, a.path, a.path_is_relative, 'parquet',
               a.row_count, a.byte_size, NULL, a.row_id_start, NULL, NULL, v_mapping, NULL
        FROM adding a
    ), column_stats AS (
        INSERT INTO ducklake_file_column_stats (data_file_id, table_id, column_id,
            column_size_bytes, value_count, null_count, min_value, max_value, contains_nan,
            extra_stats)
        SELECT a.data_file_id, p_table, v_seq, NULL::bigint, a.row_count, 0, a.ledger_start::text,
               a.ledger_end::text, NULL::boolean, NULL::varchar
        FROM adding a WHERE v_seq IS NOT NULL
        UNION ALL
        SELECT a.data_file_id, p_table, v_close, NULL, a.row_count, 0,
               _bronze_ducklake_time(a.close_min), _bronze_ducklake_time(a.close_max), NULL, NULL
        FROM adding a
        WHERE v_close IS NOT NULL AND a.close_min IS NOT NULL AND a.close_max IS NOT NULL
    )
    SELECT count(*), coalesce(sum(a.row_count), 0), coalesce(sum(a.byte_size), 0),
           min(a.ledger_start), max(a.ledger_end), min(a.close_min), max(a.close_max)
      INTO files, record_count, file_size_bytes, v_min_seq, v_max_seq, v_min_close, v_max_close
      FROM adding a;
    IF files = 0 THEN RETURN; END IF;
    UPDATE ducklake_table_stats t
       SET record_count = t.record_count + _bronze_ducklake_add_files.record_count,
           next_row_id = t.next_row_id + _bronze_ducklake_add_files.record_count,
           file_size_bytes = t.file_size_bytes + _bronze_ducklake_add_files.file_size_bytes
     WHERE t.table_id = p_table;
    PERFORM _bronze_ducklake_widen(p_table, v_seq, v_min_seq::text, v_max_seq::text, 'bigint');
    PERFORM _bronze_ducklake_widen(p_table, v_close, _bronze_ducklake_time(v_min_close),
                                   _bronze_ducklake_time(v_max_close), 'timestamptz');
END $$;

-- The DuckLake rows of lineage rows `p_lineage` of a dataset (a partition, a compaction, a
-- rebuild's rows), now: ONE snapshot that ends the live files of the rows they supersede and adds
-- theirs. A retired dataset, or one without a table, gets none (NULL); so does a call that changes
-- nothing. Returns the snapshot id.
CREATE FUNCTION _bronze_ducklake_commit_now(p_dataset integer, p_lineage integer[], p_author text,
    p_message text, p_time timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_table bigint;
    s ducklake_snapshot;
    v_root text;
    v_ended record;
    v_added record;
BEGIN
    SELECT _bronze_ducklake_table_of(d.id) INTO v_table
      FROM _meta_datasets d WHERE d.id = p_dataset AND d.retired_at IS NULL;
    IF v_table IS NULL THEN RETURN NULL; END IF;
    s := _bronze_ducklake_last_snapshot();
    v_root := _bronze_ducklake_table_root(v_table);
    SELECT * INTO v_ended FROM _bronze_ducklake_end_files(v_table, ARRAY(
        SELECT (_bronze_ducklake_file_path(v_root, l.storage_uri)).path FROM _meta_lineage l
        WHERE l.dataset_id = p_dataset AND l.superseded_by = ANY(p_lineage)), s.snapshot_id + 1);
    SELECT * INTO v_added
      FROM _bronze_ducklake_add_files(v_table, p_dataset, p_lineage, s.snapshot_id + 1, s.next_file_id);
    IF v_ended.files = 0 AND v_added.files = 0 THEN RETURN NULL; END IF;
    RETURN _bronze_ducklake_snapshot(s, s.schema_version, s.next_catalog_id,
        s.next_file_id + v_added.files,
        CASE WHEN v_ended.files > 0 AND v_added.files > 0 THEN 'compacted_table:' || v_table
             WHEN v_ended.files > 0 THEN 'deleted_from_table:' || v_table
             ELSE 'inserted_into_table:' || v_table END,
        p_author, p_message,
        json_build_object('lineage_ids', p_lineage,
            'superseded_lineage_ids', ARRAY(SELECT l.id FROM _meta_lineage l
                WHERE l.dataset_id = p_dataset AND l.superseded_by = ANY(p_lineage) ORDER BY l.id))::text,
        p_time);
END $$;

-- THE commit of DuckLake rows, called by the transaction that records lineage rows: it says what
-- to record, and a deferred trigger records it (_bronze_ducklake_commit_now) when that transaction
-- commits, inside it, as its very last work. So the lock that orders snapshots is held from there
-- to the end of COMMIT only, with no round trip to the client in between, however far the client
-- is; and what fails there fails the commit, atomically with the lineage.
CREATE TABLE _bronze_ducklake_pending (
    id          BIGSERIAL PRIMARY KEY,
    dataset_id  INTEGER NOT NULL,
    lineage_ids INTEGER[] NOT NULL,
    author      TEXT,
    message     TEXT
);

CREATE FUNCTION _bronze_ducklake_commit(p_dataset integer, p_lineage integer[], p_author text,
    p_message text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO _bronze_ducklake_pending (dataset_id, lineage_ids, author, message)
    VALUES (p_dataset, p_lineage, p_author, p_message)
$$;

CREATE FUNCTION _bronze_ducklake_at_commit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM _bronze_ducklake_commit_now(NEW.dataset_id, NEW.lineage_ids, NEW.author, NEW.message);
    DELETE FROM _bronze_ducklake_pending WHERE id = NEW.id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER _bronze_ducklake_at_commit AFTER INSERT ON _bronze_ducklake_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION _bronze_ducklake_at_commit();

-- Retirement: ONE snapshot that drops the dataset's table (its columns and live files end with
-- it, as DROP TABLE does). NULL when it has no live table.
CREATE FUNCTION _bronze_ducklake_drop(p_dataset integer, p_author text, p_message text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_table bigint := _bronze_ducklake_table_of(p_dataset);
    s ducklake_snapshot;
BEGIN
    IF v_table IS NULL THEN RETURN NULL; END IF;
    s := _bronze_ducklake_last_snapshot();
    PERFORM _bronze_ducklake_end_files(v_table, NULL, s.snapshot_id + 1);
    UPDATE ducklake_table SET end_snapshot = s.snapshot_id + 1
     WHERE table_id = v_table AND end_snapshot IS NULL;
    UPDATE ducklake_column SET end_snapshot = s.snapshot_id + 1
     WHERE table_id = v_table AND end_snapshot IS NULL;
    RETURN _bronze_ducklake_snapshot(s, s.schema_version + 1, s.next_catalog_id, s.next_file_id,
        'dropped_table:' || v_table, p_author, p_message,
        json_build_object('dataset_id', p_dataset)::text, NULL);
END $$;

-- Where a dataset's DuckLake rows and its lineage disagree: each current lineage row without a
-- live file at its path holding its row count and size, and each live file no current row
-- accounts for. `bronze verify` reports these; _bronze_ducklake_reconcile (`bronze repair`) ends
-- and adds files until there are none. (A dataset without a live table: every current row.)
CREATE FUNCTION _bronze_ducklake_disagreements(p_dataset integer)
RETURNS TABLE (lineage_id integer, data_file_id bigint, path text, lineage_rows bigint,
               lineage_bytes bigint, file_rows bigint, file_bytes bigint)
LANGUAGE sql STABLE AS $$
    WITH t AS (
        SELECT _bronze_ducklake_table_of(p_dataset) AS table_id
    ), want AS (
        SELECT l.id, p.path, p.path_is_relative, l.row_count, l.byte_size
        FROM _meta_lineage l, t,
             LATERAL _bronze_ducklake_file_path(_bronze_ducklake_table_root(t.table_id),
                                                l.storage_uri) p
        WHERE l.dataset_id = p_dataset AND l.superseded_by IS NULL
    ), have AS (
        SELECT f.data_file_id, f.path, f.path_is_relative, f.record_count, f.file_size_bytes
        FROM ducklake_data_file f, t
        WHERE f.table_id = t.table_id AND f.end_snapshot IS NULL
    )
    SELECT w.id, h.data_file_id, coalesce(w.path, h.path), w.row_count, w.byte_size,
           h.record_count, h.file_size_bytes
    FROM want w FULL JOIN have h ON h.path = w.path AND h.path_is_relative = w.path_is_relative
    WHERE w.id IS NULL OR h.data_file_id IS NULL
       OR h.record_count IS DISTINCT FROM w.row_count OR h.file_size_bytes IS DISTINCT FROM w.byte_size
    ORDER BY 3
$$;

-- `bronze repair`: ONE snapshot that brings a registered dataset's live files back to its current
-- lineage (ends the files no row accounts for, or that disagree, and adds the rows' files); a
-- retired dataset's table is dropped. NULL when they already agree.
CREATE FUNCTION _bronze_ducklake_reconcile(p_dataset integer, p_author text, p_message text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_table bigint := _bronze_ducklake_table_of(p_dataset);
    s ducklake_snapshot;
    v_stale text[];
    v_missing integer[];
    v_ended record;
    v_added record;
BEGIN
    IF v_table IS NULL THEN RETURN NULL; END IF;
    IF EXISTS (SELECT 1 FROM _meta_datasets WHERE id = p_dataset AND retired_at IS NOT NULL) THEN
        RETURN _bronze_ducklake_drop(p_dataset, p_author, p_message);
    END IF;
    s := _bronze_ducklake_last_snapshot();
    SELECT array_agg(path) FILTER (WHERE data_file_id IS NOT NULL),
           array_agg(lineage_id) FILTER (WHERE lineage_id IS NOT NULL)
      INTO v_stale, v_missing FROM _bronze_ducklake_disagreements(p_dataset);
    IF v_stale IS NULL AND v_missing IS NULL THEN RETURN NULL; END IF;
    SELECT * INTO v_ended
      FROM _bronze_ducklake_end_files(v_table, coalesce(v_stale, '{}'), s.snapshot_id + 1);
    SELECT * INTO v_added FROM _bronze_ducklake_add_files(v_table, p_dataset,
        coalesce(v_missing, '{}'), s.snapshot_id + 1, s.next_file_id);
    RETURN _bronze_ducklake_snapshot(s, s.schema_version, s.next_catalog_id,
        s.next_file_id + v_added.files,
        array_to_string(ARRAY[
            CASE WHEN v_added.files > 0 THEN 'inserted_into_table:' || v_table END,
            CASE WHEN v_ended.files > 0 THEN 'deleted_from_table:' || v_table END], ','),
        p_author, p_message,
        json_build_object('lineage_ids', coalesce(v_missing, '{}'),
                          'ended_files', v_ended.files)::text, NULL);
END $$;

-- A catalog made before this migration: each lineage row of the given (registered) datasets
-- becomes a snapshot of its own, in id order (commit order), dated by the row's created_at where
-- the history allows: a compaction's row ends the files of the partials it superseded, as it did.
CREATE FUNCTION _bronze_ducklake_replay(p_datasets integer[], p_author text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n bigint := 0;
BEGIN
    FOR r IN SELECT id, dataset_id, ledger_start, ledger_end, created_at FROM _meta_lineage
             WHERE dataset_id = ANY(p_datasets) ORDER BY id LOOP
        IF _bronze_ducklake_commit_now(r.dataset_id, ARRAY[r.id], p_author,
               format('lineage %s (ledgers %s-%s), recorded before the catalog was a DuckLake',
                      r.id, r.ledger_start, r.ledger_end), r.created_at) IS NOT NULL THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- Down Migration
DROP FUNCTION IF EXISTS _bronze_ducklake_replay(integer[], text);
DROP FUNCTION IF EXISTS _bronze_ducklake_reconcile(integer, text, text);
DROP FUNCTION IF EXISTS _bronze_ducklake_disagreements(integer);
DROP FUNCTION IF EXISTS _bronze_ducklake_drop(integer, text, text);
DROP TABLE IF EXISTS _bronze_ducklake_pending;
DROP FUNCTION IF EXISTS _bronze_ducklake_at_commit();
DROP FUNCTION IF EXISTS _bronze_ducklake_commit(integer, integer[], text, text);
DROP FUNCTION IF EXISTS _bronze_ducklake_commit_now(integer, integer[], text, text, timestamptz);
DROP FUNCTION IF EXISTS _bronze_ducklake_add_files(bigint, integer, integer[], bigint, bigint);
DROP FUNCTION IF EXISTS _bronze_ducklake_widen(bigint, bigint, text, text, text);
DROP FUNCTION IF EXISTS _bronze_ducklake_end_files(bigint, text[], bigint);
DROP FUNCTION IF EXISTS _bronze_ducklake_register(integer, text, text, text, text, text[], text[],
    boolean[], text, text, timestamptz);
DROP FUNCTION IF EXISTS _bronze_ducklake_table_of(integer);
DROP FUNCTION IF EXISTS _bronze_ducklake_quoted(text);
DROP FUNCTION IF EXISTS _bronze_ducklake_snapshot(ducklake_snapshot, bigint, bigint, bigint, text,
    text, text, text, timestamptz);
DROP FUNCTION IF EXISTS _bronze_ducklake_last_snapshot();
DROP FUNCTION IF EXISTS _bronze_ducklake_time(double precision);
DROP FUNCTION IF EXISTS _bronze_ducklake_file_path(text, text);
DROP FUNCTION IF EXISTS _bronze_ducklake_table_root(bigint);
DROP FUNCTION IF EXISTS _bronze_ducklake_uri(text);
DROP FUNCTION IF EXISTS _bronze_inferred_partition_size(integer);
DROP FUNCTION IF EXISTS _bronze_inferred_storage_root(integer);
DROP INDEX IF EXISTS _meta_lineage_superseded_by;
ALTER TABLE _meta_datasets
    DROP COLUMN IF EXISTS ducklake_table_id,
    DROP COLUMN IF EXISTS partition_size,
    DROP COLUMN IF EXISTS storage_root;
DROP TABLE IF EXISTS ducklake_column;
DROP TABLE IF EXISTS ducklake_column_mapping;
DROP TABLE IF EXISTS ducklake_column_tag;
DROP TABLE IF EXISTS ducklake_data_file;
DROP TABLE IF EXISTS ducklake_delete_file;
DROP TABLE IF EXISTS ducklake_file_column_stats;
DROP TABLE IF EXISTS ducklake_file_partition_value;
DROP TABLE IF EXISTS ducklake_file_variant_stats;
DROP TABLE IF EXISTS ducklake_files_scheduled_for_deletion;
DROP TABLE IF EXISTS ducklake_inlined_data_tables;
DROP TABLE IF EXISTS ducklake_macro;
DROP TABLE IF EXISTS ducklake_macro_impl;
DROP TABLE IF EXISTS ducklake_macro_parameters;
DROP TABLE IF EXISTS ducklake_metadata;
DROP TABLE IF EXISTS ducklake_name_mapping;
DROP TABLE IF EXISTS ducklake_partition_column;
DROP TABLE IF EXISTS ducklake_partition_info;
DROP TABLE IF EXISTS ducklake_schema;
DROP TABLE IF EXISTS ducklake_schema_versions;
DROP TABLE IF EXISTS ducklake_snapshot;
DROP TABLE IF EXISTS ducklake_snapshot_changes;
DROP TABLE IF EXISTS ducklake_sort_expression;
DROP TABLE IF EXISTS ducklake_sort_info;
DROP TABLE IF EXISTS ducklake_table;
DROP TABLE IF EXISTS ducklake_table_column_stats;
DROP TABLE IF EXISTS ducklake_table_stats;
DROP TABLE IF EXISTS ducklake_tag;
DROP TABLE IF EXISTS ducklake_view;
