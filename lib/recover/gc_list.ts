/**
 * gc's listing (gc.ts): a dataset's objects that may be garbage, each with why and the lineage
 * that would keep it; the catalog is read without a lock here (the sweep, gc_sweep.ts, looks again
 * under it before deleting anything).
 */
import { type ObjectInfo, type ObjectStore, objectUrl } from "../blob/mod.ts";
import type { Catalog } from "../metadata/catalog.ts";
import type { DatasetRef } from "../metadata/coverage.ts";
import { type Reference, referencedRanges, supersededRanges } from "../metadata/gc.ts";
import type { Range } from "../table/grid.ts";
import { datasetPrefix, manifestKey, partitionKey } from "../table/layout.ts";

/** Stored partitions checked against lineage per catalog round trip in the first pass. */
const FIRST_PASS = 1000;

/** What an object is to gc. */
export type GcWhat = "temp" | "orphan" | "manifest" | "retired" | "superseded";

/**
 * "delete": a dry run would delete it; "deleted", "kept" (for `reason`) and "failed" (`reason`
 * says why) with `apply`.
 */
export type GcOutcome = "delete" | "deleted" | "kept" | "failed";

export interface GcObject {
  what: GcWhat;
  dataset: string;
  key: string;
  /** The object's URL, for people. */
  url: string;
  size: number;
  modified: Date;
  /** Seconds since `modified`, on this machine's clock. */
  age: number;
  /** Why it is garbage. */
  why: string;
  outcome: GcOutcome;
  /** Why it was kept, or how deleting it failed. */
  reason: string | null;
}

/** A listed object that may be garbage: what it is, and the lineage it would have. */
export interface Candidate {
  object: GcObject;
  info: ObjectInfo;
  /** The partition it belongs to (null: none recognised). */
  range: Range | null;
  /** The reference to look for (null: lineage does not matter, e.g. retired or temp). */
  ref: Reference | null;
}

/**
 * The dataset's objects that may be garbage: its temp files, and either every object under its
 * prefix (`retired`: why) or the partitions (file and manifest) no current lineage row records
 * (a superseded one ages from its compaction).
 */
export async function listCandidates(
  store: ObjectStore,
  ds: DatasetRef,
  retired: string | null,
  catalog: Catalog,
  now: Date,
  catalogTime: Date,
  /** Told of each entry that leads out of the storage root (a symbolic link): left alone. */
  skipped: (key: string, why: string) => void,
): Promise<Candidate[]> {
  const prefix = datasetPrefix(ds);
  const out: Candidate[] = [];
  const candidate = (
    info: ObjectInfo,
    what: GcWhat,
    why: string,
    range: Range | null,
    ref: Reference | null,
  ): Candidate => ({
    info,
    range,
    ref,
    object: {
      what,
      dataset: ds.label,
      key: info.key,
      url: objectUrl(store, info.key),
      size: info.size,
      modified: info.modified,
      age: Math.max(0, (now.getTime() - info.modified.getTime()) / 1000),
      why,
      outcome: "kept",
      reason: null,
    },
  });
  if (store.listTemp) {
    for await (const info of store.listTemp(prefix, { skipped })) {
      out.push(candidate(info, "temp", "temp file of a write that never finished", null, null));
    }
  }
  let batch: { info: ObjectInfo; part: Part }[] = [];
  const firstPass = async () => {
    const ranges = batch.map((b) => b.part.range);
    const referenced = await referencedRanges(catalog, ds.id, ranges);
    const superseded = await supersededRanges(catalog, ds.id, ranges);
    for (const { info, part } of batch) {
      const id = `${part.range.start}-${part.range.end}`;
      if (referenced.has(id)) continue;
      const by = superseded.get(id);
      if (by) {
        // Compacted away: its grace period runs from when it was superseded (on the catalog's
        // clock, which stamped it), not from the file.
        const c = candidate(
          info,
          "superseded",
          `superseded by lineage row ${by.by} (a compaction) at ${by.at.toISOString()}`,
          part.range,
          { ...part.range, path: partitionKey(ds, part.range) },
        );
        c.object.age = Math.max(0, (catalogTime.getTime() - by.at.getTime()) / 1000);
        out.push(c);
        continue;
      }
      out.push(candidate(
        info,
        part.manifest ? "manifest" : "orphan",
        part.manifest
          ? "manifest of a partition no lineage row records"
          : "no lineage row records it (a copy that died before its catalog commit)",
        part.range,
        { ...part.range, path: partitionKey(ds, part.range) },
      ));
    }
    batch = [];
  };
  for await (const info of store.list(prefix, { skipped })) {
    const part = partOf(ds, info.key);
    if (retired !== null) {
      out.push(candidate(info, "retired", retired, part?.range ?? null, null));
      continue;
    }
    if (!part) continue; // not gc's to judge
    batch.push({ info, part });
    if (batch.length >= FIRST_PASS) await firstPass();
  }
  if (batch.length) await firstPass();
  return out.sort((a, b) => a.object.key < b.object.key ? -1 : a.object.key > b.object.key ? 1 : 0);
}

interface Part {
  range: Range;
  manifest: boolean;
}

/** A partition's Parquet file or manifest under the dataset's prefix, exactly as the copier names them. */
function partOf(ds: DatasetRef, key: string): Part | null {
  const m = /^range=(\d+)-(\d+)\/[^/]+$/.exec(key.slice(datasetPrefix(ds).length));
  if (!m || !key.startsWith(datasetPrefix(ds))) return null;
  const range = { start: Number(m[1]), end: Number(m[2]) };
  if (key === partitionKey(ds, range)) return { range, manifest: false };
  if (key === manifestKey(ds, range)) return { range, manifest: true };
  return null;
}
