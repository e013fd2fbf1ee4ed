import { BronzeError, EXIT } from "../../runtime/errors.ts";
import { openReadyCatalog } from "../../metadata/migrate.ts";
import { createLogger, type Logger } from "../../runtime/log.ts";
import { type DatasetRebuild, rebuild, type RebuildResult } from "../../recover/rebuild.ts";
import { formatBytes } from "../../runtime/format.ts";
import type { SettingsOf } from "../../settings/mod.ts";
import type { CliCommand } from "../command.ts";

/**
 * `bronze catalog rebuild` exits with this code when a partition failed its manifest or conflicts
 * with the catalog (the code of `verify`'s failed checks): nothing of it was recorded.
 */
export const EXIT_REBUILD_INCOMPLETE = EXIT.incomplete;

export type CatalogRebuildOptions = SettingsOf<"catalogRebuild">;

export const CATALOG_REBUILD: CliCommand<"catalogRebuild"> = {
  name: "catalogRebuild",
  summary: "recover a lost catalog from storage alone",
  description:
    "record the lineage of every partition under --storage from its _manifest.json, each file checked against it (exit 4 when one fails or conflicts with the catalog)",
  run: catalogRebuildCommand,
};

/**
 * `bronze catalog rebuild`: records in the catalog the lineage of every partition stored under
 * --storage, from its `_manifest.json`, each file checked against it (lib/recover/rebuild.ts).
 * Progress and each problem go to stderr as found; the summary to stdout (one JSON object with
 * --json). Returns 0 when every partition was recorded or already present, else
 * EXIT_REBUILD_INCOMPLETE.
 */
export async function catalogRebuildCommand(
  opts: CatalogRebuildOptions,
  out: (line: string) => void = console.log,
  log: Logger = createLogger(opts.logFormat),
): Promise<number> {
  const r = await rebuild(opts, log);
  if (opts.json) out(JSON.stringify(toJson(r)));
  else for (const line of formatRebuild(r)) out(line);
  return incomplete(r) ? EXIT_REBUILD_INCOMPLETE : 0;
}

function incomplete(r: RebuildResult): boolean {
  return r.datasets.some((d) => d.failed.length || d.conflicts.length || d.schemaConflict);
}

const sum = (r: RebuildResult, f: (d: DatasetRebuild) => number) =>
  r.datasets.reduce((n, d) => n + f(d), 0);

function toJson(r: RebuildResult) {
  return {
    ok: !incomplete(r),
    storage: r.storage,
    catalog: r.catalog,
    manifests: r.manifests,
    bytes: r.bytes,
    seconds: Number(r.seconds.toFixed(3)),
    phases: Object.fromEntries(
      Object.entries(r.phases).map(([k, v]) => [k, Number(v.toFixed(3))]),
    ),
    recorded: sum(r, (d) => d.recorded),
    present: sum(r, (d) => d.present),
    conflicts: sum(r, (d) => d.conflicts.length + (d.schemaConflict ? 1 : 0)),
    failed: sum(r, (d) => d.failed.length),
    unmanifested: sum(r, (d) => d.unmanifested.length),
    compacted: sum(r, (d) => d.compacted.length),
    datasets: r.datasets.map((d) => ({
      dataset_id: d.datasetId,
      domain: d.domain,
      dataset: d.dataset,
      network: d.network,
      era_id: d.eraId,
      version: d.version,
      recorded: d.recorded,
      recorded_ledgers: d.recordedLedgers,
      present: d.present,
      derived: d.derived,
      conflicts: d.conflicts.map((c) => ({
        partition: { start: c.start, end: c.end },
        uri: c.uri,
        message: c.message,
      })),
      schema_conflict: d.schemaConflict,
      compacted: d.compacted.map((c) => ({
        partition: { start: c.start, end: c.end },
        uri: c.uri,
        message: c.message,
      })),
      failed: d.failed.map((f) => ({
        partition: { start: f.start, end: f.end },
        uri: f.uri,
        check: f.check,
        message: f.message,
      })),
      unmanifested: d.unmanifested.map((u) => ({
        partition: { start: u.start, end: u.end },
        uri: u.uri,
      })),
    })),
  };
}

/** Where each derived field came from, for the note on older manifests. */
const DERIVED_FROM: Record<string, string> = {
  dataset: "dataset (from the key)",
  storage_path: "storage_path (from the key)",
  schema_hash: "schema_hash (from the Parquet schema)",
  hash_chain: "hash-chain ends (from the Parquet rows)",
  quality: "quality metrics (from the Parquet rows)",
  source: "source (unknown: left empty)",
  created_at: "created_at (unknown: the rebuild's time)",
};

/** A summary line, a table of datasets, then every problem on its own line. */
export function formatRebuild(r: RebuildResult): string[] {
  const rate = r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0;
  const lines = [
    `rebuilt ${r.catalog} from ${r.storage}: ${r.manifests} manifest${
      r.manifests === 1 ? "" : "s"
    } read, ${formatBytes(r.bytes)} checked in ${r.seconds.toFixed(1)}s (${
      rate.toFixed(1)
    } MB/s): ${sum(r, (d) => d.recorded)} recorded, ${sum(r, (d) => d.present)} already present, ${
      sum(r, (d) => d.conflicts.length + (d.schemaConflict ? 1 : 0))
    } in conflict, ${sum(r, (d) => d.failed.length)} failed`,
  ];
  if (r.datasets.length === 0) {
    lines.push("no partitions found");
    return lines;
  }
  const header = ["DATASET", "RECORDED", "PRESENT", "CONFLICTS", "FAILED", "NO MANIFEST"];
  const rows = r.datasets.map((d) => [
    d.label,
    String(d.recorded),
    String(d.present),
    String(d.conflicts.length + (d.schemaConflict ? 1 : 0)),
    String(d.failed.length),
    String(d.unmanifested.length),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("  ")
      .trimEnd();
  lines.push(fmt(header), ...rows.map(fmt));
  for (const d of r.datasets) {
    const derived = Object.entries(d.derived);
    if (derived.length) {
      const most = Math.max(...derived.map(([, n]) => n));
      lines.push(
        `DERIVED ${d.label}: ${most} partition manifest(s) written before manifest_version 2; ` +
          derived.map(([f, n]) => `${DERIVED_FROM[f] ?? f} for ${n}`).join(", "),
      );
    }
  }
  for (const d of r.datasets) {
    for (const f of d.failed) lines.push(`FAIL [${f.check}] ${f.message}`);
  }
  for (const d of r.datasets) {
    for (const c of d.conflicts) lines.push(`CONFLICT ${c.message}`);
    if (d.schemaConflict) lines.push(`CONFLICT ${d.schemaConflict}`);
  }
  for (const d of r.datasets) {
    for (const u of d.unmanifested) lines.push(`NO MANIFEST ${u.message}`);
  }
  for (const d of r.datasets) {
    for (const c of d.compacted) lines.push(`COMPACTED ${c.message}: not recorded`);
  }
  return lines;
}

export type CatalogServeOptions = SettingsOf<"catalogServe">;

export const CATALOG_SERVE: CliCommand<"catalogServe"> = {
  name: "catalogServe",
  summary: "serve the embedded catalog to DuckLake readers on this machine",
  description:
    "keep the embedded catalog's PostgreSQL wire-protocol server up (until Ctrl+C) and print how DuckDB attaches it as a DuckLake, READ_ONLY",
  run: (opts) => catalogServeCommand(opts),
};

/**
 * `bronze catalog serve`: keeps the embedded catalog's PostgreSQL wire-protocol server up, and
 * says how a DuckLake reader attaches to it, until SIGINT/SIGTERM (exit 0). Copies on the same
 * state dir use it meanwhile (it holds the catalog as long as a copy would). When another bronze
 * process already serves it, says where and exits: readers lose it when that process exits.
 */
export async function catalogServeCommand(
  opts: CatalogServeOptions,
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
  stop: Promise<unknown> = signalled(),
): Promise<number> {
  if (opts.catalog !== undefined) {
    throw new BronzeError(
      "catalog serve serves the embedded catalog; a PostgreSQL catalog (--catalog, " +
        "CATALOG_DSN) is served by PostgreSQL: attach it directly",
      EXIT.usage,
    );
  }
  const catalog = await openReadyCatalog({
    stateDir: opts.stateDir,
    mustExist: true,
    holdsLong: true,
    log: (m) => err(`[catalog] ${m}`),
  });
  try {
    const { host, port } = catalog.embeddedAddress!;
    const attach = `ATTACH 'ducklake:postgres:dbname=postgres host=${host} port=${port} ` +
      `user=postgres' AS bronze (READ_ONLY)`;
    if (catalog.embeddedRole === "client") {
      out(
        `bronze process ${catalog.embeddedOwnerPid} serves the embedded catalog at ` +
          `${host}:${port}; readers lose it when that process exits`,
      );
      out(attach);
      return 0;
    }
    out(`serving the embedded catalog at ${host}:${port} until Ctrl+C (this machine only)`);
    out(attach);
    await stop;
    return 0;
  } finally {
    await catalog.close();
  }
}

/** Resolves on the first SIGINT or SIGTERM. */
function signalled(): Promise<void> {
  return new Promise((resolve) => {
    const sigs = ["SIGINT", "SIGTERM"] as const;
    const handler = () => {
      for (const s of sigs) Deno.removeSignalListener(s, handler);
      resolve();
    };
    for (const s of sigs) Deno.addSignalListener(s, handler);
  });
}
