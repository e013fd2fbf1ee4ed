/**
 * The partition grid and storage layout of design.md. Cell k holds ledgers k*S+1 .. (k+1)*S; a
 * run copies, inside [start, end], exactly the ledgers the catalog does not hold yet, cut on the
 * grid, so partial partitions (first, last, flushed on interrupt) are completed by later runs.
 */

export interface Range {
  start: number;
  end: number;
}

export interface DatasetKey {
  network: string;
  eraId: string;
  version: string;
}

export const TABLE = "ledgers_lcm_raw";

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

/** The grid cell holding `ledger`. */
export function cellOf(ledger: number, size: number): Range {
  const k = Math.floor((ledger - 1) / size);
  return { start: k * size + 1, end: (k + 1) * size };
}

/** Sub-ranges of `within` not covered by `held` (sorted, non-overlapping). */
export function gaps(within: Range, held: readonly Range[]): Range[] {
  const out: Range[] = [];
  let next = within.start;
  for (const h of held) {
    if (h.end < next) continue;
    if (h.start > within.end) break;
    if (h.start > next) out.push({ start: next, end: Math.min(h.start - 1, within.end) });
    next = Math.max(next, h.end + 1);
    if (next > within.end) break;
  }
  if (next <= within.end) out.push({ start: next, end: within.end });
  return out;
}

/**
 * The work of a run: every missing range of [start, end], cut at grid boundaries, in ledger
 * order. `stored` partitions (in storage but not in the catalog, e.g. published just before a
 * crash) are taken as they are, so they get adopted rather than left behind unrecorded.
 */
export function planWork(
  within: Range,
  size: number,
  held: readonly Range[],
  stored: readonly Range[] = [],
): Range[] {
  const work: Range[] = [];
  const orphans = stored.filter((s) =>
    s.start >= within.start && s.end <= within.end && gaps(s, held).length === 1 &&
    gaps(s, held)[0].start === s.start && gaps(s, held)[0].end === s.end
  ).sort((a, b) => a.start - b.start);
  // Orphans that overlap each other cannot both be adopted; keep the first of each overlap.
  const adopt: Range[] = [];
  for (const o of orphans) {
    if (!adopt.length || adopt[adopt.length - 1].end < o.start) adopt.push(o);
  }
  const taken = [...held, ...adopt].sort((a, b) => a.start - b.start);
  for (const g of gaps(within, taken)) {
    for (let s = g.start; s <= g.end;) {
      const e = Math.min(cellOf(s, size).end, g.end);
      work.push({ start: s, end: e });
      s = e + 1;
    }
  }
  return [...work, ...adopt].sort((a, b) => a.start - b.start);
}
