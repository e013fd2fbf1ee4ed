/**
 * The status page's body, from a status document: ONE function, `renderStatus`, that runs on the
 * server (the page as first sent, and `bronze status --html`) and, shipped as its own source text
 * (page.ts), in the browser at each refresh. So it reads nothing but its argument and the two
 * formatters of lib/runtime/format.ts, which the page ships beside it by name; everything else it
 * needs is defined inside it.
 *
 * What a person sees: per dataset, the coverage strip (consecutive bands of one state merge into
 * one segment; a band of several states is a column split in their proportions; every segment
 * says its ledgers and counts on hover, and the table under "Segments" lists them for a screen
 * reader, a phone or paper), its legend with totals, the copiers with their pace, the fleets with
 * their ETA, the followers with their lag, and the copiers that died; on a copier's own page,
 * that copier's health, head, lag, errors by area and latest problems first.
 */
import type { BandDoc, DatasetDoc, StatusDoc } from "./schema.ts";
import { formatBytes, formatDuration, formatSpan } from "../runtime/format.ts";

export function renderStatus(doc: StatusDoc): string {
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
  const now = Date.parse(doc.generated_at);

  const esc = (v: unknown): string => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const num = (v: number | null | undefined): string =>
    v === null || v === undefined
      ? "–"
      : String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const plural = (n: number, one: string, many = one + "s") => `${num(n)} ${n === 1 ? one : many}`;
  const range = (s: number, e: number) => s === e ? num(s) : `${num(s)}–${num(e)}`;
  const time = (iso: string | null): string => {
    if (!iso) return "–";
    const shown = iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
    return `<time datetime="${esc(iso)}">${esc(shown)}</time>`;
  };
  const ago = (iso: string | null): string => {
    if (!iso) return "never";
    const s = Math.max(0, (now - Date.parse(iso)) / 1000);
    return `<time datetime="${esc(iso)}" title="${esc(iso)}">${esc(formatSpan(s))} ago</time>`;
  };
  const perSecond = (v: number | null, unit: "ledgers" | "bytes"): string =>
    v === null
      ? "–"
      : unit === "bytes"
      ? `${formatBytes(Math.round(v))}/s`
      : v >= 10
      ? num(v)
      : v.toFixed(1);
  const who = (c: { copier_id: string; host: string | null; pid: number | null }) =>
    `<code>${esc(c.copier_id)}</code>`;
  const where = (c: { host: string | null; pid: number | null }) =>
    `${esc(c.host ?? "?")} / ${c.pid ?? "?"}`;
  const ranges = (rs: { start: number; end: number }[], max = 4) =>
    rs.length === 0 ? "–" : rs.slice(0, max).map((r) => range(r.start, r.end)).join(", ") +
      (rs.length > max ? ` and ${rs.length - max} more` : "");
  /** A fleet copier's cells: the one, or how many from where (all of them on hover). */
  const cellsHeld = (cells: number, held: { start: number; end: number }[]) =>
    cells === 1
      ? `1 cell: ${range(held[0].start, held[0].end)}`
      : `<span title="${esc(ranges(held, held.length))}">${plural(cells, "cell")} from ${
        num(held[0]?.start)
      }</span>`;
  const liveness = (live: boolean | null) =>
    live === null ? ' <span class="note">(liveness unknown on a standby)</span>' : "";
  const table = (cls: string, caption: string, head: string[], rows: string[][]) =>
    `<div class="scroll"><table class="${cls}"><caption>${caption}</caption><thead><tr>${
      head.map((h) => `<th scope="col">${h}</th>`).join("")
    }</tr></thead><tbody>${
      rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")
    }</tbody></table></div>`;
  const badge = (h: { state: string; message: string } | null) => {
    if (!h) return "–";
    const mark = h.state === "ok" ? "✓" : h.state === "degraded" ? "!" : "✗";
    return `<span class="badge h-${esc(h.state)}"><span aria-hidden="true">${mark}</span> ${
      esc(h.state.toUpperCase())
    }</span> <span class="msg">${esc(h.message)}</span>`;
  };

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
    `ledgers ${range(seg.start, seg.end)}, ${plural(seg.cells, "cell")}: ${counted(seg)}` +
    (seg.superseded ? `; ${plural(seg.superseded, "superseded partition")} awaiting gc` : "");

  const strip = (d: DatasetDoc, segs: Segment[]): string => {
    const t = d.totals;
    const label = `coverage of ledgers ${range(d.grid!.start, d.grid!.end)}: ` +
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
              ? ` title="ledgers ${range(r.start, r.end)}: ${
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
      table(
        "segs",
        "Each segment of the strip",
        ["Ledgers", "Cells", "Committed", "Partials", "Claimed", "Gap", "Superseded"],
        segs.map((seg) => [
          range(seg.start, seg.end),
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

  const dataset = (d: DatasetDoc): string => {
    const t = d.totals;
    const head = `<h2 id="ds-${d.id}">${esc(d.label)}${
      d.retired ? ` <span class="badge retired">RETIRED</span>` : ""
    }</h2>`;
    const out = [head];
    if (d.retired) {
      out.push(`<p class="note">Retired ${time(d.retired.at)}: ${esc(d.retired.reason ?? "")}</p>`);
    }
    if (!d.grid) {
      out.push(`<p>Nothing recorded or claimed yet.</p>`);
    } else {
      const g = d.grid;
      out.push(
        `<p class="summary">Ledgers ${range(g.start, g.end)} in ${plural(g.cells, "cell")} of ${
          num(g.partition_size)
        } · ${plural(t.partitions, "partition")}, ${num(t.ledgers_held)} ledgers, ${
          formatBytes(t.bytes)
        } · last commit ${ago(t.last_commit_at)}</p>`,
      );
      const segs = segments(d.bands);
      out.push(strip(d, segs), legend(d), segmentTable(segs));
    }
    for (const f of d.fleets) {
      out.push(
        `<p class="fleet">Fleet on ${range(f.start, f.end)} in ${plural(f.cells, "cell")} of ${
          num(f.partition_size)
        }: ${num(f.ledgers_left)} ledgers left; ${
          f.ledgers_per_second === null
            ? `no commits in the last ${esc(formatDuration(doc.pace_window_seconds))}`
            : `pace ${perSecond(f.ledgers_per_second, "ledgers")} ledgers/s, ${
              perSecond(f.bytes_per_second, "bytes")
            }; ETA ${f.eta_seconds === null ? "–" : esc(formatDuration(f.eta_seconds))}`
        }</p>`,
      );
    }
    out.push(
      d.copiers.length
        ? table(
          "copiers",
          `Copiers (pace over the last ${esc(formatDuration(doc.pace_window_seconds))})`,
          ["Copier", "Host / PID", "Role", "Holds", "Since", "Ledgers/s", "Bytes/s", "Last commit"],
          d.copiers.map((c) => [
            who(c) + liveness(c.live),
            where(c),
            c.role,
            c.live === false
              ? "nothing now"
              : c.role === "fleet"
              ? cellsHeld(c.cells_held, c.held)
              : c.role === "follower"
              ? `${num(c.held[0]?.start)} onwards`
              : ranges(c.held),
            ago(c.since),
            perSecond(c.ledgers_per_second, "ledgers"),
            perSecond(c.bytes_per_second, "bytes"),
            ago(c.last_commit_at),
          ]),
        )
        : `<p class="note">No copier is working on it now.</p>`,
    );
    if (d.followers.length) {
      out.push(table(
        "followers",
        "Followers",
        ["Follower", "Source head", "Last committed", "Lag", "Last flush", "Health"],
        d.followers.map((f) => [
          who(f) + liveness(f.live),
          f.source_head === null
            ? '<span class="note">known on its own page</span>'
            : num(f.source_head),
          num(f.last_committed_ledger),
          [
            f.lag_ledgers === null ? null : plural(f.lag_ledgers, "ledger"),
            f.lag_seconds === null ? null : `closed ${esc(formatSpan(f.lag_seconds))} ago`,
          ].filter((x) => x !== null).join("; ") || "–",
          ago(f.last_flush_at),
          badge(f.health),
        ]),
      ));
    }
    if (d.dead.length) {
      out.push(table(
        "dead",
        "Copiers that died",
        ["Copier", "Host / PID", "Held", "Died", "Taken over by", "Now"],
        d.dead.map((x) => [
          who(x),
          where(x),
          x.ledgers === null ? `${num(x.held[0]?.start)} onwards` : ranges(x.held),
          x.swept_at
            ? `swept ${ago(x.swept_at)} by ${
              x.swept_by.map((b) => `<code>${esc(b)}</code>`).join(", ")
            }`
            : "session gone; not swept yet",
          x.taken_over_by.length
            ? x.taken_over_by.map((b) => `<code>${esc(b)}</code>`).join(", ")
            : "nobody yet",
          x.ledgers === null
            ? `${num(x.ledgers_held)} ledgers held`
            : x.ledgers_held >= x.ledgers
            ? "committed"
            : `${num(x.ledgers_held)} of ${num(x.ledgers)} ledgers held`,
        ]),
      ));
    }
    return `<section class="dataset" id="dataset-${d.id}" aria-labelledby="ds-${d.id}">${
      out.join("")
    }</section>`;
  };

  const self = (): string => {
    const c = doc.copier;
    if (!c) return "";
    const lag = c.lag_ledgers === null ? "–" : plural(c.lag_ledgers, "ledger");
    const facts: [string, string][] = [
      ["Health", badge(c.health)],
      ["Source head", num(c.source_head)],
      ["Last committed ledger", num(c.last_committed_ledger)],
      ["Lag", lag],
      ["Last commit", ago(c.last_commit_at)],
    ];
    const problems = c.recent.length
      ? `<ol class="recent">${
        c.recent.map((p) => `<li>${time(p.at)} <b>${esc(p.area)}</b>: ${esc(p.message)}</li>`).join(
          "",
        )
      }</ol>`
      : `<p class="note">No problem said since it started.</p>`;
    return `<section class="self" aria-labelledby="self-h"><h2 id="self-h">This copier: <code>${
      esc(c.copier_id)
    }</code> (${esc(c.role)}, ${esc(c.dataset.network)}/${esc(c.dataset.era_id)}/${
      esc(c.dataset.version)
    })</h2><dl class="facts">${
      facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join("")
    }</dl>${
      table(
        "errors",
        "Errors and retries by area",
        ["Area", "Errors", "Retries"],
        c.areas.map((a) => [esc(a.area), num(a.errors), num(a.retries)]),
      )
    }<h3>Latest problems</h3>${problems}</section>`;
  };

  const catalog = doc.catalog;
  const notes = [
    catalog.problem
      ? `<p class="problem" role="alert">The catalog cannot be read: ${esc(catalog.problem)}</p>`
      : "",
    catalog.standby
      ? `<p class="note">A hot standby: which claims are live cannot be seen here; claims are shown as recorded.</p>`
      : "",
  ].join("");
  const body = doc.datasets.length
    ? doc.datasets.map(dataset).join("")
    : catalog.problem
    ? ""
    : `<p>The catalog holds no dataset yet.</p>`;
  return `<header><h1>bronze status</h1><p class="meta">Catalog <code>${
    esc(catalog.label)
  }</code> · as of ${time(doc.generated_at)}${
    doc.refresh_seconds === null
      ? ""
      : ` · refreshes every ${esc(formatDuration(doc.refresh_seconds))}`
  }</p>${notes}</header>${self()}${body}`;
}
