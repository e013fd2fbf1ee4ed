/**
 * The pure middle of `catalog rebuild`: one dataset's sound partitions against the lineage rows its
 * catalog holds, sorted into what to add, what is present, what conflicts and what a compaction
 * replaced. No I/O: the same inputs give the same plan.
 */
import type { LineageRow } from "../metadata/writer.ts";
import type { Range } from "../table/grid.ts";
import { type PartitionNote, partitionNote, type Sound } from "./rebuild_check.ts";

export interface Classified {
  /** To record, in ledger order. */
  add: Sound[];
  /** Already recorded with the same checksum. */
  present: number;
  conflicts: PartitionNote[];
  /** Partials inside a full partition that replaced them: not recorded. */
  compacted: PartitionNote[];
}

/**
 * Each sound partition against the catalog's rows (ledger order, never overlapping): the same
 * range with the same checksum is present; one inside a larger recorded row that is stored too is
 * a compacted partial (the row replaced it); any other overlap is a conflict. Of the rest, a run
 * that overlaps each other is a compaction's leftovers when one partition spans the whole run (it
 * is added, the partials inside it are not); otherwise all of the run are conflicts (the catalog
 * held at most one of them, and which is not knowable). The others are added, in ledger order.
 */
export function classify(sound: readonly Sound[], held: readonly LineageRow[]): Classified {
  const conflicts: PartitionNote[] = [];
  const compacted: PartitionNote[] = [];
  const note = (s: Sound, what: string) =>
    partitionNote(s.ds, { start: s.row.ledgerStart, end: s.row.ledgerEnd }, s.uri, what);
  const conflict = (s: Sound, what: string) => conflicts.push(note(s, what));
  const covered = (s: Sound, by: Range) =>
    compacted.push(
      note(s, `inside ${by.start}-${by.end}, the full partition a compaction replaced it with`),
    );
  const stored = (r: LineageRow) =>
    sound.some((o) =>
      o.row.ledgerStart === r.ledgerStart && o.row.ledgerEnd === r.ledgerEnd &&
      o.row.checksum === r.checksum
    );
  let present = 0;
  const fresh: Sound[] = [];
  for (const s of [...sound].sort((a, b) => a.row.ledgerStart - b.row.ledgerStart)) {
    const { ledgerStart: start, ledgerEnd: end, checksum } = s.row;
    const over = overlapping(held, start, end);
    const only = over.length === 1 ? over[0] : null;
    if (over.length === 0) fresh.push(s);
    else if (only && only.ledgerStart === start && only.ledgerEnd === end) {
      if (only.checksum === checksum) present++;
      else {
        conflict(
          s,
          `the catalog records this range with ${only.checksum} (lineage id ${only.id}), ` +
            `the stored file and its manifest are ${checksum}`,
        );
      }
    } else if (only && only.ledgerStart <= start && end <= only.ledgerEnd && stored(only)) {
      covered(s, { start: only.ledgerStart, end: only.ledgerEnd });
    } else {
      conflict(
        s,
        `overlaps recorded partition${over.length === 1 ? "" : "s"} ` +
          over.map((r) => `${r.ledgerStart}-${r.ledgerEnd} (lineage id ${r.id})`).join(", "),
      );
    }
  }
  const add: Sound[] = [];
  for (let i = 0; i < fresh.length;) {
    // A run of partitions each overlapping the run so far.
    let j = i + 1;
    let end = fresh[i].row.ledgerEnd;
    while (j < fresh.length && fresh[j].row.ledgerStart <= end) {
      end = Math.max(end, fresh[j].row.ledgerEnd);
      j++;
    }
    const run = fresh.slice(i, j);
    const start = fresh[i].row.ledgerStart;
    const spanning = run.find((s) => s.row.ledgerStart === start && s.row.ledgerEnd === end);
    if (run.length === 1) add.push(run[0]);
    else if (spanning) {
      add.push(spanning);
      for (const s of run) if (s !== spanning) covered(s, { start, end });
    } else {
      for (const s of run) {
        conflict(
          s,
          `overlaps ${
            run.filter((o) =>
              o !== s && o.row.ledgerStart <= s.row.ledgerEnd &&
              s.row.ledgerStart <= o.row.ledgerEnd
            ).map((o) => `${o.row.ledgerStart}-${o.row.ledgerEnd}`).join(", ")
          }, also in storage with a manifest: the catalog can hold only one, and which is not known`,
        );
      }
    }
    i = j;
  }
  conflicts.sort(byRange);
  compacted.sort(byRange);
  return { add, present, conflicts, compacted };
}

/** The rows of `held` (sorted, disjoint) sharing a ledger with [start, end]. */
function overlapping(held: readonly LineageRow[], start: number, end: number): LineageRow[] {
  let lo = 0, hi = held.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (held[mid].ledgerEnd < start) lo = mid + 1;
    else hi = mid;
  }
  const out: LineageRow[] = [];
  for (let i = lo; i < held.length && held[i].ledgerStart <= end; i++) out.push(held[i]);
  return out;
}

/** Ledger order, the shorter first when two start together. */
export function byRange(a: Range, b: Range): number {
  return a.start - b.start || a.end - b.end;
}
