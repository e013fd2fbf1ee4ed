/**
 * The status page's small HTML pieces, shared by the strip (_strip.ts) and the rest of the body
 * (render.ts). Each is a plain function reading only its arguments and the others here by name:
 * the live page ships them to the browser by their own source (render.ts RENDERER), so nothing
 * here may reach for anything else of this module or of another.
 */

/** Text as HTML: whatever a copier, host or message says is shown, never run. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A count with thousands separators; unknown as a dash. */
export function num(v: number | null | undefined): string {
  return v === null || v === undefined
    ? "–"
    : String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function plural(n: number, one: string, many = one + "s"): string {
  return `${num(n)} ${n === 1 ? one : many}`;
}

/** A range of ledgers, one ledger as itself. */
export function ledgerRange(s: number, e: number): string {
  return s === e ? num(s) : `${num(s)}–${num(e)}`;
}

/** A table that scrolls sideways on a narrow screen; cells are HTML already. */
export function htmlTable(cls: string, caption: string, head: string[], rows: string[][]): string {
  return `<div class="scroll"><table class="${cls}"><caption>${caption}</caption><thead><tr>${
    head.map((h) => `<th scope="col">${h}</th>`).join("")
  }</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")
  }</tbody></table></div>`;
}
