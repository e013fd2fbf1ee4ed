import { EXIT } from "../../runtime/errors.ts";
import { createLogger } from "../../runtime/log.ts";
import { gc, type GcObject, type GcResult } from "../../recover/gc.ts";
import { formatSpan } from "../../runtime/format.ts";
import { formatBytes } from "../../runtime/format.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type GcArgs = SettingsOf<"gc">;

export const GC: CliCommand<"gc"> = {
  name: "gc",
  summary: "list what no lineage row keeps (orphans, superseded, retired); --apply deletes",
  description:
    "list what no lineage row keeps (temp files, never-committed partitions, partials a compaction superseded) and the files of retired datasets, older than --older-than; delete them with --apply",
  run: gcCommand,
};

/**
 * `bronze gc`: what no lineage row references (temp files, never-committed partitions) and the
 * files of datasets retired long enough, as a table (or one JSON object with --json); deleted only
 * with --apply. Returns 0, or 1 when an object could not be deleted (kept ones are not failures:
 * each says why).
 */
export async function gcCommand(
  args: GcArgs,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
  now?: () => Date,
): Promise<number> {
  const result = await gc(args, {
    now,
    log: (m) => err(`[catalog] ${m}`),
    logger: createLogger("text", err),
    onDeleted: (o) => err(`[gc] deleted ${o.url} (${o.what}, ${formatBytes(o.size)})`),
  });
  if (args.json) out(JSON.stringify(toJson(result)));
  else for (const line of formatGc(result)) out(line);
  const failed = result.objects.filter((o) => o.outcome === "failed").length;
  if (failed) {
    err(`bronze: ${failed} object${failed === 1 ? "" : "s"} could not be deleted (FAILED above)`);
    return EXIT.error;
  }
  return 0;
}

function totals(r: GcResult) {
  const gone = r.objects.filter((o) => o.outcome === (r.apply ? "deleted" : "delete"));
  return {
    objects: gone.length,
    bytes: gone.reduce((n, o) => n + o.size, 0),
    kept: r.objects.filter((o) => o.outcome === "kept").length,
    failed: r.objects.filter((o) => o.outcome === "failed").length,
  };
}

function toJson(r: GcResult) {
  const t = totals(r);
  return {
    catalog: r.catalog,
    storage: r.storage,
    apply: r.apply,
    older_than_seconds: r.olderThan,
    datasets: r.datasets,
    notes: r.notes,
    objects: r.objects.map((o) => ({
      what: o.what,
      dataset: o.dataset,
      key: o.key,
      url: o.url,
      size: o.size,
      modified: o.modified.toISOString(),
      age_seconds: Math.round(o.age),
      why: o.why,
      outcome: o.outcome,
      reason: o.reason,
    })),
    summary: {
      [r.apply ? "deleted" : "would_delete"]: t.objects,
      bytes: t.bytes,
      kept: t.kept,
      failed: t.failed,
    },
  };
}

const ACTION: Record<GcObject["outcome"], string> = {
  delete: "delete",
  deleted: "deleted",
  kept: "kept",
  failed: "FAILED",
};

/** Header lines, the notes, a table (action, what, key, size, age, why) and a summary line. */
export function formatGc(r: GcResult): string[] {
  const lines = [`catalog: ${r.catalog}`, `storage: ${r.storage}`];
  if (!r.apply) lines.push("dry run: nothing is deleted without --apply");
  if (r.datasets === 0) {
    lines.push("no datasets match");
    return lines;
  }
  lines.push(...r.notes);
  const t = totals(r);
  if (r.objects.length) {
    const header = ["ACTION", "WHAT", "KEY", "SIZE", "AGE", "WHY"];
    const rows = r.objects.map((o) => [
      r.apply || o.outcome !== "kept" ? ACTION[o.outcome] : "keep",
      o.what,
      o.key,
      formatBytes(o.size),
      formatSpan(o.age),
      o.outcome === "kept" || o.outcome === "failed" ? o.reason ?? "" : o.why,
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    const right = new Set([3, 4]);
    const fmt = (cells: string[]) =>
      cells.map((c, i) =>
        i === cells.length - 1 ? c : right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])
      ).join("  ").trimEnd();
    lines.push(fmt(header), ...rows.map(fmt));
  }
  const objects = (n: number) => `${n} object${n === 1 ? "" : "s"}`;
  if (!r.apply) {
    lines.push(
      t.objects
        ? `dry run: ${objects(t.objects)} (${
          formatBytes(t.bytes)
        }) would be deleted, ${t.kept} kept; run again with --apply to delete them`
        : `dry run: nothing to delete, ${t.kept} kept`,
    );
  } else {
    lines.push(
      `deleted ${objects(t.objects)} (${formatBytes(t.bytes)}), kept ${t.kept}` +
        (t.failed ? `, ${t.failed} failed` : ""),
    );
  }
  return lines;
}
