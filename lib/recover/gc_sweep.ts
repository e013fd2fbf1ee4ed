/**
 * gc's sweep (gc.ts says why it is safe): the dry run's verdicts from what the catalog says now,
 * and the deletions, in bounded batches each under the dataset's sweep lock.
 */
import { type ObjectStore, PreconditionFailedError } from "../blob/mod.ts";
import { BronzeError } from "../runtime/errors.ts";
import { RetryExhaustedError } from "../runtime/retry.ts";
import type { Catalog } from "../metadata/catalog.ts";
import type { DatasetRef } from "../metadata/coverage.ts";
import { lookWithoutLock, type StandingClaim, withSweepLock } from "../metadata/gc.ts";
import type { Candidate, GcObject } from "./gc_list.ts";

/** The most objects deleted under one hold of a dataset's sweep lock. */
export const BATCH_OBJECTS = 64;
/** ...and the longest that hold lasts, deletes included (a claimer waits at most this). */
export const BATCH_SECONDS = 2;

/** Told of each deletion as it happens. */
export type OnDeleted = (o: GcObject) => void;

/** The dry run's verdicts: what the catalog says now, without a lock and without writing. */
export async function judgeDryRun(
  catalog: Catalog,
  ds: DatasetRef,
  due: Candidate[],
  graceSeconds: number,
): Promise<void> {
  if (!due.length) return;
  const refs = due.filter((c) => c.ref).map((c) => c.ref!);
  const seen = await lookWithoutLock(catalog, ds.id, refs, graceSeconds);
  let i = 0;
  for (const c of due) {
    const lineageId = c.ref ? seen.lineage[i++] : null;
    const why = keptBecause(c, lineageId, seen.claims);
    if (why) keep(c, why);
    else c.object.outcome = "delete";
  }
}

/** Deletes `due` in batches, each in one transaction holding the dataset's sweep lock. */
export async function deleteUnderLock(
  catalog: Catalog,
  store: ObjectStore,
  ds: DatasetRef,
  due: Candidate[],
  onDeleted: OnDeleted | undefined,
  graceSeconds: number,
): Promise<void> {
  const queue = [...due];
  while (queue.length) {
    await withSweepLock(catalog, ds, async (locked) => {
      const batch = queue.splice(0, BATCH_OBJECTS);
      const started = performance.now();
      const claims = await locked.claims();
      const refs = batch.filter((c) => c.ref).map((c) => c.ref!);
      const lineage = await locked.lineage(refs, graceSeconds);
      let i = 0;
      const ids = batch.map((c) => c.ref ? lineage[i++] : null);
      for (let k = 0; k < batch.length; k++) {
        if ((performance.now() - started) / 1000 >= BATCH_SECONDS) {
          queue.unshift(...batch.slice(k)); // the rest in the next batch, under a fresh look
          return;
        }
        const c = batch[k];
        const why = keptBecause(c, ids[k], claims);
        if (why) {
          keep(c, why);
          continue;
        }
        await locked.stillLocked();
        await remove(store, c, onDeleted);
        // A compacted partition's Parquet file gone: the catalog notes it (its manifest is not
        // what a reader reads).
        if (
          c.object.what === "superseded" && c.object.outcome === "deleted" && c.range &&
          c.info.key === c.ref?.path
        ) await locked.deletedSuperseded(c.range);
      }
    });
  }
}

/** Why `c` must stay: lineage records it, or a standing claim covers its range (null: neither). */
function keptBecause(
  c: Candidate,
  lineageId: number | null,
  claims: StandingClaim[],
): string | null {
  if (lineageId !== null) return `recorded by lineage row ${lineageId}`;
  if (c.range) {
    const r = c.range;
    const claim = claims.find((h) => h.start <= r.end && h.end >= r.start);
    if (claim) {
      return `inside the claim of copier ${claim.copierId} (host ${claim.host}, pid ${claim.pid}) ` +
        `on ${claim.start}-${claim.end}: it may adopt it`;
    }
  }
  return null;
}

/** Deletes one object at the version listed; one rewritten since is kept. */
export async function remove(
  store: ObjectStore,
  c: Candidate,
  onDeleted: OnDeleted | undefined,
): Promise<void> {
  try {
    await store.delete(c.info.key, c.info.version);
    c.object.outcome = "deleted";
    onDeleted?.(c.object);
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      keep(c, "changed since it was listed");
    } else if (err instanceof RetryExhaustedError) {
      throw err; // the store stayed down past --retry-for: the run stops, exit 75
    } else {
      // A store's own error (the file store passes the OS's through): this object failed; the
      // others are still tried, and the command exits 1.
      c.object.outcome = "failed";
      c.object.reason = err instanceof BronzeError
        ? err.message
        : `${(err as Error)?.name ?? "Error"}: ${(err as Error)?.message ?? err}`;
    }
  }
}

export function keep(c: Candidate, reason: string): void {
  c.object.outcome = "kept";
  c.object.reason = reason;
}
