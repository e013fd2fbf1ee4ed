/**
 * The status page as one self-contained HTML document: its style and (when served live) its
 * script inline, nothing fetched from anywhere but `status.json` beside it (a relative URL, so it
 * works behind `kubectl port-forward` or a path-prefix proxy), and a Content-Security-Policy that
 * forbids anything else: no external script, font, image or form, on an air-gapped VM as
 * anywhere. The body is renderStatus's (render.ts); the live page's script is that same function's
 * source, beside the functions it calls (RENDERER), refreshing the body in place every
 * `refresh_seconds`.
 *
 * Plain and accessible: dark text on white (contrast above 7:1), every state of the strip a
 * pattern as well as a colour and named in the legend and each segment's title, a table of the
 * segments for screen readers and phones, tables that scroll sideways on a narrow screen, and a
 * print style that keeps the patterns and opens the tables.
 */
import { createHash } from "node:crypto";
import { RENDERER, renderStatus } from "./render.ts";
import type { StatusDoc } from "./schema.ts";

const CSS = `
:root{color-scheme:light;--fg:#151515;--muted:#454545;--line:#767676}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1280px;padding:16px 20px;color:var(--fg);background:#fff;
 font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.2rem;margin:0 0 6px}h3{font-size:1rem;margin:14px 0 4px}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.92em;word-break:break-all}
.meta,.note,.summary{color:var(--muted);margin:4px 0}
.problem{border-left:4px solid #b3261e;background:#fdecea;padding:6px 10px;margin:8px 0}
#refresh:empty{display:none}
#refresh{border-left:4px solid #8a5a00;background:#fff4d6;padding:6px 10px;margin:0 0 8px}
section{border-top:1px solid var(--line);padding:14px 0 10px;margin-top:10px}
.strip{display:flex;height:38px;border:1px solid #222;background:#fff;overflow:hidden}
.seg{display:flex;flex-direction:column;min-width:1px;overflow:hidden}
.seg:not(.s-committed){min-width:3px}
.seg>i{display:block;min-height:1px}
.seg:hover{outline:2px solid #000;outline-offset:-2px}
.s-committed{background:#1b6e20}
.s-partials{background:radial-gradient(circle,#16380a 1.3px,transparent 1.6px) 0 0/6px 6px,#9ccc65}
.s-claimed{background:repeating-linear-gradient(45deg,#1557b0 0 4px,#d3e3fb 4px 8px)}
.s-gap{background:repeating-linear-gradient(45deg,transparent 0 5px,#b3261e 5px 6.5px),
 repeating-linear-gradient(-45deg,transparent 0 5px,#b3261e 5px 6.5px),#fff6f4}
.gc-track{display:flex;height:8px;margin-top:2px}
.gc-track>span{min-width:1px}
.sup{background:repeating-linear-gradient(90deg,#6a1b9a 0 2px,transparent 2px 4px)}
.axis{display:flex;justify-content:space-between;color:var(--muted);font-size:.85rem}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 18px;padding:0;margin:6px 0}
.sw{display:inline-block;width:16px;height:16px;border:1px solid #222;vertical-align:-3px;margin-right:6px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:6px 0}
caption{text-align:left;font-weight:600;padding:4px 0}
th,td{text-align:left;padding:3px 12px 3px 0;border-bottom:1px solid #d0d0d0;vertical-align:top;
 white-space:nowrap}
th{border-bottom:2px solid var(--line)}
details{margin:4px 0}summary{cursor:pointer;color:var(--muted)}
.badge{display:inline-block;padding:0 6px;border:1px solid currentColor;border-radius:3px;font-weight:700;font-size:.85em}
.h-ok{color:#1b5e20}.h-degraded{color:#8a4b00}.h-unhealthy{color:#b3261e}.retired{color:#5d4037}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:4px 16px;margin:6px 0}
.facts dt{color:var(--muted);font-size:.85rem}.facts dd{margin:0;font-weight:600}
.msg{font-weight:400}
.recent{padding-left:20px;margin:4px 0}
footer{border-top:1px solid var(--line);margin-top:16px;padding-top:8px;color:var(--muted);font-size:.85rem}
a{color:#0b4fc0}
@media (max-width:640px){body{padding:10px;font-size:14px}.strip{height:46px}th,td{padding-right:8px}}
@media print{
 body{max-width:none;padding:0;font-size:10pt}
 #refresh,footer a{display:none}
 .strip,.seg,.seg>i,.sw,.gc-track,.sup,.badge{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 details::details-content{content-visibility:visible;display:block}
 section{break-inside:avoid-page}
}`;

/** The live page's script: the renderer and what it calls by their own source, then the loop. */
const SCRIPT = `"use strict";
${RENDERER.map((f) => f.toString()).join("\n")}
(() => {
  const root = document.getElementById("status");
  const note = document.getElementById("refresh");
  let every = Number(root.dataset.refresh) * 1000;
  let count = 0;
  const tick = async () => {
    try {
      const res = await fetch("status.json", { cache: "no-store" });
      if (!res.ok) throw new Error(res.status + ": " + (await res.text()).trim());
      const doc = await res.json();
      const open = [...root.querySelectorAll("details[open]")].map((d) => d.closest("section")?.id);
      root.innerHTML = renderStatus(doc);
      for (const d of root.querySelectorAll("details")) {
        if (open.includes(d.closest("section")?.id)) d.open = true;
      }
      if (doc.refresh_seconds) every = doc.refresh_seconds * 1000;
      note.textContent = "";
      document.documentElement.dataset.refreshes = String(++count);
    } catch (err) {
      note.textContent = "Could not refresh (" + err.message + "); the figures below are from " +
        "the last refresh. Trying again.";
    }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
  addEventListener("beforeprint", () => {
    for (const d of document.querySelectorAll("details")) d.open = true;
  });
})();
`;

let scriptHash: string | undefined;

/** The live page's Content-Security-Policy: its own script, its own data, nothing else. */
export function liveCsp(): string {
  scriptHash ??= createHash("sha256").update(SCRIPT).digest("base64");
  return `default-src 'none'; script-src 'sha256-${scriptHash}'; style-src 'unsafe-inline'; ` +
    `connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; ` +
    `frame-ancestors 'none'`;
}

/** A page written once (`bronze status --html`) runs no script at all. */
export const STATIC_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/**
 * The whole document for `doc`: live (served at `/`: refreshes itself from status.json, and the
 * server sends liveCsp() as a header) or static (`bronze status --html`: no script, its policy in a
 * meta element).
 */
export function statusPage(doc: StatusDoc, mode: "live" | "static"): string {
  const live = mode === "live";
  const footer = live
    ? `Read-only: nothing on this page can change anything. Its data: <a href="status.json">status.json</a>` +
      ` · <a href="metrics">metrics</a> · <a href="healthz">healthz</a>`
    : `Read-only. Written by <code>bronze status --html</code>; it does not refresh.`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${
    live
      ? ""
      : `<meta http-equiv="Content-Security-Policy" content="${STATIC_CSP}">\n`
  }<title>bronze status</title>
<style>${CSS}</style>
</head>
<body>
${live ? `<p id="refresh" role="status" aria-live="polite"></p>\n` : ""}<main id="status"${
    live ? ` data-refresh="${doc.refresh_seconds ?? 5}"` : ""
  }>${renderStatus(doc)}</main>
<footer>${footer}</footer>
${live ? `<script>${SCRIPT}</script>\n` : ""}</body>
</html>
`;
}
