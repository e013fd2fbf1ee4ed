/**
 * A partition's commit-time quality metrics and hash-chain ends, counted ledger by ledger. The copy
 * counts them as it writes a partition (lib/copy/build.ts); a catalog rebuild counts them from the
 * file's rows when an older manifest lacks them (lib/recover/rebuild_check.ts). One counter, so a
 * rebuilt catalog's quality rows are the copy's.
 */
import { open } from "node:fs/promises";
import type { LedgerRow } from "../source/ledger.ts";
import type { Range } from "./grid.ts";
import { fileBuffer, parquetMetadataAsync, rowGroups } from "./reader.ts";
import { schemaHashOf } from "./schema.ts";

/** What the counter reads of a ledger (a LedgerRow is one; a stored row maps onto one). */
export type LedgerFacts = Pick<
  LedgerRow,
  | "ledgerSequence"
  | "ledgerHash"
  | "previousLedgerHash"
  | "closeTimeMs"
  | "txCount"
  | "operationCount"
  | "xdrByteLength"
>;

/** What links a partition to its neighbours: the lineage row's hash-chain columns. */
export interface HashChainEnds {
  /** previous_ledger_hash of the first ledger: links the partition to the one before. */
  firstPreviousLedgerHash: string;
  /** ledger_hash of the last ledger. */
  lastLedgerHash: string;
}

export class PartitionTally {
  /** Ledgers counted. */
  rows = 0;
  /** Sequence of the first and of the last ledger counted (0 before any). */
  first = 0;
  last = 0;
  /** Ledgers whose sequence does not follow the one before. */
  gaps = 0;
  /** Ledgers whose previous_ledger_hash is not the ledger_hash of the one before. */
  chainBreaks = 0;
  #firstPrevious = "";
  #lastHash = "";
  #firstCloseMs = 0;
  #lastCloseMs = 0;
  #minCloseMs = Infinity;
  #maxCloseMs = -Infinity;
  #txs = 0;
  #ops = 0;
  #xdrBytes = 0;

  /** Counts the next ledger of the partition (ledger order). */
  add(r: LedgerFacts): void {
    if (this.rows === 0) {
      this.first = r.ledgerSequence;
      this.#firstPrevious = r.previousLedgerHash;
      this.#firstCloseMs = r.closeTimeMs;
    } else {
      if (r.ledgerSequence !== this.last + 1) this.gaps++;
      if (r.previousLedgerHash !== this.#lastHash) this.chainBreaks++;
    }
    this.rows++;
    this.last = r.ledgerSequence;
    this.#lastHash = r.ledgerHash;
    this.#lastCloseMs = r.closeTimeMs;
    this.#minCloseMs = Math.min(this.#minCloseMs, r.closeTimeMs);
    this.#maxCloseMs = Math.max(this.#maxCloseMs, r.closeTimeMs);
    this.#txs += r.txCount;
    this.#ops += r.operationCount;
    this.#xdrBytes += r.xdrByteLength;
  }

  get chain(): HashChainEnds {
    return { firstPreviousLedgerHash: this.#firstPrevious, lastLedgerHash: this.#lastHash };
  }

  /** Why the ledgers counted are not exactly those of `r`, or null when they are. */
  rangeProblem(r: Range): string | null {
    if (this.rows === 0) return `file holds no rows, its range is ${r.start}-${r.end}`;
    if (
      this.first !== r.start || this.last !== r.end || this.gaps > 0 ||
      this.rows !== r.end - r.start + 1
    ) {
      return `file holds ${this.rows} rows, ledgers ${this.first}-${this.last}${
        this.gaps ? ` with ${this.gaps} break(s) in sequence` : ""
      }, not the ledgers ${r.start}-${r.end} of its range`;
    }
    return null;
  }

  /** The quality rows recorded with the partition of `range` (its manifest's `quality`). */
  quality(range: Range): Record<string, number> {
    return {
      row_count: this.rows,
      row_count_matches_range: this.rangeProblem(range) === null ? 1 : 0,
      chain_intact: this.chainBreaks === 0 ? 1 : 0,
      first_close_time_ms: this.#firstCloseMs,
      last_close_time_ms: this.#lastCloseMs,
      // The file's close_time statistics: its DuckLake file's min/max (readers skip files by
      // them), kept in the manifest with the rest so `catalog rebuild` records them again.
      close_time_min_ms: this.#minCloseMs,
      close_time_max_ms: this.#maxCloseMs,
      tx_count: this.#txs,
      operation_count: this.#ops,
      xdr_bytes: this.#xdrBytes,
    };
  }
}

/** What a partition file's schema and rows say (for a manifest that does not). */
export interface FileTally {
  schemaHash: string;
  tally: PartitionTally;
}

const TALLY_COLUMNS = [
  "ledger_sequence",
  "ledger_hash",
  "previous_ledger_hash",
  "close_time",
  "tx_count",
  "operation_count",
  "xdr_byte_length",
] as const;

/** Counts a local partition file's rows, one row group at a time, and hashes its schema. */
export async function tallyFile(path: string): Promise<FileTally> {
  const fh = await open(path, "r");
  try {
    const file = await fileBuffer(fh);
    const metadata = await parquetMetadataAsync(file);
    const tally = new PartitionTally();
    for await (const group of rowGroups(file, metadata, TALLY_COLUMNS)) {
      for (const r of group) {
        tally.add({
          ledgerSequence: Number(r.ledger_sequence),
          ledgerHash: r.ledger_hash,
          previousLedgerHash: r.previous_ledger_hash,
          closeTimeMs: r.close_time.getTime(),
          txCount: r.tx_count,
          operationCount: r.operation_count,
          xdrByteLength: r.xdr_byte_length,
        });
      }
    }
    return { schemaHash: schemaHashOf(metadata.schema.slice(1)), tally };
  } finally {
    await fh.close();
  }
}
