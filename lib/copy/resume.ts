/**
 * Where a run resumes: the checkpoint, the catalog and storage, reconciled. The catalog is the
 * truth; the checkpoint is a hint (it may lag the catalog after a crash between commit and save)
 * and storage may hold partitions the catalog lacks (a crash between publish and commit), which
 * the plan adopts.
 */
import type { Logger } from "../runtime/log.ts";
import type { ObjectStore } from "../blob/mod.ts";
import {
  checkIdentity,
  type Checkpoint,
  ErrNoCheckpoint,
  type Manager,
} from "../checkpoint/checkpoint.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { islandAround, islands } from "../metadata/coverage.ts";
import type { Range } from "../table/grid.ts";
import { datasetPrefix, rangeOfKey } from "../table/layout.ts";
import type { Dataset } from "./commit.ts";

export interface ResumePoint {
  checkpoint: Checkpoint | null;
  /**
   * What the catalog holds from the run's start on, as contiguous ranges ("islands") in ledger
   * order; the first may begin before the start, the last end after the run's end.
   */
  held: Range[];
  /** The dataset's highest recorded ledger at or after the run's start (0: none). */
  highest: number;
  /** Last ledger of the catalog's contiguous coverage from the run's start (start - 1: none). */
  coverage: number;
  /** Partition files in storage inside the run's range (the catalog may lack some). */
  stored: Range[];
}

export interface ResumeDeps {
  catalog: Catalog;
  storage: ObjectStore;
  checkpoint: Manager;
  dataset: Dataset;
  copierId: string;
  log: Logger;
}

export async function findResumePoint(deps: ResumeDeps, range: Range): Promise<ResumePoint> {
  const { catalog, dataset, log } = deps;
  const cp = await loadCheckpoint(deps);
  const after = await islands(catalog, dataset.id, range.start);
  const held = after.map((i) => ({ start: i.start, end: i.end }));
  const coverage = after.length && after[0].start <= range.start ? after[0].end : range.start - 1;
  // A checkpoint may come from a run with another --start; it only contradicts the catalog when
  // the catalog holds no lineage at the ledger it names.
  if (
    cp && cp.last_committed_ledger >= range.start && cp.last_committed_ledger > coverage &&
    !(await islandAround(catalog, dataset.id, cp.last_committed_ledger))
  ) {
    log.warn(
      "resume",
      `checkpoint says ledger ${cp.last_committed_ledger} is committed, but the catalog holds no lineage at it; trusting the catalog`,
    );
  }
  return {
    checkpoint: cp,
    held,
    highest: after.at(-1)?.end ?? 0,
    coverage,
    stored: await storedRanges(deps.storage, dataset, range),
  };
}

/** The lines that tell the user where the run starts (the seed's `[resume]`/`[copier]` lines). */
export function announce(log: Logger, point: ResumePoint, range: Range, first: Range): void {
  const cp = point.checkpoint;
  // The catalog is the truth; it is only worth a line when the checkpoint does not already say it.
  if (point.coverage >= range.start && point.coverage !== cp?.last_committed_ledger) {
    const ahead = cp && point.coverage > cp.last_committed_ledger
      ? " (ahead of the checkpoint)"
      : "";
    log.info("resume", `catalog holds ${range.start}-${point.coverage}${ahead}`);
  }
  log.info(
    "copier",
    `${point.coverage >= range.start || cp ? "continuing" : "starting"} from ledger ${first.start}`,
  );
}

/**
 * The checkpoint, or null when there is none; refused when it belongs to another dataset or
 * (unless `anyCopier`: a fleet copier's id names one process, its state dir outlives it) to
 * another copier.
 */
export async function loadCheckpoint(
  deps: Pick<ResumeDeps, "checkpoint" | "dataset" | "copierId" | "log">,
  { anyCopier = false } = {},
): Promise<Checkpoint | null> {
  const { checkpoint, dataset } = deps;
  try {
    const cp = await checkpoint.load();
    checkIdentity(cp, {
      copier_id: anyCopier ? cp.copier_id : deps.copierId,
      network: dataset.network,
      era_id: dataset.eraId,
      version_label: dataset.version,
    }, checkpoint.location);
    deps.log.info("resume", `checkpoint found: last_committed=${cp.last_committed_ledger}`);
    return cp;
  } catch (err) {
    if (err instanceof ErrNoCheckpoint) return null;
    throw err;
  }
}

async function storedRanges(store: ObjectStore, dataset: Dataset, within: Range): Promise<Range[]> {
  const out: Range[] = [];
  for await (const obj of store.list(datasetPrefix(dataset))) {
    const r = rangeOfKey(obj.key);
    if (r && r.start >= within.start && r.end <= within.end) out.push(r);
  }
  return out;
}
