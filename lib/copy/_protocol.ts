/** The messages between the build pool (pool.ts) and its workers (_worker.ts). */
import { BronzeError, type ErrorArea, inArea } from "../runtime/errors.ts";
import type { RetryEvents, RetryPolicy } from "../runtime/retry.ts";
import { MissingLedgerError } from "../source/source.ts";
import type { Range } from "../table/grid.ts";
import type { PartitionMeta } from "../table/schema.ts";
import type { Network } from "../source/network.ts";
import type { SourceUrl } from "../source/url.ts";
import type { Built } from "./build.ts";

export interface BuildRequest {
  id: number;
  source: SourceUrl;
  network: Network;
  range: Range;
  path: string;
  meta: PartitionMeta;
  /** Int32 flag set to 1 by the main thread on interrupt. */
  stop: SharedArrayBuffer;
  /** The run's retry policy: the worker's reads of the source retry under it. */
  retry: RetryPolicy;
}

/** A retry event of the worker's, for the main thread's monitor (metrics, bursts, health). */
export type RetryReport =
  | { kind: "retry"; event: Parameters<RetryEvents["onRetry"]>[0] }
  | { kind: "settled"; event: Parameters<RetryEvents["onSettled"]>[0] };

interface WireError {
  name: string;
  message: string;
  stack?: string;
  exitCode?: number;
  /** A MissingLedgerError's ledger. */
  ledger?: number;
  area?: ErrorArea;
}

export type WorkerReply =
  | { type: "progress"; ledgers: number; bytes: number }
  | { type: "retry"; report: RetryReport }
  | { type: "done"; id: number; built: Built | null }
  | { type: "failed"; id: number; error: WireError };

/** An error as it crosses to the main thread (structured clone keeps no class). */
export function toWire(err: unknown): WireError {
  const e = err as Error & { exitCode?: number };
  return {
    name: e?.name ?? "Error",
    message: e?.message ?? String(err),
    stack: e?.stack,
    exitCode: typeof e?.exitCode === "number" ? e.exitCode : undefined,
    ledger: err instanceof MissingLedgerError ? err.ledger : undefined,
    area: err instanceof BronzeError ? err.area : undefined,
  };
}

/** The worker's error, as the same class of error on this side (BronzeErrors reach the user). */
export function fromWire(e: WireError): Error {
  const err = e.ledger !== undefined
    ? new MissingLedgerError(e.message, e.ledger)
    : e.exitCode !== undefined
    ? new BronzeError(e.message, e.exitCode)
    : new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  if (e.area) inArea(err, e.area);
  return err;
}
