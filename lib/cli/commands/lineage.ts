import { findDatasets } from "../../metadata/coverage.ts";
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
 * lineage keeps forever), each with the row that replaced it.
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
      datasets.push({ label: ds.label, rows });
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
