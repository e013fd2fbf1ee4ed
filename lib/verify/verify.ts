/**
 * `bronze verify`: re-reads stored partitions and checks each against its lineage row (check.ts),
 * and across adjacent partitions that the lineage hash-chain columns link up. Each verification is
 * recorded as quality rows.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../runtime/log.ts";
import { Progress } from "../runtime/progress.ts";
import { datasetFilterOf, type SettingsOf } from "../settings/mod.ts";
import { objectUrl } from "../blob/mod.ts";
import { Stores } from "./locate.ts";
import { type DatasetRef, findDatasets } from "../metadata/coverage.ts";
import { duckLakeState, duckLakeTableSql } from "../metadata/ducklake.ts";
import { runRetrier } from "../runtime/retry.ts";
import { fsError } from "../runtime/errors.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, type LineageRow } from "../metadata/writer.ts";
import { type CheckName, checkPartition } from "./check.ts";

export type { CheckName };

/** What verify reads: the verify command's settings but its output format. */
export type VerifyOptions = Omit<SettingsOf<"verify">, "json" | "logFormat">;

export interface VerifyFailure {
  dataset: string;
  lineageId: number;
  start: number;
  end: number;
  uri: string;
  /** The ledger at fault, or null when the whole file is (missing, wrong size or checksum). */
  ledger: number | null;
  check: CheckName;
  message: string;
}

/**
 * The failures of one kind in one partition past the first FIRST_OF_EACH_KIND: counted, not kept.
 * One flipped byte can break every later row's chain, so a partition may fail thousands of times
 * over; the first few say what is wrong, the count how far it goes, and repair acts per partition.
 */
export interface OmittedFailures {
  dataset: string;
  lineageId: number;
  start: number;
  end: number;
  uri: string;
  check: CheckName;
  count: number;
  /** The ledgers of the omitted ones, lowest and highest (null: the whole file). */
  firstLedger: number | null;
  lastLedger: number | null;
}

/** Failures of one kind kept per partition; the rest are counted (OmittedFailures). */
export const FIRST_OF_EACH_KIND = 3;

export interface VerifyResult {
  partitions: number;
  passed: number;
  failed: number;
  ledgers: number;
  /** Bytes of partition files read. */
  bytes: number;
  seconds: number;
  /** The first FIRST_OF_EACH_KIND failures of each kind per partition, in the order found. */
  failures: VerifyFailure[];
  /** Per partition and kind, how many more there were. */
  omitted: OmittedFailures[];
  /**
   * Partitions of retired datasets (`bronze retire`), reported as such and not read: gc deletes
   * their files, so a missing one is expected, not a failure.
   */
  retired: RetiredPartitions[];
  /** Where a dataset's DuckLake table and its lineage disagree (`bronze repair` brings it back). */
  ducklake: DuckLakeFailure[];
}

export interface DuckLakeFailure {
  dataset: string;
  /** The DuckLake table, as a query names it (schema.table). */
  table: string;
  message: string;
}

export interface RetiredPartitions {
  dataset: string;
  retiredAt: Date;
  reason: string;
  partitions: number;
  ledgers: number;
}

export async function verify(opts: VerifyOptions, log: Logger): Promise<VerifyResult> {
  const retry = runRetrier(opts.retryFor, log);
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    mustExist: true,
    stateDir: opts.stateDir,
    log: (m) => log.info("catalog", m),
  });
  const started = performance.now();
  const result: VerifyResult = {
    partitions: 0,
    passed: 0,
    failed: 0,
    ledgers: 0,
    bytes: 0,
    seconds: 0,
    failures: [],
    omitted: [],
    retired: [],
    ducklake: [],
  };
  const stores = new Stores(opts.storageRoot, retry);
  const tmpDir = join(opts.stateDir, "tmp");
  const progress = new Progress(log, opts.progressInterval);
  try {
    const writer = new CatalogWriter(catalog);
    const datasets = await findDatasets(catalog, datasetFilterOf(opts));
    const work: { label: string; datasetId: number; rows: LineageRow[] }[] = [];
    for (const ds of datasets) {
      for (const message of await duckLakeProblems(catalog, ds)) {
        result.ducklake.push({ dataset: ds.label, table: duckLakeTableSql(ds), message });
        log.warn("verify", `${ds.label}: ${message}`);
      }
      const rows = await writer.listLineage(ds.id, { start: opts.start, end: opts.end });
      if (rows.length && ds.retiredAt) {
        result.retired.push({
          dataset: ds.label,
          retiredAt: ds.retiredAt,
          reason: ds.retiredReason ?? "",
          partitions: rows.length,
          ledgers: rows.reduce((n, r) => n + r.rowCount, 0),
        });
        continue;
      }
      if (rows.length) work.push({ label: ds.label, datasetId: ds.id, rows });
    }
    progress.begin(work.reduce((n, w) => n + w.rows.reduce((m, r) => m + r.rowCount, 0), 0));
    await mkdir(tmpDir, { recursive: true }).catch((e) => {
      throw fsError(e, { path: tmpDir, writing: true, dir: tmpDir });
    });
    for (const { label, datasetId, rows } of work) {
      // The partition just before the first one checked, to check the link into it.
      let prev: LineageRow | null = rows[0].ledgerStart > 1
        ? (await writer.findOverlapping(
          datasetId,
          rows[0].ledgerStart - 1,
          rows[0].ledgerStart - 1,
        ))[0] ?? null
        : null;
      for (const row of rows) {
        const { store, key } = stores.locate(row);
        const uri = objectUrl(store, key);
        const failures: VerifyFailure[] = [];
        const omitted = new Map<CheckName, OmittedFailures>();
        let total = 0;
        // Kept in memory until the end: bounded per partition and kind, whatever the damage.
        const fail = (check: CheckName, ledger: number | null, what: string) => {
          total++;
          const seen = failures.filter((f) => f.check === check).length;
          if (seen >= FIRST_OF_EACH_KIND) {
            const o = omitted.get(check) ?? {
              dataset: label,
              lineageId: row.id,
              start: row.ledgerStart,
              end: row.ledgerEnd,
              uri,
              check,
              count: 0,
              firstLedger: ledger,
              lastLedger: ledger,
            };
            o.count++;
            if (ledger !== null) {
              o.firstLedger = Math.min(o.firstLedger ?? ledger, ledger);
              o.lastLedger = Math.max(o.lastLedger ?? ledger, ledger);
            }
            omitted.set(check, o);
            return;
          }
          failures.push({
            dataset: label,
            lineageId: row.id,
            start: row.ledgerStart,
            end: row.ledgerEnd,
            uri,
            ledger,
            check,
            message: `partition ${row.ledgerStart}-${row.ledgerEnd} (${uri}): ${
              ledger === null ? "" : `ledger ${ledger}: `
            }${what}`,
          });
        };
        if (prev && prev.ledgerEnd + 1 === row.ledgerStart) {
          if (row.firstPreviousLedgerHash !== prev.lastLedgerHash) {
            fail(
              "chain_link",
              row.ledgerStart,
              `previous_ledger_hash ${row.firstPreviousLedgerHash} does not match ledger_hash ` +
                `${prev.lastLedgerHash} of ledger ${prev.ledgerEnd} (partition ` +
                `${prev.ledgerStart}-${prev.ledgerEnd}, ${prev.storageUri}): the hash chain ` +
                `breaks across the partition boundary`,
            );
          }
        }
        result.bytes += await checkPartition(row, store, key, tmpDir, fail, progress);
        result.partitions++;
        result.ledgers += row.rowCount;
        if (total) {
          result.failed++;
          result.failures.push(...failures);
          result.omitted.push(...omitted.values());
          log.warn(
            "verify",
            `partition ${row.ledgerStart}-${row.ledgerEnd} of ${label} (${uri}) failed ${total} check${
              total === 1 ? "" : "s"
            }: ${[...new Set(failures.map((f) => f.check))].join(", ")}`,
          );
        } else {
          result.passed++;
        }
        if (!opts.noRecord) await writer.recordVerification(row.id, total);
        prev = row;
      }
    }
  } finally {
    progress.end();
    await stores.close();
    await catalog.close();
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

/**
 * Where the dataset's DuckLake rows and its lineage disagree, one line each: a dataset has a live
 * table (a retired one none), whose live files are exactly its current lineage rows' files, with
 * their row counts and sizes.
 */
async function duckLakeProblems(
  catalog: Parameters<typeof duckLakeState>[0],
  ds: DatasetRef,
): Promise<string[]> {
  const state = await duckLakeState(catalog, ds.id, ds);
  if (ds.retiredAt) {
    return state.tableId === null
      ? []
      : [`DuckLake table ${state.name} is live, but the dataset is retired`];
  }
  if (state.tableId === null) {
    return [`no DuckLake table: readers do not see its ${state.disagreements.length} partition(s)`];
  }
  return state.disagreements.map((d) => {
    const table = `DuckLake table ${state.name}`;
    if (!d.file) {
      return `lineage ${d.lineageId} (${d.path}): ${table} has no live file there`;
    }
    if (!d.lineage) {
      return `${table} file ${d.dataFileId} (${d.path}, ${d.file.rows} rows): no current lineage row records it`;
    }
    return `lineage ${d.lineageId} (${d.path}): ${table} records ${d.file.rows} rows, ` +
      `${d.file.bytes} bytes; lineage ${d.lineage.rows} rows, ${d.lineage.bytes} bytes`;
  });
}
