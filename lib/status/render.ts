/**
 * The status page's body, from a status document: `renderStatus`, which runs on the server (the
 * page as first sent, and `bronze status --html`) and, shipped as its own source text (page.ts),
 * in the browser at each refresh. So it reads nothing but its argument and the functions of
 * RENDERER, which the page ships beside it by name; everything else it needs is defined inside it.
 *
 * What a person sees: per dataset, the coverage strip (_strip.ts), the copiers with their pace,
 * the fleets with their ETA, the followers with their lag, and the copiers that died; on a
 * copier's own page, that copier's health, head, lag, errors by area and latest problems first.
 */
import { formatBytes, formatDuration, formatSpan } from "../runtime/format.ts";
import { esc, htmlTable, ledgerRange, num, plural } from "./_html.ts";
import { renderStrip } from "./_strip.ts";
import type { DatasetDoc, StatusDoc } from "./schema.ts";

export function renderStatus(doc: StatusDoc): string {
  const now = Date.parse(doc.generated_at);

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
    rs.length === 0 ? "–" : rs.slice(0, max).map((r) => ledgerRange(r.start, r.end)).join(", ") +
      (rs.length > max ? ` and ${rs.length - max} more` : "");
  /** A fleet copier's cells: the one, or how many from where (all of them on hover). */
  const cellsHeld = (cells: number, held: { start: number; end: number }[]) =>
    cells === 1
      ? `1 cell: ${ledgerRange(held[0].start, held[0].end)}`
      : `<span title="${esc(ranges(held, held.length))}">${plural(cells, "cell")} from ${
        num(held[0]?.start)
      }</span>`;
  const liveness = (live: boolean | null) =>
    live === null ? ' <span class="note">(liveness unknown on a standby)</span>' : "";
  const badge = (h: { state: string; message: string } | null) => {
    if (!h) return "–";
    const mark = h.state === "ok" ? "✓" : h.state === "degraded" ? "!" : "✗";
    return `<span class="badge h-${esc(h.state)}"><span aria-hidden="true">${mark}</span> ${
      esc(h.state.toUpperCase())
    }</span> <span class="msg">${esc(h.message)}</span>`;
  };

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
        `<p class="summary">Ledgers ${ledgerRange(g.start, g.end)} in ${
          plural(g.cells, "cell")
        } of ${num(g.partition_size)} · ${plural(t.partitions, "partition")}, ${
          num(t.ledgers_held)
        } ledgers, ${formatBytes(t.bytes)} · last commit ${ago(t.last_commit_at)}</p>`,
      );
      out.push(renderStrip(d));
    }
    for (const f of d.fleets) {
      out.push(
        `<p class="fleet">Fleet on ${ledgerRange(f.start, f.end)} in ${
          plural(f.cells, "cell")
        } of ${num(f.partition_size)}: ${num(f.ledgers_left)} ledgers left; ${
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
        ? htmlTable(
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
      out.push(htmlTable(
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
      out.push(htmlTable(
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
      htmlTable(
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

/**
 * What the browser needs to run renderStatus: it and every function it calls, each a plain
 * function declaration whose source stands on its own (page.ts ships them, in this order).
 */
export const RENDERER: readonly ((...args: never[]) => unknown)[] = [
  formatBytes,
  formatDuration,
  formatSpan,
  esc,
  num,
  plural,
  ledgerRange,
  htmlTable,
  renderStrip,
  renderStatus,
];
