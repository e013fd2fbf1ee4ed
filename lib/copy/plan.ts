/**
 * The pure planner of a run: which ranges to build, given what the catalog holds and what storage
 * holds. No I/O here, so every property (each missing ledger planned exactly once, every range
 * inside one grid cell) is tested directly.
 */
import { cellOf, gaps, type Range } from "../table/grid.ts";

/**
 * The work of a run: every missing range of `within`, cut at grid boundaries, in ledger order.
 * `stored` partitions (in storage but not in the catalog, e.g. published just before a crash) are
 * taken as they are, so they get adopted rather than left behind unrecorded.
 */
export function planWork(
  within: Range,
  size: number,
  held: readonly Range[],
  stored: readonly Range[] = [],
): Range[] {
  const work: Range[] = [];
  // An orphan is adopted only if the catalog holds none of it and it lies inside the run.
  const orphans = stored.filter((s) => {
    if (s.start < within.start || s.end > within.end) return false;
    const missing = gaps(s, held);
    return missing.length === 1 && missing[0].start === s.start && missing[0].end === s.end;
  }).sort((a, b) => a.start - b.start);
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

/** Inserts `r` into `held`, keeping it sorted by start. */
export function insertHeld(held: Range[], r: Range): void {
  let i = held.findIndex((h) => h.start > r.start);
  if (i === -1) i = held.length;
  held.splice(i, 0, r);
}

/**
 * The last ledger of the contiguous run of held ranges that includes `ledger`. Every work item
 * before this one is committed (commits are in order), so this never overstates what the catalog
 * holds from the run's start.
 */
export function coveredThrough(held: readonly Range[], ledger: number): number {
  let last = ledger;
  for (const h of held) {
    if (h.start <= last + 1 && h.end > last) last = h.end;
  }
  return last;
}
