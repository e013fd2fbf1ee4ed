/**
 * The status document in a terminal (`bronze status`): per dataset its extent and cells by state,
 * a strip of characters (one per column of cells: the state most of them are in), its fleets,
 * copiers, followers and the copiers that died. The same figures as the page.
 */
import { formatBytes, formatDuration, formatSpan } from "../runtime/format.ts";
import { type DatasetDoc, type StatusDoc, STRIP_STATES, type StripState } from "./schema.ts";

/** Columns of the character strip. */
export const STRIP_WIDTH = 64;

const MARK: Record<StripState, string> = {
  committed: "#",
  partials: ":",
  claimed: "/",
  gap: ".",
};

const NAME: Record<StripState, string> = {
  committed: "committed",
  partials: "partials awaiting compaction",
  claimed: "claimed now",
  gap: "gaps",
};

const num = (v: number | null) =>
  v === null ? "-" : String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const span = (s: number, e: number) => s === e ? num(s) : `${num(s)}-${num(e)}`;

export function formatStatus(doc: StatusDoc): string[] {
  const now = Date.parse(doc.generated_at);
  const ago = (iso: string | null) =>
    iso === null ? "never" : `${formatSpan(Math.max(0, (now - Date.parse(iso)) / 1000))} ago`;
  const lines = [`catalog: ${doc.catalog.label} (as of ${doc.generated_at})`];
  if (doc.catalog.problem) lines.push(`the catalog cannot be read: ${doc.catalog.problem}`);
  if (doc.catalog.standby) {
    lines.push("(a standby: it cannot see which claims are live; these are the claims recorded)");
  }
  if (!doc.datasets.length && !doc.catalog.problem) lines.push("no datasets yet");
  for (const d of doc.datasets) lines.push("", ...dataset(d, ago, doc.pace_window_seconds));
  lines.push(
    "",
    "Errors and retries are a running copier's own: its page (/ on --metrics-addr) shows them.",
  );
  return lines;
}

function dataset(
  d: DatasetDoc,
  ago: (iso: string | null) => string,
  paceSeconds: number,
): string[] {
  const t = d.totals;
  const out = [`${d.label}${d.retired ? ` (retired ${d.retired.at}: ${d.retired.reason})` : ""}`];
  if (!d.grid) return [...out, "  nothing recorded or claimed yet"];
  const g = d.grid;
  out.push(
    `  ledgers   ${span(g.start, g.end)} in ${num(g.cells)} cells of ${num(g.partition_size)}; ` +
      `${num(t.partitions)} partitions, ${formatBytes(t.bytes)}; last commit ${
        ago(t.last_commit_at)
      }`,
    `  cells     ${
      STRIP_STATES.map((s) =>
        `${num(t[s])} ${
          s === "partials"
            ? "in partials awaiting compaction"
            : s === "gap" && t[s] === 1
            ? "gap"
            : NAME[s]
        }${s === "committed" ? ` (${(100 * t[s] / g.cells).toFixed(1)}%)` : ""}`
      ).join(", ")
    }; ${num(t.superseded)} superseded partitions awaiting gc`,
    `  strip     [${strip(d)}]  ${
      STRIP_STATES.map((s) => `${MARK[s]} ${NAME[s].split(" ")[0]}`).join("  ")
    }`,
  );
  for (const f of d.fleets) {
    out.push(
      `  fleet     ${span(f.start, f.end)} in cells of ${num(f.partition_size)}: ${
        num(f.ledgers_left)
      } ledgers left; ${
        f.ledgers_per_second === null
          ? `no commits in the last ${formatDuration(paceSeconds)}`
          : `${num(f.ledgers_per_second)} ledgers/s, ${
            formatBytes(f.bytes_per_second ?? 0)
          }/s; ETA ${f.eta_seconds === null ? "?" : formatDuration(f.eta_seconds)}`
      }`,
    );
  }
  if (d.copiers.length) {
    out.push(
      ...columns(
        "  ",
        ["COPIER", "HOST", "PID", "ROLE", "HOLDS", "LEDGERS/S", "BYTES/S", "LAST COMMIT"],
        d.copiers.map((c) => [
          c.copier_id + (c.live === null ? " (liveness unknown)" : ""),
          c.host ?? "?",
          String(c.pid ?? "?"),
          c.role,
          c.live === false
            ? "nothing now"
            : c.role === "fleet"
            ? `${c.cells_held} cell${c.cells_held === 1 ? "" : "s"}`
            : c.role === "follower"
            ? `${num(c.held[0]?.start ?? null)} onwards`
            : c.held.map((h) => span(h.start, h.end)).join(", "),
          c.ledgers_per_second === null ? "-" : c.ledgers_per_second.toFixed(1),
          c.bytes_per_second === null ? "-" : `${formatBytes(Math.round(c.bytes_per_second))}/s`,
          ago(c.last_commit_at),
        ]),
      ),
    );
  } else {
    out.push("  no copier is working on it now");
  }
  if (d.followers.length) {
    out.push(
      ...columns(
        "  ",
        ["FOLLOWER", "HEAD", "LAST COMMITTED", "LAG", "LAST FLUSH", "HEALTH"],
        d.followers.map((f) => [
          f.copier_id,
          f.source_head === null ? "(on its page)" : num(f.source_head),
          num(f.last_committed_ledger),
          [
            f.lag_ledgers === null ? null : `${num(f.lag_ledgers)} ledgers`,
            f.lag_seconds === null ? null : `closed ${formatSpan(f.lag_seconds)} ago`,
          ].filter((x) => x).join("; ") || "-",
          ago(f.last_flush_at),
          f.health ? `${f.health.state}: ${f.health.message}` : "-",
        ]),
      ),
    );
  }
  if (d.dead.length) {
    out.push(
      ...columns(
        "  ",
        ["DIED", "HOST", "PID", "HELD", "SWEPT", "TAKEN OVER BY", "NOW"],
        d.dead.map((x) => [
          x.copier_id,
          x.host ?? "?",
          String(x.pid ?? "?"),
          x.ledgers === null
            ? `${num(x.held[0]?.start ?? null)} onwards`
            : x.held.map((h) => span(h.start, h.end)).join(", "),
          x.swept_at ? `${ago(x.swept_at)} by ${x.swept_by.join(", ")}` : "not yet",
          x.taken_over_by.join(", ") || "nobody yet",
          x.ledgers !== null && x.ledgers_held >= x.ledgers
            ? "committed"
            : `${num(x.ledgers_held)}${
              x.ledgers === null ? "" : ` of ${num(x.ledgers)}`
            } ledgers held`,
        ]),
      ),
    );
  }
  return out;
}

/** The strip in STRIP_WIDTH characters: each column the state most of its cells are in. */
export function strip(d: DatasetDoc): string {
  const cells = d.grid?.cells ?? 0;
  if (!cells) return "";
  const width = Math.min(STRIP_WIDTH, cells);
  const counts = Array.from(
    { length: width },
    () => ({ committed: 0, partials: 0, claimed: 0, gap: 0 }),
  );
  let at = 0; // cells before the band
  for (const b of d.bands) {
    // A band's counts spread evenly over its cells, each cell into its column.
    for (const s of STRIP_STATES) {
      if (!b[s]) continue;
      const perCell = b[s] / b.cells;
      for (let i = 0; i < b.cells; i++) {
        counts[Math.floor(((at + i) * width) / cells)][s] += perCell;
      }
    }
    at += b.cells;
  }
  return counts.map((c) => {
    let best: StripState = "gap";
    for (const s of STRIP_STATES) if (c[s] > c[best]) best = s;
    return MARK[best];
  }).join("");
}

function columns(indent: string, header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) =>
    indent + r.map((v, i) => i === r.length - 1 ? v : v.padEnd(widths[i])).join("  ")
  );
}
