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
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { BronzeError } from "../runtime/errors.ts";
import { failpoint } from "../runtime/failpoint.ts";
import type { Logger } from "../runtime/log.ts";
import { Progress } from "../runtime/progress.ts";
import type { SettingsOf } from "../settings/mod.ts";
import { FileStore } from "../blob/file.ts";
import {
  hashObject,
  NotFoundError,
  type ObjectInfo,
  type ObjectStore,
  objectUrl,
  openStore,
} from "../blob/mod.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import type { Catalog } from "../metadata/catalog.ts";
import {
  type DatasetIdentity,
  heldDataset,
  LineageChangedError,
  type RebuiltRow,
  recordRebuild,
} from "../metadata/rebuild.ts";
import { datasetLabel, type LineageRow } from "../metadata/writer.ts";
import type { Range } from "../table/grid.ts";
import { parseManifest, type StoredManifest } from "../table/manifest.ts";
import { fileBuffer, parquetMetadataAsync, rowGroups } from "../table/reader.ts";
import { DOMAIN, schemaHashOf, TABLE, TABLE_DESCRIPTION } from "../table/schema.ts";
import { stopwatch } from "../runtime/time.ts";

/** What a rebuild reads: the command's settings but its output format. */
export type RebuildOptions = Omit<SettingsOf<"catalogRebuild">, "json" | "logFormat"> & {
  /** Manifests read and files hashed at once (default DEFAULT_CONCURRENCY). */
  concurrency?: number;
};

export const DEFAULT_CONCURRENCY = 16;

/** Why a partition was not recorded: its manifest, or its file against its manifest. */
export type RebuildCheck =
  | "manifest"
  | "missing"
  | "size"
  | "checksum"
  | "unreadable"
  | "ledger_range";

/** What an older manifest lacked and the rebuild took from storage instead. */
export type DerivedField =
  | "dataset"
  | "storage_path"
  | "schema_hash"
  | "hash_chain"
  | "quality"
  | "source"
  | "created_at";

export interface PartitionNote {
  start: number;
  end: number;
  uri: string;
  message: string;
}

export interface PartitionFailure extends PartitionNote {
  check: RebuildCheck;
}

export interface DatasetRebuild {
  domain: string;
  dataset: string;
  network: string;
  eraId: string;
  version: string;
  label: string;
  /** Catalog id (null: not registered, and nothing was recorded). */
  datasetId: number | null;
  /** Lineage rows recorded by this rebuild, and their ledgers. */
  recorded: number;
  recordedLedgers: number;
  /** Partitions the catalog already held with the same checksum. */
  present: number;
  conflicts: PartitionNote[];
  /**
   * Partial partitions a full one covers (a compaction replaced them, and gc has not yet deleted
   * their files): not recorded, the full one is.
   */
  compacted: PartitionNote[];
  /** The registered dataset's schema hash differs from its newest manifest's (left as it is). */
  schemaConflict: string | null;
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

/** The key of a stored partition object: its dataset's folders, its range, its name. */
const OBJECT_KEY = /^([^/]+)\/([^/]+)\/([^/]+)\/([^/]+)\/range=(\d+)-(\d+)\/([^/]+)$/;
const MANIFEST = "_manifest.json";
const CHECKSUM = /^sha256:[0-9a-f]{64}$/;
const HASH = /^[0-9a-f]{64}$/;

/** A partition folder found in the listing. */
interface Slot {
  ds: DatasetIdentity;
  range: Range;
  dir: string;
  manifest?: ObjectInfo;
  file?: ObjectInfo;
}

/** A partition whose file matched its manifest: the row to record. */
interface Sound {
  ds: DatasetIdentity;
  row: RebuiltRow;
  uri: string;
  /** The key of its manifest (the file's is row.storagePath). */
  manifestKey: string;
  schemaHash: string;
  derived: DerivedField[];
}

type Checked = Sound | { ds: DatasetIdentity; failure: PartitionFailure };

export async function rebuild(opts: RebuildOptions, log: Logger): Promise<RebuildResult> {
  const started = performance.now();
  const store = openStore(opts.storage);
  let catalog: Catalog | undefined;
  const progress = new Progress(log, opts.progressInterval);
  try {
    catalog = await openReadyCatalog({
      dsn: opts.catalog,
      stateDir: opts.stateDir,
      log: (m) => log.info("catalog", m),
    });
    const lap = stopwatch();
    const { slots, datasets } = await listSlots(store, opts, log);
    const list = lap();
    const withManifest = slots.filter((s) => s.manifest);
    log.info(
      "rebuild",
      `found ${withManifest.length} partition manifest(s) of ${datasets.size} dataset(s) under ${store.url}`,
    );
    progress.begin(withManifest.reduce((n, s) => n + s.range.end - s.range.start + 1, 0));
    const tmpDir = join(opts.stateDir, "tmp");
    await Deno.mkdir(tmpDir, { recursive: true });
    let bytes = 0;
    const checked = await pool(withManifest, opts.concurrency ?? DEFAULT_CONCURRENCY, async (s) => {
      const c = await checkSlot(store, s, tmpDir);
      const size = "failure" in c ? 0 : c.row.byteSize;
      bytes += size;
      progress.add(s.range.end - s.range.start + 1, size);
      if ("failure" in c) {
        log.warn("rebuild", `${c.failure.message}; not recorded`);
      }
      return c;
    });
    const check = lap();

    const out: DatasetRebuild[] = [];
    for (const [id, ds] of datasets) {
      const mine = checked.filter((c) => identityKey(c.ds) === id);
      const result = emptyResult(ds);
      for (const s of slots) {
        if (identityKey(s.ds) === id && !s.manifest && s.file) {
          const uri = objectUrl(store, s.file.key);
          result.unmanifested.push({
            start: s.range.start,
            end: s.range.end,
            uri,
            message: `${uri}: no ${MANIFEST} beside it (never committed; a copy of its range ` +
              `adopts it), not recorded`,
          });
        }
      }
      for (const c of mine) if ("failure" in c) result.failed.push(c.failure);
      result.failed.sort(byRange);
      result.unmanifested.sort(byRange);
      const sound = mine.filter((c): c is Sound => !("failure" in c));
      for (const s of sound) {
        for (const f of s.derived) result.derived[f] = (result.derived[f] ?? 0) + 1;
      }
      await recordDataset(catalog, store, ds, sound, result, log);
      out.push(result);
    }
    return {
      storage: store.url,
      catalog: catalog.label,
      manifests: withManifest.length,
      bytes,
      seconds: (performance.now() - started) / 1000,
      phases: { list, check, record: lap() },
      datasets: out,
    };
  } finally {
    progress.end();
    await store.close?.();
    await catalog?.close();
  }
}

/**
 * Lists the root once (under the longest prefix the filters fix) and groups the objects into
 * partition folders, keeping those of the `ledgers_lcm_raw` datasets the filters select.
 */
async function listSlots(
  store: ObjectStore,
  opts: RebuildOptions,
  log: Logger,
): Promise<{ slots: Slot[]; datasets: Map<string, DatasetIdentity> }> {
  const slots = new Map<string, Slot>();
  const datasets = new Map<string, DatasetIdentity>();
  if (opts.datasetFilter !== undefined && opts.datasetFilter !== TABLE) {
    return { slots: [], datasets };
  }
  const fixed = [opts.networkFilter, opts.eraFilter, opts.versionFilter];
  const prefix = fixed.findIndex((f) => f === undefined) === -1
    ? `${fixed.join("/")}/${TABLE}/`
    : fixed.slice(0, fixed.indexOf(undefined)).map((f) => `${f}/`).join("");
  log.info("rebuild", `listing ${prefix ? objectUrl(store, prefix) : store.url}`);
  for await (const obj of store.list(prefix)) {
    const m = OBJECT_KEY.exec(obj.key);
    if (!m) continue;
    const [, network, eraId, version, table, a, b, name] = m;
    if (table !== TABLE) continue;
    if (opts.networkFilter !== undefined && network !== opts.networkFilter) continue;
    if (opts.eraFilter !== undefined && eraId !== opts.eraFilter) continue;
    if (opts.versionFilter !== undefined && version !== opts.versionFilter) continue;
    const range = { start: Number(a), end: Number(b) };
    if (range.start < 1 || range.end < range.start) continue; // no partition's folder
    const isManifest = name === MANIFEST;
    if (!isManifest && name !== `part-${a}-${b}.parquet`) continue;
    const ds: DatasetIdentity = { domain: DOMAIN, dataset: TABLE, network, eraId, version };
    const dir = obj.key.slice(0, obj.key.length - name.length);
    let slot = slots.get(dir);
    if (!slot) slots.set(dir, slot = { ds, range, dir });
    if (isManifest) slot.manifest = obj;
    else slot.file = obj;
    datasets.set(identityKey(ds), ds);
  }
  return { slots: [...slots.values()], datasets };
}

/** Reads a partition's manifest and checks its file against it; derives what the manifest lacks. */
async function checkSlot(store: ObjectStore, slot: Slot, tmpDir: string): Promise<Checked> {
  const { ds, range } = slot;
  const key = slot.file?.key ?? `${slot.dir}part-${range.start}-${range.end}.parquet`;
  const uri = objectUrl(store, key);
  const manifestUri = objectUrl(store, slot.manifest!.key);
  const fail = (check: RebuildCheck, what: string): Checked => ({
    ds,
    failure: {
      start: range.start,
      end: range.end,
      uri,
      check,
      message: `partition ${range.start}-${range.end} of ${datasetLabel(ds)} (${uri}): ${what}`,
    },
  });
  let m: StoredManifest;
  try {
    m = parseManifest(await store.get(slot.manifest!.key), manifestUri);
  } catch (err) {
    // Gone since the listing, or not a manifest; anything else (the store failing) stops the run.
    if (!(err instanceof BronzeError)) throw err;
    return fail("manifest", (err as Error).message);
  }
  const problem = manifestProblem(m, slot, key);
  if (problem) return fail("manifest", `its manifest ${problem}`);
  const table = m.table as { checksum: string; rows: number; bytes: number };
  if (!slot.file) return fail("missing", `file not found beside its manifest ${manifestUri}`);
  if (slot.file.size !== table.bytes) {
    return fail("size", `file is ${slot.file.size} bytes, its manifest records ${table.bytes}`);
  }
  const derived: DerivedField[] = [];
  if (!m.dataset) derived.push("dataset");
  if (!m.partition?.storage_path) derived.push("storage_path");
  if (typeof m.dataset?.schema_hash !== "string") derived.push("schema_hash");
  const chain = typeof m.partition?.first_previous_ledger_hash === "string" &&
    typeof m.partition?.last_ledger_hash === "string";
  if (!chain) derived.push("hash_chain");
  const quality = m.quality && Object.keys(m.quality).length > 0 ? m.quality : null;
  if (!quality) derived.push("quality");
  if (!m.source) derived.push("source");
  const createdAt = typeof m.created_at === "string" ? new Date(m.created_at) : null;
  const created = createdAt && !Number.isNaN(createdAt.getTime()) ? createdAt : null;
  if (!created) derived.push("created_at");

  // The file is read only when the manifest lacks something it holds; a local one in place,
  // anything else through a temp copy made while hashing.
  const readRows = !chain || !quality || derived.includes("schema_hash");
  const localFile = store instanceof FileStore ? store.path(key) : null;
  const copy = readRows && !localFile
    ? join(tmpDir, `rebuild-${Deno.pid}-${crypto.randomUUID()}.parquet`)
    : null;
  try {
    let sha256: string;
    try {
      ({ sha256 } = await hashObject(store, key, copy));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      return fail("missing", `file not found (removed since the listing)`);
    }
    if (`sha256:${sha256}` !== table.checksum) {
      return fail(
        "checksum",
        `file hashes to sha256:${sha256}, its manifest records ${table.checksum}`,
      );
    }
    let facts: FileFacts | null = null;
    if (readRows) {
      try {
        facts = await fileFacts((copy ?? localFile)!);
      } catch (err) {
        return fail("unreadable", `not a readable Parquet file (${(err as Error).message})`);
      }
      const off = rangeProblem(facts, range);
      if (off) return fail("ledger_range", off);
    }
    return {
      ds,
      uri,
      manifestKey: slot.manifest!.key,
      schemaHash: m.dataset?.schema_hash ?? facts!.schemaHash,
      derived,
      row: {
        ledgerStart: range.start,
        ledgerEnd: range.end,
        rowCount: table.rows,
        byteSize: table.bytes,
        checksum: table.checksum,
        storagePath: key,
        storageUri: uri,
        firstPreviousLedgerHash: chain
          ? m.partition!.first_previous_ledger_hash!
          : facts!.firstPreviousLedgerHash,
        lastLedgerHash: chain ? m.partition!.last_ledger_hash! : facts!.lastLedgerHash,
        producerVersion: m.producer!.version!,
        producerGitSha: m.producer!.git_sha ?? null,
        sourceType: m.source?.type ?? null,
        sourceLocation: m.source?.location ?? null,
        createdAt: created ?? undefined,
        quality: (quality ?? facts!.quality) as Record<string, number>,
      },
    };
  } finally {
    if (copy) await rm(copy, { force: true });
  }
}

/** What makes a manifest unusable for its folder, or null. */
function manifestProblem(m: StoredManifest, slot: Slot, key: string): string | null {
  const { range, ds } = slot;
  const p = m.partition;
  if (p?.start !== range.start || p?.end !== range.end) {
    return `describes partition ${p?.start}-${p?.end}, not the range=${range.start}-${range.end} it lies in`;
  }
  if (p.table !== undefined && p.table !== TABLE) return `names table ${p.table}, not ${TABLE}`;
  const file = key.slice(key.lastIndexOf("/") + 1);
  if (p.file !== undefined && p.file !== file) return `names file ${p.file}, not ${file}`;
  if (p.storage_path !== undefined && p.storage_path !== key) {
    return `names storage_path ${p.storage_path}, not ${key}`;
  }
  const d = m.dataset;
  if (
    d && (d.domain !== DOMAIN || d.dataset !== TABLE || d.network !== ds.network ||
      d.era_id !== ds.eraId || d.version !== ds.version)
  ) {
    return `names dataset ${d.domain}.${d.dataset} (${d.network}/${d.era_id}/${d.version}), ` +
      `not the ${datasetLabel(ds)} it lies in`;
  }
  const t = m.table;
  if (typeof t?.checksum !== "string" || !CHECKSUM.test(t.checksum)) {
    return `records no sha256 checksum (table.checksum ${JSON.stringify(t?.checksum)})`;
  }
  if (!Number.isSafeInteger(t.bytes) || t.bytes! < 0) {
    return `records no byte size (table.bytes ${JSON.stringify(t.bytes)})`;
  }
  if (t.rows !== range.end - range.start + 1) {
    return `records ${t.rows} rows for the ${range.end - range.start + 1} ledgers of its range`;
  }
  if (typeof m.producer?.version !== "string" || m.producer.version.length > 64) {
    return `records no producer.version of at most 64 characters (${
      JSON.stringify(m.producer?.version)
    })`;
  }
  // What the catalog's columns take, so one bad manifest cannot fail its dataset's transaction.
  const wrong = (what: string, value: unknown) => `records ${what} ${JSON.stringify(value)}`;
  const gitSha = m.producer.git_sha;
  if (
    gitSha !== undefined && gitSha !== null && (typeof gitSha !== "string" || gitSha.length > 64)
  ) {
    return wrong("a producer.git_sha that is not a string of at most 64 characters:", gitSha);
  }
  for (const key of ["first_previous_ledger_hash", "last_ledger_hash"] as const) {
    if (p[key] !== undefined && !HASH.test(String(p[key]))) {
      return wrong(`a partition.${key} that is not 64 hex digits:`, p[key]);
    }
  }
  if (d?.schema_hash !== undefined && !HASH.test(String(d.schema_hash))) {
    return wrong("a dataset.schema_hash that is not 64 hex digits:", d.schema_hash);
  }
  for (const [name, value] of Object.entries(m.quality ?? {})) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return wrong(`quality metric ${name} that is not a number:`, value);
    }
  }
  const s = m.source;
  if (
    s !== undefined &&
    (typeof s?.type !== "string" || s.type.length > 32 || typeof s.location !== "string")
  ) {
    return wrong("a source that is not {type, location} strings:", s);
  }
  return null;
}

/** What a partition file's rows and schema say (for a manifest that does not). */
interface FileFacts {
  schemaHash: string;
  rows: number;
  first: number;
  last: number;
  /** Ledgers out of sequence (0: first..last contiguous). */
  gaps: number;
  firstPreviousLedgerHash: string;
  lastLedgerHash: string;
  /** The commit-time metrics, as lib/copy/build.ts computes them. */
  quality: Record<string, number>;
}

const FACT_COLUMNS = [
  "ledger_sequence",
  "ledger_hash",
  "previous_ledger_hash",
  "close_time",
  "tx_count",
  "operation_count",
  "xdr_byte_length",
] as const;

async function fileFacts(path: string): Promise<FileFacts> {
  const fh = await open(path, "r");
  try {
    const file = await fileBuffer(fh);
    const metadata = await parquetMetadataAsync(file);
    let rows = 0, gaps = 0, chainBreaks = 0, txs = 0, ops = 0, xdrBytes = 0;
    let first = 0, last = 0, firstClose = 0, lastClose = 0;
    let firstPrev = "", lastHash = "";
    for await (const group of rowGroups(file, metadata, FACT_COLUMNS)) {
      for (const r of group) {
        const seq = Number(r.ledger_sequence);
        if (rows === 0) {
          first = seq;
          firstPrev = r.previous_ledger_hash;
          firstClose = r.close_time.getTime();
        } else {
          if (seq !== last + 1) gaps++;
          if (r.previous_ledger_hash !== lastHash) chainBreaks++;
        }
        rows++;
        last = seq;
        lastHash = r.ledger_hash;
        lastClose = r.close_time.getTime();
        txs += r.tx_count;
        ops += r.operation_count;
        xdrBytes += r.xdr_byte_length;
      }
    }
    return {
      schemaHash: schemaHashOf(metadata.schema.slice(1)),
      rows,
      first,
      last,
      gaps,
      firstPreviousLedgerHash: firstPrev,
      lastLedgerHash: lastHash,
      quality: {
        row_count: rows,
        row_count_matches_range: 1,
        chain_intact: chainBreaks === 0 ? 1 : 0,
        first_close_time_ms: firstClose,
        last_close_time_ms: lastClose,
        tx_count: txs,
        operation_count: ops,
        xdr_bytes: xdrBytes,
      },
    };
  } finally {
    await fh.close();
  }
}

function rangeProblem(f: FileFacts, r: Range): string | null {
  if (f.rows === 0) return `file holds no rows, its range is ${r.start}-${r.end}`;
  if (f.first !== r.start || f.last !== r.end || f.gaps > 0 || f.rows !== r.end - r.start + 1) {
    return `file holds ${f.rows} rows, ledgers ${f.first}-${f.last}${
      f.gaps ? ` with ${f.gaps} break(s) in sequence` : ""
    }, not the ledgers ${r.start}-${r.end} of its range`;
  }
  return null;
}

/**
 * Classifies the sound partitions of one dataset against what the catalog holds and records the
 * missing ones in one transaction; when a copier records rows meanwhile, reads again and retries.
 */
async function recordDataset(
  catalog: Catalog,
  store: ObjectStore,
  ds: DatasetIdentity,
  sound: Sound[],
  result: DatasetRebuild,
  log: Logger,
): Promise<void> {
  const label = datasetLabel(ds);
  const root = store.url;
  for (let attempt = 1;; attempt++) {
    const held = await heldDataset(catalog, ds);
    const { add, present, conflicts, compacted } = classify(sound, held?.lineage ?? [], label);
    result.datasetId = held?.id ?? null;
    result.present = present;
    result.conflicts = conflicts;
    result.compacted = compacted;
    // The dataset's schema hash is the newest partition's (a copy registers its own).
    const newest = [...sound].sort((a, b) =>
      (a.row.createdAt?.getTime() ?? 0) - (b.row.createdAt?.getTime() ?? 0) ||
      a.row.ledgerStart - b.row.ledgerStart
    ).at(-1);
    result.schemaConflict = held && newest && held.schemaHash !== newest.schemaHash
      ? `${label} is registered with schema hash ${held.schemaHash}, its newest partition's ` +
        `manifest says ${newest.schemaHash}; left as it is`
      : null;
    if (add.length === 0) break;
    const ledgers = add.reduce((n, s) => n + s.row.rowCount, 0);
    const description = `catalog rebuild from ${root}: ${add.length} lineage row(s) ` +
      `(${ledgers} ledgers between ${add[0].row.ledgerStart} and ${
        add.at(-1)!.row.ledgerEnd
      }) recorded ` +
      `from their _manifest.json; ${present} already present, ${conflicts.length} in conflict, ` +
      `${result.failed.length} failed their check`;
    await failpoint("rebuild-record");
    try {
      result.datasetId = await recordRebuild(
        catalog,
        { ...ds, schemaHash: newest!.schemaHash, description: TABLE_DESCRIPTION },
        add.map((s) => s.row),
        description,
        () => stillStored(store, add),
      );
      result.recorded = add.length;
      result.recordedLedgers = ledgers;
      break;
    } catch (err) {
      if (err instanceof GoneError) {
        // Deleted since they were checked (gc judged them unrecorded): not recorded.
        for (const s of err.gone) {
          const failure: PartitionFailure = {
            start: s.row.ledgerStart,
            end: s.row.ledgerEnd,
            uri: s.uri,
            check: "missing",
            message: `partition ${s.row.ledgerStart}-${s.row.ledgerEnd} of ${label} (${s.uri}): ` +
              `its file or manifest was deleted while the rebuild ran (by bronze gc?)`,
          };
          result.failed.push(failure);
          log.warn("rebuild", `${failure.message}; not recorded`);
        }
        result.failed.sort(byRange);
        sound = sound.filter((s) => !err.gone.includes(s));
        continue;
      }
      if (!(err instanceof LineageChangedError) || attempt >= 3) throw err;
      log.info("rebuild", `${err.message}; reading it again`);
    }
  }
  for (const c of result.conflicts) log.warn("rebuild", `${c.message}; not recorded`);
  if (result.compacted.length) {
    log.info(
      "rebuild",
      `${label}: ${result.compacted.length} partial partition(s) a compaction replaced, not ` +
        `recorded (gc deletes their files)`,
    );
  }
  if (result.schemaConflict) log.warn("rebuild", result.schemaConflict);
  log.info(
    "rebuild",
    `${label}: recorded ${result.recorded}, already present ${result.present}, ` +
      `conflicts ${result.conflicts.length + (result.schemaConflict ? 1 : 0)}, ` +
      `failed ${result.failed.length}`,
  );
}

/**
 * Each sound partition against the catalog's rows (ledger order, never overlapping): the same
 * range with the same checksum is present; one inside a larger recorded row that is stored too is a
 * compacted partial (the row replaced it); any other overlap is a conflict. Of the rest, a run that overlaps each
 * other is a compaction's leftovers when one partition spans the whole run (it is added, the
 * partials inside it are not); otherwise all of the run are conflicts (the catalog held at most
 * one of them, and which is not knowable). The others are added, in ledger order.
 */
function classify(
  sound: Sound[],
  held: LineageRow[],
  label: string,
): { add: Sound[]; present: number; conflicts: PartitionNote[]; compacted: PartitionNote[] } {
  const conflicts: PartitionNote[] = [];
  const compacted: PartitionNote[] = [];
  const note = (s: Sound, what: string): PartitionNote => ({
    start: s.row.ledgerStart,
    end: s.row.ledgerEnd,
    uri: s.uri,
    message: `partition ${s.row.ledgerStart}-${s.row.ledgerEnd} of ${label} (${s.uri}): ${what}`,
  });
  const conflict = (s: Sound, what: string) => conflicts.push(note(s, what));
  const covered = (s: Sound, by: Range) =>
    compacted.push(
      note(s, `inside ${by.start}-${by.end}, the full partition a compaction replaced it with`),
    );
  const stored = (r: LineageRow) =>
    sound.some((o) =>
      o.row.ledgerStart === r.ledgerStart && o.row.ledgerEnd === r.ledgerEnd &&
      o.row.checksum === r.checksum
    );
  let present = 0;
  const fresh: Sound[] = [];
  for (const s of [...sound].sort((a, b) => a.row.ledgerStart - b.row.ledgerStart)) {
    const { ledgerStart: start, ledgerEnd: end, checksum } = s.row;
    const over = overlapping(held, start, end);
    const only = over.length === 1 ? over[0] : null;
    if (over.length === 0) fresh.push(s);
    else if (only && only.ledgerStart === start && only.ledgerEnd === end) {
      if (only.checksum === checksum) present++;
      else {
        conflict(
          s,
          `the catalog records this range with ${only.checksum} (lineage id ${only.id}), ` +
            `the stored file and its manifest are ${checksum}`,
        );
      }
    } else if (only && only.ledgerStart <= start && end <= only.ledgerEnd && stored(only)) {
      covered(s, { start: only.ledgerStart, end: only.ledgerEnd });
    } else {
      conflict(
        s,
        `overlaps recorded partition${over.length === 1 ? "" : "s"} ` +
          over.map((r) => `${r.ledgerStart}-${r.ledgerEnd} (lineage id ${r.id})`).join(", "),
      );
    }
  }
  const add: Sound[] = [];
  for (let i = 0; i < fresh.length;) {
    // A run of partitions each overlapping the run so far.
    let j = i + 1;
    let end = fresh[i].row.ledgerEnd;
    while (j < fresh.length && fresh[j].row.ledgerStart <= end) {
      end = Math.max(end, fresh[j].row.ledgerEnd);
      j++;
    }
    const run = fresh.slice(i, j);
    const start = fresh[i].row.ledgerStart;
    const spanning = run.find((s) => s.row.ledgerStart === start && s.row.ledgerEnd === end);
    if (run.length === 1) add.push(run[0]);
    else if (spanning) {
      add.push(spanning);
      for (const s of run) if (s !== spanning) covered(s, { start, end });
    } else {
      for (const s of run) {
        conflict(
          s,
          `overlaps ${
            run.filter((o) =>
              o !== s && o.row.ledgerStart <= s.row.ledgerEnd &&
              s.row.ledgerStart <= o.row.ledgerEnd
            ).map((o) => `${o.row.ledgerStart}-${o.row.ledgerEnd}`).join(", ")
          }, also in storage with a manifest: the catalog can hold only one, and which is not known`,
        );
      }
    }
    i = j;
  }
  conflicts.sort(byRange);
  compacted.sort(byRange);
  return { add, present, conflicts, compacted };
}

/** Partitions whose file or manifest is no longer stored. */
class GoneError extends BronzeError {
  constructor(readonly gone: Sound[]) {
    super(`${gone.length} partition(s) deleted meanwhile`);
  }
}

/**
 * Under the dataset's sweep lock (recordRebuild): each partition to record still has its file and
 * manifest. gc may have deleted some since they were checked, when they were unrecorded.
 */
async function stillStored(store: ObjectStore, add: Sound[]): Promise<void> {
  const there = await pool(
    add,
    DEFAULT_CONCURRENCY,
    async (s) =>
      (await store.head(s.row.storagePath)) !== null && (await store.head(s.manifestKey)) !== null,
  );
  const gone = add.filter((_, i) => !there[i]);
  if (gone.length) throw new GoneError(gone);
}

/** The rows of `held` (sorted, disjoint) sharing a ledger with [start, end]. */
function overlapping(held: LineageRow[], start: number, end: number): LineageRow[] {
  let lo = 0, hi = held.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (held[mid].ledgerEnd < start) lo = mid + 1;
    else hi = mid;
  }
  const out: LineageRow[] = [];
  for (let i = lo; i < held.length && held[i].ledgerStart <= end; i++) out.push(held[i]);
  return out;
}

/** Ledger order, the shorter first when two start together. */
function byRange(a: Range, b: Range): number {
  return a.start - b.start || a.end - b.end;
}

function emptyResult(ds: DatasetIdentity): DatasetRebuild {
  return {
    ...ds,
    label: datasetLabel(ds),
    datasetId: null,
    recorded: 0,
    recordedLedgers: 0,
    present: 0,
    conflicts: [],
    compacted: [],
    schemaConflict: null,
    failed: [],
    unmanifested: [],
    derived: {},
  };
}

function identityKey(ds: DatasetIdentity): string {
  return [ds.domain, ds.dataset, ds.network, ds.eraId, ds.version].join("\u0000");
}

/**
 * `fn` over `items`, at most `limit` at once; results in the items' order. The first error stops
 * the taking of new items and is thrown once those in hand have settled.
 */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]);
      } catch (err) {
        next = items.length;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return out;
}
