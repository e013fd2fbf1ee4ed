/**
 * `bronze catalog rebuild`: recreates a lost catalog from storage alone. Lists the storage root
 * once, reads every partition's `_manifest.json` and hashes its file against it (a bounded number
 * at a time), and records each dataset's missing lineage rows, with their quality rows and one
 * `_meta_changes` row, in one catalog transaction (lib/metadata/rebuild.ts).
 *
 * Into an empty catalog this recreates the lineage the lost one held: every column but the id,
 * with created_at the manifest's (which the copy gave the row too). Into a catalog that holds rows
 * it adds only what is missing: a partition already recorded with the same checksum is "present";
 * one whose range a recorded row overlaps with other bytes is a conflict, reported and left alone.
 * A file that fails its manifest (missing, other size, other sha256) is reported, never recorded.
 * Partials a compaction replaced (gc has not deleted them yet) lie inside the full partition that
 * replaced them: the full one is recorded, they are named and not (their history is lost with the
 * catalog; gc deletes their files as it would any unrecorded partition).
 *
 * Manifests written before manifest_version 2 lack fields; what they lack is derived and said:
 * the dataset and storage_path from the key, the schema hash from the file's Parquet schema, the
 * hash-chain ends and commit-time quality metrics from its rows. Their source is not knowable:
 * source_type and source_location stay NULL.
 */
import { join } from "node:path";
import type { Logger } from "../runtime/log.ts";
import { pool } from "../runtime/pool.ts";
import { Progress } from "../runtime/progress.ts";
import { stopwatch } from "../runtime/time.ts";
import { datasetFilterOf, type SettingsOf } from "../settings/mod.ts";
import { type ObjectStore, objectUrl, openStore, type StoreUrl, toStoreUrl } from "../blob/mod.ts";
import { ConfigError } from "../runtime/errors.ts";
import { existingDir, onDisk } from "../settings/probe.ts";
import { findDatasets } from "../metadata/coverage.ts";
import { DEFAULT_STORAGE, PlacementError } from "../copy/placement.ts";
import { runRetrier } from "../runtime/retry.ts";
import type { Catalog } from "../metadata/catalog.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { type DatasetIdentity, datasetLabel, identityKey } from "../table/dataset.ts";
import type { ManifestField } from "../table/manifest_check.ts";
import {
  checkPartition,
  type PartitionFailure,
  type PartitionNote,
  type Sound,
} from "./rebuild_check.ts";
import { byRange } from "./rebuild_classify.ts";
import { listPartitions, MANIFEST } from "./rebuild_list.ts";
import { recordDataset, type Recorded } from "./rebuild_record.ts";

export type { PartitionFailure, PartitionNote, RebuildCheck } from "./rebuild_check.ts";

/** What a rebuild reads: the command's settings but its output format. */
export type RebuildOptions = Omit<SettingsOf<"catalogRebuild">, "json" | "logFormat"> & {
  /** Manifests read and files hashed at once (default DEFAULT_CONCURRENCY). */
  concurrency?: number;
};

export const DEFAULT_CONCURRENCY = 16;

/** What an older manifest lacked and the rebuild took from storage instead. */
export type DerivedField = ManifestField;

/** One dataset's outcome: what was recorded, and every partition that was not, with why. */
export interface DatasetRebuild extends DatasetIdentity, Omit<Recorded, "add" | "gone"> {
  label: string;
  failed: PartitionFailure[];
  /** Partition files without a manifest: never committed (a copy of their range adopts them). */
  unmanifested: PartitionNote[];
  /** How many of the dataset's sound partitions had each field derived from storage. */
  derived: Partial<Record<DerivedField, number>>;
}

export interface RebuildResult {
  storage: string;
  catalog: string;
  /** Manifests read. */
  manifests: number;
  /** Bytes of partition files hashed. */
  bytes: number;
  seconds: number;
  /** Seconds spent listing storage, reading and checking partitions, and writing the catalog. */
  phases: { list: number; check: number; record: number };
  datasets: DatasetRebuild[];
}

/** Lists storage, checks every manifested partition, then records each dataset's (named steps). */
export async function rebuild(opts: RebuildOptions, log: Logger): Promise<RebuildResult> {
  const started = performance.now();
  let store: ObjectStore | undefined;
  let catalog: Catalog | undefined;
  const progress = new Progress(log, opts.progressInterval);
  try {
    catalog = await openReadyCatalog({
      dsn: opts.catalog,
      stateDir: opts.stateDir,
      log: (m) => log.info("catalog", m),
    });
    // A --storage given was checked with the settings; the datasets' recorded root is, here.
    const storage = opts.storage ?? await recordedRoot(catalog, opts);
    const missing = opts.storage ? undefined : onDisk(existingDir)(storage);
    if (missing) throw new ConfigError([`storage ${missing}`]);
    const opened = store = openStore(storage, {
      area: "storage",
      retry: runRetrier(opts.retryFor, log),
    });
    const lap = stopwatch();
    const { partitions, unmanifested, datasets } = await listPartitions(
      store,
      datasetFilterOf(opts),
      log,
    );
    const list = lap();
    log.info(
      "rebuild",
      `found ${partitions.length} partition manifest(s) of ${datasets.size} dataset(s) under ${store.url}`,
    );
    progress.begin(partitions.reduce((n, s) => n + s.range.end - s.range.start + 1, 0));
    const tmpDir = join(opts.stateDir, "tmp");
    await Deno.mkdir(tmpDir, { recursive: true });
    let bytes = 0;
    const checked = await pool(partitions, opts.concurrency ?? DEFAULT_CONCURRENCY, async (s) => {
      const c = await checkPartition(opened, s, tmpDir);
      const size = "failure" in c ? 0 : c.row.byteSize;
      bytes += size;
      progress.add(s.range.end - s.range.start + 1, size);
      if ("failure" in c) log.warn("rebuild", `${c.failure.message}; not recorded`);
      return c;
    });
    const check = lap();

    const out: DatasetRebuild[] = [];
    for (const [id, ds] of datasets) {
      const mine = checked.filter((c) => identityKey(c.ds) === id);
      const failed = mine.flatMap((c) => "failure" in c ? [c.failure] : []);
      const sound = mine.filter((c): c is Sound => !("failure" in c));
      const derived: DatasetRebuild["derived"] = {};
      for (const s of sound) for (const f of s.derived) derived[f] = (derived[f] ?? 0) + 1;
      const recorded = await recordDataset(catalog, store, ds, sound, failed.length, log);
      const { add: _add, gone, ...outcome } = recorded;
      const result: DatasetRebuild = {
        ...ds,
        label: datasetLabel(ds),
        ...outcome,
        failed: [...failed, ...gone].sort(byRange),
        unmanifested: unmanifested
          .filter((u) => identityKey(u.ds) === id)
          .map((u) => {
            const uri = objectUrl(opened, u.file.key);
            return {
              ...u.range,
              uri,
              message: `${uri}: no ${MANIFEST} beside it (never committed; a copy of its range ` +
                `adopts it), not recorded`,
            };
          })
          .sort(byRange),
        derived,
      };
      logDataset(result, log);
      out.push(result);
    }
    return {
      storage: store.url,
      catalog: catalog.label,
      manifests: partitions.length,
      bytes,
      seconds: (performance.now() - started) / 1000,
      phases: { list, check, record: lap() },
      datasets: out,
    };
  } finally {
    progress.end();
    await store?.close?.();
    await catalog?.close();
  }
}

/**
 * Without --storage: the storage root the selected datasets were registered with, when they
 * agree on one (none registered: ./data); several roots need --storage to say which.
 */
async function recordedRoot(catalog: Catalog, opts: RebuildOptions): Promise<StoreUrl> {
  const roots = new Set(
    (await findDatasets(catalog, datasetFilterOf(opts))).map((d) => d.storageRoot)
      .filter((r): r is string => r !== null),
  );
  if (roots.size > 1) {
    throw new PlacementError(
      `the selected datasets are stored under ${[...roots].join(", ")}: give --storage ` +
        `(or a filter selecting datasets of one root)`,
    );
  }
  return toStoreUrl([...roots][0] ?? DEFAULT_STORAGE);
}

/** Each conflict, the compacted partials and the dataset's totals, on the log. */
function logDataset(d: DatasetRebuild, log: Logger): void {
  for (const c of d.conflicts) log.warn("rebuild", `${c.message}; not recorded`);
  if (d.compacted.length) {
    log.info(
      "rebuild",
      `${d.label}: ${d.compacted.length} partial partition(s) a compaction replaced, not ` +
        `recorded (gc deletes their files)`,
    );
  }
  if (d.schemaConflict) log.warn("rebuild", d.schemaConflict);
  log.info(
    "rebuild",
    `${d.label}: recorded ${d.recorded}, already present ${d.present}, ` +
      `conflicts ${d.conflicts.length + (d.schemaConflict ? 1 : 0)}, ` +
      `failed ${d.failed.length}`,
  );
}
