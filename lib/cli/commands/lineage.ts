import { findDatasets } from "../../metadata/coverage.ts";
import { duckLakeTableSql } from "../../metadata/ducklake.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { CatalogWriter, type LineageRow } from "../../metadata/writer.ts";
import { formatBytes } from "../../runtime/format.ts";
import { datasetFilterOf, type SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

export type LineageOptions = SettingsOf<"lineage">;

export const LINEAGE: CliCommand<"lineage"> = {
  name: "lineage",
  summary: "the partitions the catalog records (--history: superseded too)",
  description:
    "the partitions the catalog records, in ledger order (--history: the superseded ones too)",
  run: lineageCommand,
};

/**
 * `bronze lineage`: the partitions the catalog records, per dataset, in ledger order: the current
 * ones, and with --history the superseded ones too (the partials a compaction replaced, which
 * lineage keeps forever), each with the row that replaced it. With --paths, only the URLs of the
 * current files, one a line: what a reader that speaks neither DuckLake nor PostgreSQL reads
 * (never a superseded partial, an uncommitted file or a retired dataset's).
 */
export async function lineageCommand(
  opts: LineageOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    mustExist: true,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    const writer = new CatalogWriter(catalog);
    const datasets = [];
    for (
      const ds of await findDatasets(catalog, datasetFilterOf(opts))
    ) {
      const rows = await writer.listLineage(ds.id, opts, { history: opts.history });
      datasets.push({
        label: ds.label,
        table: duckLakeTableSql(ds),
        retired: !!ds.retiredAt,
        rows,
      });
    }
    if (opts.paths) {
      // The files a reader of the table reads now: current rows of datasets not retired.
      const live = datasets.filter((d) => !d.retired);
      if (opts.json) {
        out(JSON.stringify({
          catalog: catalog.label,
          datasets: live.map((d) => ({
            dataset: d.label,
            ducklake_table: d.table,
            paths: d.rows.map((r) => r.storageUri),
          })),
        }));
      } else {
        for (const d of live) for (const r of d.rows) out(r.storageUri);
      }
      return 0;
    }
    if (opts.json) {
      out(JSON.stringify({
        catalog: catalog.label,
        datasets: datasets.map((d) => ({ dataset: d.label, partitions: d.rows.map(toJson) })),
      }));
      return 0;
    }
    out(`catalog: ${catalog.label}`);
    for (const d of datasets) {
      out("");
      out(d.label);
      for (const r of d.rows) {
        const mark = r.supersededBy === null
          ? ""
          : `  superseded by lineage ${r.supersededBy} at ${r.supersededAt!.toISOString()}`;
        out(
          `  ${r.id}  ${r.ledgerStart}-${r.ledgerEnd}  ${
            formatBytes(r.byteSize)
          }  ${r.checksum}  ` +
            `${r.storagePath}${mark}`,
        );
      }
    }
    return 0;
  } finally {
    await catalog.close();
  }
}

function toJson(r: LineageRow) {
  return {
    lineage_id: r.id,
    start: r.ledgerStart,
    end: r.ledgerEnd,
    rows: r.rowCount,
    bytes: r.byteSize,
    checksum: r.checksum,
    storage_path: r.storagePath,
    storage_uri: r.storageUri,
    source_type: r.sourceType,
    created_at: r.createdAt.toISOString(),
    superseded_by: r.supersededBy,
    superseded_at: r.supersededAt?.toISOString() ?? null,
  };
}
