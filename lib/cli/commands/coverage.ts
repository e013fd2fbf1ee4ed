import { EXIT } from "../../runtime/errors.ts";
import { type DatasetCoverage, queryCoverage } from "../../metadata/coverage.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { formatBytes } from "../../runtime/format.ts";
import { datasetFilterOf, type SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

/** `bronze coverage --fail-on-gaps` exits with this code when any dataset has a gap. */
export const EXIT_GAPS = EXIT.gaps;

export type CoverageOptions = SettingsOf<"coverage">;

export const COVERAGE: CliCommand<"coverage"> = {
  name: "coverage",
  summary: "which ledgers does the catalog hold, and where are the gaps?",
  description:
    "per dataset: ledgers held, partitions, rows, bytes and every gap (exit 3 on gaps with --fail-on-gaps)",
  run: coverageCommand,
};

export interface CoverageReport {
  catalog: string;
  range: { start: number | null; end: number | null };
  datasets: DatasetCoverage[];
}

/**
 * `bronze coverage`: per dataset, the ledgers held, partitions, rows, bytes and every gap. Writes
 * a table (or one JSON object with --json) to `out`. Returns the exit code: 0, or EXIT_GAPS with
 * --fail-on-gaps when any gap exists.
 */
export async function coverageCommand(
  opts: CoverageOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const report = await coverageReport(opts, err);
  if (opts.json) out(JSON.stringify(toJson(report)));
  else for (const line of formatCoverage(report)) out(line);
  // A retired dataset's gaps are nobody's to fill: copy refuses to write into it.
  const current = report.datasets.filter((d) => d.retiredAt === null);
  const gaps = current.reduce((n, d) => n + d.gaps.length, 0);
  if (opts.failOnGaps && gaps > 0) {
    err(
      `bronze: ${gaps} gap${gaps === 1 ? "" : "s"} in ${
        current.filter((d) => d.gaps.length).length
      } dataset(s) (--fail-on-gaps)`,
    );
    return EXIT_GAPS;
  }
  return 0;
}

export async function coverageReport(
  opts: Omit<CoverageOptions, "json" | "failOnGaps">,
  err: (line: string) => void = console.error,
): Promise<CoverageReport> {
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    mustExist: true,
    stateDir: opts.stateDir,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    const datasets = await queryCoverage(catalog, {
      ...datasetFilterOf(opts),
      start: opts.start,
      end: opts.end,
    });
    return {
      catalog: catalog.label,
      range: { start: opts.start ?? null, end: opts.end ?? null },
      datasets,
    };
  } finally {
    await catalog.close();
  }
}

function toJson(r: CoverageReport) {
  return {
    catalog: r.catalog,
    range: r.range,
    datasets: r.datasets.map((d) => ({
      dataset_id: d.id,
      domain: d.domain,
      dataset: d.dataset,
      network: d.network,
      era_id: d.eraId,
      version: d.version,
      retired_at: d.retiredAt?.toISOString() ?? null,
      retired_reason: d.retiredReason,
      first_ledger: d.firstLedger,
      last_ledger: d.lastLedger,
      partitions: d.partitions,
      rows: d.rows,
      bytes: d.bytes,
      missing_ledgers: d.missingLedgers,
      gaps: d.gaps.map((g) => ({ start: g.start, end: g.end, ledgers: g.end - g.start + 1 })),
    })),
  };
}

/** A table of datasets, then each gap on its own line under a "gaps of" header. */
export function formatCoverage(r: CoverageReport): string[] {
  const lines: string[] = [`catalog: ${r.catalog}`];
  if (r.range.start !== null || r.range.end !== null) {
    lines.push(`range: ${r.range.start ?? "(first held)"}-${r.range.end ?? "(last held)"}`);
  }
  if (r.datasets.length === 0) {
    lines.push("no datasets match");
    return lines;
  }
  const header = ["DATASET", "LEDGERS HELD", "PARTITIONS", "ROWS", "BYTES", "GAPS", "MISSING"];
  const rows = r.datasets.map((d) => [
    d.retiredAt ? `${d.label} (retired)` : d.label,
    d.firstLedger === null ? "-" : `${d.firstLedger}-${d.lastLedger}`,
    String(d.partitions),
    String(d.rows),
    formatBytes(d.bytes),
    String(d.gaps.length),
    String(d.missingLedgers),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
      .trimEnd();
  lines.push(fmt(header), ...rows.map(fmt));
  const retired = r.datasets.filter((d) => d.retiredAt);
  if (retired.length) {
    lines.push(
      "",
      "retired (copy refuses them, --fail-on-gaps ignores them, gc deletes their files):",
    );
    for (const d of retired) {
      lines.push(`  ${d.label}: retired at ${d.retiredAt!.toISOString()} (${d.retiredReason})`);
    }
  }
  for (const d of r.datasets) {
    if (!d.gaps.length) continue;
    lines.push("", `gaps of ${d.label}${d.retiredAt ? " (retired)" : ""}:`);
    const w = Math.max(...d.gaps.map((g) => `${g.start}-${g.end}`.length));
    for (const g of d.gaps) {
      const n = g.end - g.start + 1;
      lines.push(
        `  ${`${g.start}-${g.end}`.padEnd(w)}  (${n} ledger${n === 1 ? "" : "s"} missing)`,
      );
    }
  }
  return lines;
}
