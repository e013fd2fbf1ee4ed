/**
 * A partition's lineage as the catalog holds it: the record a commit writes, the row read back, and
 * the typed errors a commit refused for its range raises. Private to lib/metadata/ (writer.ts
 * re-exports what others use).
 */
import { BronzeError } from "../runtime/errors.ts";
import type { Row } from "./_db.ts";

export interface PartitionRecord {
  datasetId: number;
  ledgerStart: number;
  ledgerEnd: number;
  rowCount: number;
  byteSize: number;
  /** "sha256:<hex>" of the Parquet file. */
  checksum: string;
  /** Key of the Parquet file relative to the storage root. */
  storagePath: string;
  /** Full URL of the Parquet file. */
  storageUri: string;
  /** previous_ledger_hash of the partition's first ledger: links it to the partition before. */
  firstPreviousLedgerHash: string;
  /** ledger_hash of the partition's last ledger. */
  lastLedgerHash: string;
  producerVersion: string;
  producerGitSha: string | null;
  sourceType: string | null;
  sourceLocation: string | null;
  /**
   * The row's created_at, and its quality rows': the partition manifest's created_at, so a
   * catalog rebuilt from storage equals the lost one (default: the transaction's time).
   */
  createdAt?: Date;
  /** Quality metrics written in the same transaction as the lineage row. */
  quality?: Record<string, number>;
  /** A _meta_changes row (e.g. a backfill) written in the same transaction. */
  change?: { type: string; description: string };
  /**
   * The claim (ClaimSession) the partition was built under: the commit happens only if it is still
   * this copier's, so a copier cut off long enough for others to take its cell over commits nothing.
   */
  claimId?: number;
  /**
   * Compaction: the current partial rows this full-cell row replaces, marked superseded by it in
   * the same transaction (the one change a lineage row may ever receive).
   */
  supersedes?: number[];
  /** The DuckLake snapshot's author (the copier) and commit message. */
  author?: string;
  message?: string;
}

export interface LineageRow extends
  Omit<
    PartitionRecord,
    "quality" | "change" | "claimId" | "supersedes" | "createdAt" | "author" | "message"
  > {
  id: number;
  createdAt: Date;
  /** The row that replaced this one (compaction), or null for a current row. */
  supersededBy: number | null;
  supersededAt: Date | null;
}

export class DuplicatePartitionError extends BronzeError {
  constructor(readonly dataset: string, readonly existing: LineageRow) {
    super(
      `partition ${existing.ledgerStart}-${existing.ledgerEnd} of ${dataset} is already recorded ` +
        `(lineage id ${existing.id}, ${existing.checksum})`,
    );
  }
}

/** A compaction found the rows it would replace already replaced: nothing was changed. */
export class SupersededError extends BronzeError {}

/** The claim a partition was built under was swept: another copier may have taken it over. */
export class ClaimLostError extends BronzeError {}

export class OverlappingPartitionError extends BronzeError {
  constructor(
    readonly dataset: string,
    readonly start: number,
    readonly end: number,
    readonly existing: LineageRow[],
  ) {
    super(
      `partition ${start}-${end} of ${dataset} overlaps recorded partition` +
        `${existing.length === 1 ? "" : "s"} ` +
        existing.map((r) => `${r.ledgerStart}-${r.ledgerEnd} (lineage id ${r.id})`).join(", "),
    );
  }
}

/** The columns a LineageRow is read from (toLineage). */
export const LINEAGE_COLUMNS =
  `id, dataset_id, ledger_start, ledger_end, row_count, byte_size, checksum,
  storage_path, storage_uri, first_previous_ledger_hash, last_ledger_hash, producer_version,
  producer_git_sha, source_type, source_location, created_at, superseded_by, superseded_at`;

/** A _meta_lineage row as read with LINEAGE_COLUMNS. */
export function toLineage(r: Row): LineageRow {
  return {
    id: r.id as number,
    datasetId: r.dataset_id as number,
    ledgerStart: r.ledger_start as number,
    ledgerEnd: r.ledger_end as number,
    rowCount: r.row_count as number,
    byteSize: r.byte_size as number,
    checksum: r.checksum as string,
    storagePath: r.storage_path as string,
    storageUri: r.storage_uri as string,
    firstPreviousLedgerHash: r.first_previous_ledger_hash as string,
    lastLedgerHash: r.last_ledger_hash as string,
    producerVersion: r.producer_version as string,
    producerGitSha: r.producer_git_sha as string | null,
    sourceType: r.source_type as string | null,
    sourceLocation: r.source_location as string | null,
    createdAt: r.created_at as Date,
    supersededBy: (r.superseded_by as number | null) ?? null,
    supersededAt: (r.superseded_at as Date | null) ?? null,
  };
}
