/**
 * A dataset's coverage strip on the status page: consecutive bands of one state merge into one
 * segment; a band of several states is a column split in their proportions; every segment says
 * its ledgers and counts on hover, and the table under "Segments" lists them for a screen reader,
 * a phone or paper; superseded files on a track of their own; the legend with the totals. Apart
 * from render.ts because turning bands into segments is a concern of its own; like it, one
 * function the live page ships to the browser by its source (render.ts RENDERER), reading nothing
 * but its argument and the helpers of _html.ts by name.
 */
import { esc, htmlTable, ledgerRange, num, plural } from "./_html.ts";
import type { BandDoc, DatasetDoc } from "./schema.ts";

/** The strip, its legend and its table of segments, for a dataset with a grid. */
export function renderStrip(d: DatasetDoc): string {
  const STATES = ["committed", "partials", "claimed", "gap"] as const;
  type State = typeof STATES[number];
  /** What a state is called in the legend, and after a count of cells. */
  const NAMES: Record<State, string> = {
    committed: "committed",
    partials: "partials awaiting compaction",
    claimed: "claimed now",
    gap: "gaps",
  };
  const counts = (s: State, n: number): string =>
    `${num(n)} ${
      s === "partials"
        ? "in partials awaiting compaction"
        : s === "gap" && n === 1
        ? "gap"
        : NAMES[s]
    }`;

  interface Segment {
    state: State | "mixed";
    bands: BandDoc[];
    counts: Record<State, number>;
    cells: number;
    start: number;
    end: number;
    held: number;
    superseded: number;
    claimers: Map<string, number>;
    key: string;
  }

  /** Consecutive bands of one state (claimed: by the same copiers) merge into one segment. */
  const segments = (bands: BandDoc[]): Segment[] => {
    const out: Segment[] = [];
    for (const b of bands) {
      const present = STATES.filter((s) => b[s] > 0);
      const state: State | "mixed" = present.length === 1 ? present[0] : "mixed";
      const key = state === "claimed"
        ? "claimed:" + b.claimers.map((c) => c.copier_id).join(",")
        : state === "mixed"
        ? ""
        : state;
      const last = out[out.length - 1];
      const seg: Segment = last && key && last.key === key ? last : {
        state,
        bands: [],
        counts: { committed: 0, partials: 0, claimed: 0, gap: 0 },
        cells: 0,
        start: b.start,
        end: b.end,
        held: 0,
        superseded: 0,
        claimers: new Map(),
        key,
      };
      if (seg !== last) out.push(seg);
      seg.bands.push(b);
      for (const s of STATES) seg.counts[s] += b[s];
      seg.cells += b.cells;
      seg.end = b.end;
      seg.held += b.held_incomplete;
      seg.superseded += b.superseded;
      for (const c of b.claimers) {
        seg.claimers.set(c.copier_id, (seg.claimers.get(c.copier_id) ?? 0) + c.cells);
      }
    }
    return out;
  };

  const counted = (seg: Segment): string =>
    STATES.filter((s) => seg.counts[s] > 0).map((s) => {
      let t = counts(s, seg.counts[s]);
      if (s === "claimed") {
        t += ` (by ${[...seg.claimers].map(([id, n]) => `${id}: ${num(n)}`).join(", ")})`;
      }
      if (s === "gap" && seg.held > 0) t += ` (${plural(seg.held, "ledger")} of them held)`;
      return t;
    }).join(", ");

  const describe = (seg: Segment): string =>
    `ledgers ${ledgerRange(seg.start, seg.end)}, ${plural(seg.cells, "cell")}: ${counted(seg)}` +
    (seg.superseded ? `; ${plural(seg.superseded, "superseded partition")} awaiting gc` : "");

  const strip = (d: DatasetDoc, segs: Segment[]): string => {
    const t = d.totals;
    const label = `coverage of ledgers ${ledgerRange(d.grid!.start, d.grid!.end)}: ` +
      STATES.map((s) => counts(s, t[s])).join(", ");
    const parts = segs.map((seg) => {
      // A band of several states stacks them; each present state takes at least a third of its
      // height, so one gap among thousands of cells still shows (its title has the counts).
      const inner = seg.state === "mixed"
        ? STATES.filter((s) => seg.counts[s] > 0).map((s) =>
          `<i class="s-${s}" style="flex:${
            Math.max(seg.counts[s], seg.cells / 3).toFixed(2)
          } 1 0"></i>`
        ).join("")
        : "";
      return `<span class="seg s-${seg.state}" style="flex:${seg.cells} 1 0" data-state="${seg.state}" data-cells="${seg.cells}" ${
        STATES.map((s) => `data-${s}="${seg.counts[s]}"`).join(" ")
      } title="${esc(describe(seg))}">${inner}</span>`;
    }).join("");
    // Superseded files on a track of their own, band by band (runs of bands with or without
    // them merged), so a compacted cell shows where it is, not across a whole merged segment.
    const runs: { cells: number; superseded: number; start: number; end: number }[] = [];
    for (const b of d.bands) {
      const last = runs[runs.length - 1];
      if (last && (last.superseded > 0) === (b.superseded > 0)) {
        last.cells += b.cells;
        last.superseded += b.superseded;
        last.end = b.end;
      } else runs.push({ cells: b.cells, superseded: b.superseded, start: b.start, end: b.end });
    }
    const sup = t.superseded
      ? `<div class="gc-track" aria-hidden="true">${
        runs.map((r) =>
          `<span${r.superseded ? ' class="sup"' : ""} style="flex:${r.cells} 1 0"${
            r.superseded
              ? ` title="ledgers ${ledgerRange(r.start, r.end)}: ${
                esc(plural(r.superseded, "superseded partition"))
              } awaiting gc"`
              : ""
          }></span>`
        ).join("")
      }</div>`
      : "";
    return `<div class="strip" role="img" aria-label="${esc(label)}">${parts}</div>${sup}` +
      `<div class="axis" aria-hidden="true"><span>${num(d.grid!.start)}</span><span>${
        num(d.grid!.end)
      }</span></div>`;
  };

  const legend = (d: DatasetDoc): string => {
    const t = d.totals;
    const cells = d.grid!.cells;
    const items = STATES.map((s) =>
      `<li data-state="${s}"><span class="sw s-${s}" aria-hidden="true"></span>${NAMES[s]}: <b>${
        num(t[s])
      }</b>${s === "committed" && cells ? ` (${(100 * t[s] / cells).toFixed(1)}%)` : ""}</li>`
    );
    items.push(
      `<li data-state="superseded"><span class="sw sup" aria-hidden="true"></span>superseded, awaiting gc: <b>${
        num(t.superseded)
      }</b></li>`,
    );
    return `<ul class="legend">${items.join("")}</ul>`;
  };

  const segmentTable = (segs: Segment[]): string =>
    `<details class="segments"><summary>Segments (${num(segs.length)})</summary>${
      htmlTable(
        "segs",
        "Each segment of the strip",
        ["Ledgers", "Cells", "Committed", "Partials", "Claimed", "Gap", "Superseded"],
        segs.map((seg) => [
          ledgerRange(seg.start, seg.end),
          num(seg.cells),
          num(seg.counts.committed),
          num(seg.counts.partials),
          num(seg.counts.claimed) +
          (seg.claimers.size
            ? ` (${[...seg.claimers].map(([id, n]) => `${esc(id)}: ${num(n)}`).join(", ")})`
            : ""),
          num(seg.counts.gap) + (seg.held ? ` (${num(seg.held)} ledgers held)` : ""),
          num(seg.superseded),
        ]),
      )
    }</details>`;

  const segs = segments(d.bands);
  return strip(d, segs) + legend(d) + segmentTable(segs);
}
