/**
 * `bronze repair`: brings the stored files back to what the catalog says. For every lineage row
 * whose file is missing, or whose bytes are not the ones recorded (size or sha256), the partition
 * is rebuilt from the source. bronze's Parquet is deterministic, so the rebuilt bytes must hash to
 * the recorded checksum: only then are they published — in place of a missing file (only if
 * still absent), or of a corrupt one (only if it is still the very object found corrupt: a
 * precondition on its version, so two repairs never clobber each other). This is the one place a
 * stored object is ever replaced. When the rebuilt bytes differ, nothing is written and both
 * checksums are reported. Lineage rows never change; each repair adds a `correction` change and
 * a `repaired` quality row.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError, fsError } from "../runtime/errors.ts";
import { failpoint } from "../runtime/failpoint.ts";
import type { Logger } from "../runtime/log.ts";
import { Progress } from "../runtime/progress.ts";
import { datasetFilterOf, type SettingsOf } from "../settings/mod.ts";
import {
  hashObject,
  type ObjectStore,
  objectUrl,
  OutsideRootError,
  PreconditionFailedError,
} from "../blob/mod.ts";
import { buildPartitionFile } from "../copy/build.ts";
import { findDatasets } from "../metadata/coverage.ts";
import { duckLakeState, reconcileTable } from "../metadata/ducklake.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, type LineageRow } from "../metadata/writer.ts";
import { openSource } from "../source/mod.ts";
import type { LedgerSource } from "../source/source.ts";
import { isNetwork } from "../source/network.ts";
import { Stores } from "../verify/locate.ts";
import { storageOf } from "../copy/placement.ts";
import { runRetrier } from "../runtime/retry.ts";

/** What repair reads: the repair command's settings but its output format. */
export type RepairOptions = Omit<SettingsOf<"repair">, "json" | "logFormat">;

export type RepairOutcome =
  /** The file was missing: recreated. */
  | "restored"
  /** The file's bytes were not the recorded ones: replaced. */
  | "replaced"
  /** The rebuilt bytes differ from the recorded checksum: nothing written. */
  | "mismatch"
  /** Someone else changed the object while this repair ran: nothing written. */
  | "raced"
  /** Its path leads out of the storage root (a symbolic link): left alone, neither read nor written. */
  | "outside";

export interface Repair {
  dataset: string;
  lineageId: number;
  start: number;
  end: number;
  uri: string;
  /** Why it needed repair: missing, size or checksum; or why it was left alone (outside). */
  problem: "missing" | "size" | "checksum" | "outside";
  outcome: RepairOutcome;
  recorded: string;
  /** sha256 of the rebuilt bytes (null: not rebuilt). */
  rebuilt: string | null;
  message: string;
}

export interface RepairResult {
  checked: number;
  /** Files found sound. */
  sound: number;
  repairs: Repair[];
  /** Datasets whose DuckLake rows disagreed with their lineage, brought back to it. */
  ducklake: { dataset: string; disagreements: number; snapshots: number[] }[];
  seconds: number;
}

export async function repair(opts: RepairOptions, log: Logger): Promise<RepairResult> {
  const started = performance.now();
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
    stateDir: opts.stateDir,
    mustExist: true,
    log: (m) => log.info("catalog", m),
  });
  const retry = runRetrier(opts.retryFor, log);
  const stores = new Stores(opts.storageRoot, retry);
  const sources = new Map<string, Promise<LedgerSource>>();
  const tmpDir = join(opts.stateDir, "tmp");
  const progress = new Progress(log, opts.progressInterval);
  const result: RepairResult = { checked: 0, sound: 0, repairs: [], ducklake: [], seconds: 0 };
  try {
    await mkdir(tmpDir, { recursive: true }).catch((e) => {
      throw fsError(e, { path: tmpDir, writing: true, dir: tmpDir });
    });
    const writer = new CatalogWriter(catalog);
    const datasets = await findDatasets(catalog, datasetFilterOf(opts));
    // Repair writes into a dataset's storage: a --storage that is not its root is refused.
    if (opts.storageRoot !== undefined) {
      for (const ds of datasets) storageOf(ds, { storage: opts.storageRoot });
    }
    // The DuckLake rows first: they are the catalog's own, and need no source.
    for (const ds of datasets) {
      const state = await duckLakeState(catalog, ds.id, ds);
      const live = state.tableId !== null;
      if (ds.retiredAt ? !live : live && state.disagreements.length === 0) continue;
      const snapshots = await reconcileTable(catalog, ds.id, ds, ds.storageRoot, "bronze repair");
      result.ducklake.push({
        dataset: ds.label,
        disagreements: state.disagreements.length,
        snapshots,
      });
      log.info(
        "repair",
        `${ds.label}: DuckLake table ${state.name} brought back to the lineage ` +
          `(${state.disagreements.length} file(s) disagreed${live ? "" : ", table registered"}; ` +
          `snapshot${snapshots.length === 1 ? "" : "s"} ${snapshots.join(", ")})`,
      );
    }
    const work = [];
    for (const ds of datasets) {
      const rows = await writer.listLineage(ds.id, { start: opts.start, end: opts.end });
      if (rows.length) work.push({ ds, rows });
    }
    progress.begin(work.reduce((n, w) => n + w.rows.reduce((m, r) => m + r.rowCount, 0), 0));
    for (const { ds, rows } of work) {
      if (!isNetwork(ds.network)) {
        throw new BronzeError(`dataset ${ds.label}: unknown network ${ds.network}`);
      }
      const network = ds.network;
      const source = () => {
        if (!sources.has(network)) sources.set(network, openSource(opts.source, network, retry));
        return sources.get(network)!;
      };
      for (const row of rows) {
        result.checked++;
        const { store, key } = stores.locate(row);
        let found: Found;
        try {
          found = await inspect(store, key, row);
        } catch (err) {
          if (!(err instanceof OutsideRootError)) throw err;
          result.repairs.push({
            dataset: ds.label,
            lineageId: row.id,
            start: row.ledgerStart,
            end: row.ledgerEnd,
            uri: objectUrl(store, key),
            problem: "outside",
            outcome: "outside",
            recorded: row.checksum,
            rebuilt: null,
            message: `partition ${row.ledgerStart}-${row.ledgerEnd}: ${err.message}`,
          });
          log.warn("repair", err.message);
          continue;
        }
        progress.add(found.problem ? 0 : row.rowCount, 0);
        if (!found.problem) {
          result.sound++;
          continue;
        }
        const uri = objectUrl(store, key);
        log.warn(
          "repair",
          `partition ${row.ledgerStart}-${row.ledgerEnd} of ${ds.label} (${uri}): ${found.problem}; rebuilding it from ${opts.source.url}`,
        );
        const done = await rebuild(await source(), store, key, row, found, {
          tmpDir,
          meta: { bronzeVersion: ds.version, eraId: ds.eraId, network: ds.network },
          progress,
        });
        const r: Repair = {
          dataset: ds.label,
          lineageId: row.id,
          start: row.ledgerStart,
          end: row.ledgerEnd,
          uri,
          problem: found.problem,
          ...done,
        };
        result.repairs.push(r);
        if (r.outcome === "restored" || r.outcome === "replaced") {
          await writer.recordRepair(
            row,
            `bronze repair ${r.outcome} ${uri} (${r.problem}) from ${opts.source.url}: ` +
              `rebuilt bytes hash to the recorded ${row.checksum}`,
          );
          log.info("repair", r.message);
        } else {
          log.warn("repair", r.message);
        }
      }
    }
  } finally {
    progress.end();
    for (const s of sources.values()) await (await s.catch(() => null))?.close?.();
    await stores.close();
    await catalog.close();
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

interface Found {
  problem: Repair["problem"] | null;
  /** The object's version when it was found corrupt (the replacement's precondition). */
  version: string | null;
}

/** Is the stored file there, with the recorded size and sha256? */
async function inspect(store: ObjectStore, key: string, row: LineageRow): Promise<Found> {
  const head = await store.head(key);
  if (head === null) return { problem: "missing", version: null };
  const { sha256, bytes } = await hashObject(store, key);
  if (bytes !== row.byteSize) return { problem: "size", version: head.version };
  if (`sha256:${sha256}` !== row.checksum) return { problem: "checksum", version: head.version };
  // Hashed after the head: it may have changed between. Rare, and the replace checks again.
  return { problem: null, version: head.version };
}

async function rebuild(
  source: LedgerSource,
  store: ObjectStore,
  key: string,
  row: LineageRow,
  found: Found,
  ctx: {
    tmpDir: string;
    meta: { bronzeVersion: string; eraId: string; network: string };
    progress: Progress;
  },
): Promise<Pick<Repair, "outcome" | "recorded" | "rebuilt" | "message">> {
  const path = join(ctx.tmpDir, `repair-${Deno.pid}-${row.ledgerStart}-${row.ledgerEnd}.parquet`);
  const what = `partition ${row.ledgerStart}-${row.ledgerEnd} (${objectUrl(store, key)})`;
  try {
    const built = await buildPartitionFile(
      source,
      { start: row.ledgerStart, end: row.ledgerEnd },
      path,
      ctx.meta,
      { stopped: () => false, progress: (n, b) => ctx.progress.add(n, b) },
    );
    const rebuilt = `sha256:${built!.sha256}`;
    if (rebuilt !== row.checksum) {
      return {
        outcome: "mismatch",
        recorded: row.checksum,
        rebuilt,
        message: `${what}: the source now gives other bytes (rebuilt ${rebuilt}, lineage ` +
          `records ${row.checksum}); nothing written`,
      };
    }
    await failpoint("before-replace");
    try {
      if (found.version === null) {
        if (await store.putIfAbsent(key, { file: path }) === "exists") {
          // Someone restored it meanwhile: fine if those are the recorded bytes.
          const now = await hashObject(store, key);
          if (`sha256:${now.sha256}` !== row.checksum) {
            throw new PreconditionFailedError(objectUrl(store, key));
          }
        }
        return {
          outcome: "restored",
          recorded: row.checksum,
          rebuilt,
          message: `${what}: restored (${rebuilt})`,
        };
      }
      await store.putIfVersion(key, { file: path }, found.version);
      return {
        outcome: "replaced",
        recorded: row.checksum,
        rebuilt,
        message: `${what}: replaced the corrupt file (${rebuilt})`,
      };
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      return {
        outcome: "raced",
        recorded: row.checksum,
        rebuilt,
        message:
          `${what}: changed by another writer while this repair ran; nothing written (run repair again)`,
      };
    }
  } finally {
    await rm(path, { force: true });
  }
}
