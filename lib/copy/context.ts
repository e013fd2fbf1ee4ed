/** The shapes a run is made of, shared by the range loop (run.ts) and the fleet's (fleet.ts). */
import type { Logger } from "../runtime/log.ts";
import type { Progress } from "../runtime/progress.ts";
import type { SettingsOf } from "../settings/mod.ts";
import type { ObjectStore } from "../blob/mod.ts";
import type { Manager } from "../checkpoint/checkpoint.ts";
import type { Catalog } from "../metadata/catalog.ts";
import type { ClaimSession } from "../metadata/claims.ts";
import type { CatalogWriter } from "../metadata/writer.ts";
import type { LedgerSource } from "../source/source.ts";
import type { Range } from "../table/grid.ts";
import type { Committer, Dataset } from "./commit.ts";
import type { BuildPool } from "./pool.ts";
import type { CopyStats } from "./stats.ts";
import type { CopierMetrics } from "../metrics/mod.ts";
import type { Placement } from "./placement.ts";
import type { Retrier } from "../runtime/retry.ts";

export type { CopyStats };

/**
 * What a copy reads: the copy command's settings but its log format (the caller's logger) and
 * the status page's refresh (the command serves the page).
 */
export type CopyOptions = Omit<SettingsOf<"copy">, "logFormat" | "statusRefresh"> & {
  /**
   * The retry policy and listener of every store and source call (the command's, which logs
   * bursts and feeds the metrics); default: --retry-for over the defaults, told to nobody.
   */
  retry?: Retrier;
};

/** A run's options once its dataset's storage and grid are settled (placement.ts). */
export type PlacedCopyOptions = CopyOptions & Placement;

export interface CopyResult {
  /** Ranges committed by this run (adopted ones included), in order. */
  committed: Range[];
  adopted: Range[];
  /** The run stopped early on a signal, after committing the partition in hand. */
  interrupted: boolean;
  stats: CopyStats;
}

/** What a run opens, closed in reverse order by the run's AsyncDisposableStack. */
export interface Deps {
  source: LedgerSource;
  storage: ObjectStore;
  checkpoint: Manager;
  catalog: Catalog;
  writer: CatalogWriter;
  pool: BuildPool;
  progress: Progress;
  /** Partition files are built here before they are published. */
  tmpDir: string;
  /** The retry policy and listener every store and source call of the run goes through. */
  retry: Retrier;
}

/** What a run has once it starts building: shared with the fleet's loop (fleet.ts). */
/**
 * Told of the run's catalog while it is open: the status page (lib/status/board.ts) reads through
 * it, and stops before it closes.
 */
export interface CatalogWatcher {
  opened(catalog: Catalog): void;
  closing(): void;
}

export interface RunContext {
  opts: PlacedCopyOptions;
  deps: Deps;
  dataset: Dataset;
  committer: Committer;
  claims: ClaimSession;
  log: Logger;
  /** Prometheus counters and the health state, when the copy serves them (--metrics-addr). */
  metrics?: CopierMetrics;
}
