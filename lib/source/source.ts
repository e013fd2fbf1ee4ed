/**
 * What a copy reads ledgers from: a Galexie data lake (lake.ts) or, for recent ledgers, a Stellar
 * RPC node. Both yield each ledger's exact LedgerCloseMeta XDR in sequence; the same ledgers from
 * either give the same Parquet bytes.
 */
import { BronzeError } from "../runtime/errors.ts";
import type { Network } from "./network.ts";

/**
 * A ledger the source does not hold (yet): a lake still being written, a gap in it. A follower
 * waits for one below the source's head; anywhere else it ends the run like any error.
 */
export class MissingLedgerError extends BronzeError {
  constructor(message: string, readonly ledger: number) {
    super(message);
  }
}

export interface RawLedger {
  sequence: number;
  /** Printable location the ledger came from (object URL, or endpoint and ledger). */
  key: string;
  /** The exact LedgerCloseMeta XDR (may be a view into a larger buffer). */
  xdr: Uint8Array;
}

export interface StreamOptions {
  /** Objects or pages fetched ahead of the consumer. */
  prefetch?: number;
  signal?: AbortSignal;
}

/** Lineage `source_type`: history from a lake, or recent ledgers from a live RPC node. */
export type SourceType = "archive" | "live";

export interface LedgerSource {
  /** Printable URL, without credentials. */
  readonly url: string;
  readonly network: Network;
  readonly type: SourceType;
  /** Ledgers `start..end` (inclusive), strictly in sequence; a missing one is an error. */
  stream(start: number, end: number, opts?: StreamOptions): AsyncIterable<RawLedger>;
  /** The newest ledger the source holds now. */
  head(): Promise<number>;
  /**
   * A streamed ledger's bytes are no longer needed (written to the file): the source may reuse
   * their memory. Optional; after it, the ledger's `xdr` must not be read.
   */
  release?(xdr: Uint8Array): void;
  close?(): Promise<void>;
}
