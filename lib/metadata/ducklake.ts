/**
 * The catalog is also a DuckLake (migration 008): every dataset is a DuckLake table, every commit
 * that records lineage records the same files there in the same transaction, as one snapshot.
 * The SQL is the migration's functions (`_bronze_ducklake_*`); this module calls them inside the
 * caller's transaction, and says what a dataset's table is called and holds.
 *
 * Mapping (README "Reading the data"): DuckLake schema = the network, table =
 * `<dataset>_<era>_<version>` (`testnet.ledgers_lcm_raw_default_v1`); its folder is the dataset's
 * storage folder, each file's path relative to it.
 */
import type { SchemaElement } from "hyparquet";
import { datasetPrefix } from "../table/layout.ts";
import { SCHEMA } from "../table/schema.ts";
import { dbOf, type Tx } from "./_db.ts";
import type { Catalog } from "./catalog.ts";

/** The DuckLake specification the migration's tables follow (ducklake_metadata 'version'). */
export const DUCKLAKE_SPEC_VERSION = "1.0";

/** What names a dataset's DuckLake table. */
export interface DuckLakeIdentity {
  dataset: string;
  network: string;
  eraId: string;
  version: string;
}

/** A dataset's DuckLake schema and table names. */
export function duckLakeNameOf(ds: DuckLakeIdentity): { schema: string; table: string } {
  return { schema: ds.network, table: `${ds.dataset}_${ds.eraId}_${ds.version}` };
}

/** `schema.table` as a DuckDB query names it, quoted where a label needs it (`-`, `.`). */
export function duckLakeTableSql(ds: DuckLakeIdentity): string {
  const { schema, table } = duckLakeNameOf(ds);
  const ident = (s: string) => /^[a-z_][a-z0-9_]*$/.test(s) ? s : `"${s.replaceAll('"', '""')}"`;
  return `${ident(schema)}.${ident(table)}`;
}

/** A Parquet column's type as DuckLake names it (ducklake_column.column_type). */
function duckLakeType(c: SchemaElement): string {
  const logical = c.logical_type?.type;
  if (logical === "TIMESTAMP") {
    return (c.logical_type as { isAdjustedToUTC?: boolean }).isAdjustedToUTC
      ? "timestamptz"
      : "timestamp";
  }
  if (logical === "STRING") return "varchar";
  switch (c.type) {
    case "INT64":
      return "int64";
    case "INT32":
      return "int32";
    case "BYTE_ARRAY":
      return "blob";
    case "BOOLEAN":
      return "boolean";
    case "DOUBLE":
      return "float64";
  }
  throw new Error(`no DuckLake type for Parquet column ${c.name} (${c.type})`);
}

/** The table's columns: the Parquet file's, in file order, NOT NULL where the file's are REQUIRED. */
export const DUCKLAKE_COLUMNS: readonly { name: string; type: string; nullable: boolean }[] = SCHEMA
  .slice(1).map((c) => ({
    name: c.name,
    type: duckLakeType(c),
    nullable: c.repetition_type !== "REQUIRED",
  }));

/**
 * Registers the dataset's DuckLake table (and its network's schema), in one snapshot, unless it
 * has a live one already or is retired. The table's folder is the dataset's under `storageRoot`
 * (null: the DuckLake's data path). Returns the table id, or null for a retired dataset.
 */
export async function registerTable(
  tx: Tx,
  datasetId: number,
  ds: DuckLakeIdentity,
  storageRoot: string | null,
  author: string,
  time?: Date,
): Promise<number | null> {
  const { schema, table } = duckLakeNameOf(ds);
  const [{ id }] = await tx.query<{ id: number | null }>(
    `SELECT _bronze_ducklake_register($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) AS id`,
    [
      datasetId,
      schema,
      table,
      storageRoot,
      datasetPrefix(ds),
      DUCKLAKE_COLUMNS.map((c) => c.name),
      DUCKLAKE_COLUMNS.map((c) => c.type),
      DUCKLAKE_COLUMNS.map((c) => c.nullable),
      author,
      `registered ${schema}.${table}` + (storageRoot ? `, stored under ${storageRoot}` : ""),
      time?.toISOString() ?? null,
    ],
  );
  return id;
}

/**
 * The DuckLake side of a commit: ONE snapshot adding the files of `lineageIds` (recorded in this
 * transaction, with their quality rows) and ending those of the rows they supersede, made when
 * this transaction commits (a deferred trigger, migration 008): the lock that orders snapshots is
 * held from there to the end of COMMIT only. Nothing is made for a dataset without a live table
 * (retired).
 */
export async function commitFiles(
  tx: Tx,
  datasetId: number,
  lineageIds: readonly number[],
  author: string,
  message: string,
): Promise<void> {
  await tx.query(`SELECT _bronze_ducklake_commit($1, $2::int[], $3, $4)`, [
    datasetId,
    lineageIds,
    author,
    message,
  ]);
}

/** Retirement: ONE snapshot dropping the dataset's table (null: it had none). */
export async function dropTable(
  tx: Tx,
  datasetId: number,
  author: string,
  message: string,
): Promise<number | null> {
  const [{ snapshot }] = await tx.query<{ snapshot: number | null }>(
    `SELECT _bronze_ducklake_drop($1, $2, $3) AS snapshot`,
    [datasetId, author, message],
  );
  return snapshot;
}

/** A file where DuckLake and lineage disagree (a row without its file, or a file without a row). */
export interface DuckLakeDisagreement {
  /** The current lineage row (null: a live DuckLake file no current row accounts for). */
  lineageId: number | null;
  /** The live DuckLake file at the row's path (null: none). */
  dataFileId: number | null;
  path: string;
  lineage: { rows: number; bytes: number } | null;
  file: { rows: number; bytes: number } | null;
}

export interface DuckLakeState {
  /** The live table's id, or null (never registered, or dropped). */
  tableId: number | null;
  /** schema.table, as a DuckDB query names it. */
  name: string;
  disagreements: DuckLakeDisagreement[];
}

/** Where the dataset's DuckLake table and its current lineage disagree (empty: they agree). */
export async function duckLakeState(
  catalog: Catalog,
  datasetId: number,
  ds: DuckLakeIdentity,
): Promise<DuckLakeState> {
  const db = dbOf(catalog);
  const [{ table_id }] = await db.query<{ table_id: number | null }>(
    `SELECT _bronze_ducklake_table_of($1) AS table_id`,
    [datasetId],
  );
  const rows = await db.query<{
    lineage_id: number | null;
    data_file_id: number | null;
    path: string;
    lineage_rows: number | null;
    lineage_bytes: number | null;
    file_rows: number | null;
    file_bytes: number | null;
  }>(`SELECT * FROM _bronze_ducklake_disagreements($1)`, [datasetId]);
  return {
    tableId: table_id,
    name: duckLakeTableSql(ds),
    disagreements: rows.map((r) => ({
      lineageId: r.lineage_id,
      dataFileId: r.data_file_id,
      path: r.path,
      lineage: r.lineage_id === null ? null : { rows: r.lineage_rows!, bytes: r.lineage_bytes! },
      file: r.data_file_id === null ? null : { rows: r.file_rows!, bytes: r.file_bytes! },
    })),
  };
}

/**
 * `bronze repair`: brings the dataset's DuckLake rows back to its lineage, in one transaction of
 * at most two snapshots: the table registered if it has none (a retired dataset's is dropped
 * instead), then the files ended and added until they agree. Returns the snapshots made.
 */
export async function reconcileTable(
  catalog: Catalog,
  datasetId: number,
  ds: DuckLakeIdentity,
  storageRoot: string | null,
  author: string,
): Promise<number[]> {
  return await dbOf(catalog).transaction(async (tx) => {
    const made: number[] = [];
    const [{ retired }] = await tx.query<{ retired: boolean }>(
      `SELECT retired_at IS NOT NULL AS retired FROM _meta_datasets WHERE id = $1 FOR UPDATE`,
      [datasetId],
    );
    if (!retired) {
      const [{ before }] = await tx.query<{ before: number | null }>(
        `SELECT _bronze_ducklake_table_of($1) AS before`,
        [datasetId],
      );
      if (before === null) {
        await registerTable(tx, datasetId, ds, storageRoot, author);
        made.push(await lastSnapshot(tx));
      }
    }
    const [{ snapshot }] = await tx.query<{ snapshot: number | null }>(
      `SELECT _bronze_ducklake_reconcile($1, $2, $3) AS snapshot`,
      [datasetId, author, `repair: DuckLake rows brought back to the lineage`],
    );
    if (snapshot !== null) made.push(snapshot);
    return made;
  });
}

async function lastSnapshot(tx: Tx): Promise<number> {
  const [{ id }] = await tx.query<{ id: number }>(
    `SELECT max(snapshot_id) AS id FROM ducklake_snapshot`,
  );
  return id;
}

/**
 * After the migrations: every dataset that is not retired and has no DuckLake table yet (a
 * catalog made before migration 008) is registered, and its lineage replayed as DuckLake history,
 * one snapshot per lineage row in commit order (a compaction's row ending its partials' files), in
 * one transaction. Returns the datasets registered (none: nothing to do).
 */
export async function syncDuckLake(catalog: Catalog): Promise<number[]> {
  return await dbOf(catalog).transaction(async (tx) => {
    const missing = await tx.query<{
      id: number;
      dataset: string;
      network: string;
      era_id: string;
      version: string;
      storage_root: string | null;
      first: Date | null;
    }>(
      `SELECT d.id, d.dataset, d.network, d.era_id, d.version, d.storage_root,
              (SELECT min(created_at) FROM _meta_lineage l WHERE l.dataset_id = d.id) AS first
       FROM _meta_datasets d
       WHERE d.retired_at IS NULL AND d.ducklake_table_id IS NULL
       ORDER BY d.id
       FOR UPDATE OF d`,
    );
    if (!missing.length) return [];
    for (const d of missing) {
      await registerTable(
        tx,
        d.id,
        { dataset: d.dataset, network: d.network, eraId: d.era_id, version: d.version },
        d.storage_root,
        "bronze migrate",
        d.first ?? undefined,
      );
    }
    await tx.query(`SELECT _bronze_ducklake_replay($1::int[], 'bronze migrate')`, [
      missing.map((d) => d.id),
    ]);
    return missing.map((d) => d.id);
  });
}

/**
 * The statements that make `role` a reader of this catalog: it may log in, read the DuckLake and
 * `_meta_*` tables (and views), and write nothing: every other privilege on the catalog's schema
 * is revoked, and its sessions are read-only by default. Tables added by later migrations need
 * the statements again (`bronze migrate --reader-role` runs them each time).
 */
export async function readerRoleSql(catalog: Catalog, role: string): Promise<string[]> {
  const db = dbOf(catalog);
  const [where] = await db.query<{ db: string; schema: string }>(
    `SELECT quote_ident(current_database()) AS db, quote_ident(current_schema()) AS schema`,
  );
  const tables = await db.query<{ name: string }>(
    `SELECT quote_ident(c.relname) AS name FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v')
       AND (c.relname LIKE 'ducklake\\_%' OR c.relname LIKE '\\_meta\\_%')
     ORDER BY c.relname`,
  );
  return [
    `DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${role}') THEN ` +
    `CREATE ROLE ${role} LOGIN; END IF; END $$`,
    `ALTER ROLE ${role} SET default_transaction_read_only = on`,
    `REVOKE ALL ON ALL TABLES IN SCHEMA ${where.schema} FROM ${role}`,
    `REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${where.schema} FROM ${role}`,
    `REVOKE CREATE ON SCHEMA ${where.schema} FROM ${role}`,
    `GRANT CONNECT ON DATABASE ${where.db} TO ${role}`,
    `GRANT USAGE ON SCHEMA ${where.schema} TO ${role}`,
    `GRANT SELECT ON ${tables.map((t) => t.name).join(", ")} TO ${role}`,
  ];
}

/** Runs readerRoleSql in one transaction; a privilege the migrating user lacks raises 42501. */
export async function grantReader(catalog: Catalog, statements: readonly string[]): Promise<void> {
  await dbOf(catalog).transaction(async (tx) => {
    for (const s of statements) await tx.query(s);
  });
}
