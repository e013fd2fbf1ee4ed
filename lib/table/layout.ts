/**
 * Where a dataset's partitions are stored, relative to the storage root (design.md):
 * `<network>/<era_id>/<version>/ledgers_lcm_raw/range=<start>-<end>/part-<start>-<end>.parquet`
 * and `_manifest.json` beside it.
 */
import type { Range } from "./grid.ts";
import { TABLE } from "./schema.ts";

/** What names a dataset's place in storage. */
export interface DatasetKey {
  network: string;
  eraId: string;
  version: string;
}

export function datasetPrefix(ds: DatasetKey): string {
  return `${ds.network}/${ds.eraId}/${ds.version}/${TABLE}/`;
}

export function partitionDir(ds: DatasetKey, r: Range): string {
  return `${datasetPrefix(ds)}range=${r.start}-${r.end}/`;
}

export function partitionKey(ds: DatasetKey, r: Range): string {
  return `${partitionDir(ds, r)}part-${r.start}-${r.end}.parquet`;
}

export function manifestKey(ds: DatasetKey, r: Range): string {
  return `${partitionDir(ds, r)}_manifest.json`;
}

const PART_KEY = /range=(\d+)-(\d+)\/part-(\d+)-(\d+)\.parquet$/;

/** The range of a stored partition file's key, or null for anything else. */
export function rangeOfKey(key: string): Range | null {
  const m = PART_KEY.exec(key);
  if (!m || m[1] !== m[3] || m[2] !== m[4]) return null;
  const r = { start: Number(m[1]), end: Number(m[2]) };
  return r.start >= 1 && r.end >= r.start ? r : null;
}
