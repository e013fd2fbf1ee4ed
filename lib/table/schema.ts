/**
 * The `ledgers_lcm_raw` table: its columns, the row as read back, and the schema's hash.
 *
 * Determinism is the point: the same ledgers must give byte-identical files on any machine, so the
 * schema carries no wall-clock column, and the writer (writer.ts) a fixed `created_by`, a fixed
 * zstd level, and row-group boundaries that depend only on the rows.
 */
import { createHash } from "node:crypto";
import type { SchemaElement } from "hyparquet";

export const TABLE = "ledgers_lcm_raw";
/** The catalog domain of bronze's datasets (_meta_datasets.domain). */
export const DOMAIN = "bronze";
/** _meta_datasets.description of a `ledgers_lcm_raw` dataset. */
export const TABLE_DESCRIPTION =
  "Stellar LedgerCloseMeta, one row per ledger, copied verbatim from a Galexie data lake";
/** zstd level for every page; the benchmark compresses at the same level. */
export const ZSTD_LEVEL = 3;
export const CREATED_BY = "bronze ledgers_lcm_raw";

/** The per-partition constant columns. */
export interface PartitionMeta {
  bronzeVersion: string;
  eraId: string;
  network: string;
}

/** A row as read back from a partition file (hyparquet's JS types). */
export interface PartitionRow {
  ledger_sequence: bigint;
  ledger_hash: string;
  previous_ledger_hash: string;
  close_time: Date;
  protocol_version: number;
  total_coins: bigint;
  fee_pool: bigint;
  tx_set_hash: string;
  tx_count: number;
  operation_count: number;
  xdr_bytes: Uint8Array;
  xdr_byte_length: number;
  xdr_sha256: string;
  bronze_version: string;
  era_id: string;
  network: string;
}

const REQUIRED = "REQUIRED" as const;
const int64 = (name: string): SchemaElement => ({ name, type: "INT64", repetition_type: REQUIRED });
const int32 = (name: string): SchemaElement => ({ name, type: "INT32", repetition_type: REQUIRED });
const string = (name: string): SchemaElement => ({
  name,
  type: "BYTE_ARRAY",
  converted_type: "UTF8",
  logical_type: { type: "STRING" },
  repetition_type: REQUIRED,
});

const COLUMNS: SchemaElement[] = [
  int64("ledger_sequence"),
  string("ledger_hash"),
  string("previous_ledger_hash"),
  {
    name: "close_time",
    type: "INT64",
    converted_type: "TIMESTAMP_MILLIS",
    logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MILLIS" },
    repetition_type: REQUIRED,
  },
  int32("protocol_version"),
  int64("total_coins"),
  int64("fee_pool"),
  string("tx_set_hash"),
  int32("tx_count"),
  int32("operation_count"),
  { name: "xdr_bytes", type: "BYTE_ARRAY", repetition_type: REQUIRED },
  int32("xdr_byte_length"),
  string("xdr_sha256"),
  string("bronze_version"),
  string("era_id"),
  string("network"),
];

/** The file schema: a root element, then the columns in file order. */
export const SCHEMA: SchemaElement[] = [
  { name: "schema", num_children: COLUMNS.length },
  ...COLUMNS,
];

/** Column names in file order. */
export const COLUMN_NAMES: readonly string[] = COLUMNS.map((c) => c.name);

/**
 * sha256 of a canonical description of the schema (name, physical type, annotations, in order):
 * registered with the dataset so a schema change can never pass for the same dataset.
 */
export const SCHEMA_HASH: string = schemaHashOf(COLUMNS);

/**
 * The schema hash of a table's column elements (without the root element): SCHEMA_HASH for this
 * schema, and for a stored file's schema as a Parquet reader parses it (which `catalog rebuild`
 * derives for a manifest written before manifests held it).
 */
export function schemaHashOf(columns: readonly SchemaElement[]): string {
  return createHash("sha256")
    .update(JSON.stringify({
      table: TABLE,
      columns: columns.map((c) => [
        c.name,
        c.type,
        c.converted_type ?? null,
        c.logical_type ?? null,
      ]),
    }))
    .digest("hex");
}
