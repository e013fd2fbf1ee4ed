/**
 * `bronze verify`: re-reads stored partitions and checks each against its lineage row.
 *
 * Per partition: the object exists; its size and sha256 match the row; its Parquet row count and
 * ledger range match (first/last ledger_sequence, contiguous); every row's xdr_sha256 is the
 * sha256 of its xdr_bytes; each ledger's previous_ledger_hash is the ledger before's ledger_hash;
 * the file's first previous hash and last hash are the row's first_previous_ledger_hash and
 * last_ledger_hash; and across adjacent partitions the lineage columns link up.
 *
 * Memory stays bounded whatever the file size: a remote object is streamed to a temp file (a
 * local one is read in place), hashed as it streams, and the Parquet file is read one row group
 * at a time through positional reads.
 */
import { createHash } from "node:crypto";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type AsyncBuffer,
  type FileMetaData,
  parquetMetadataAsync,
  parquetReadObjects,
} from "hyparquet";
import type { Logger } from "../log.ts";
import { objectUrl, openStore } from "../blob/mod.ts";
import type { ObjectStore } from "../blob/store.ts";
import { FileStore } from "../blob/file.ts";
import { findDatasets } from "../metadata/coverage.ts";
import { openReadyCatalog } from "../metadata/migrate.ts";
import { CatalogWriter, type LineageRow } from "../metadata/writer.ts";
import type { Network } from "../source/network.ts";
import { Progress } from "../progress.ts";
import { hashObject } from "../copy/publish.ts";
import { READ_OPTIONS } from "../table/parquet.ts";

export interface VerifyOptions {
  catalog?: string;
  stateDir: string;
  /** Root to read partitions from (plus each row's storage_path); default: each storage_uri. */
  storageRoot?: string;
  networkFilter?: Network;
  eraFilter?: string;
  versionFilter?: string;
  datasetFilter?: string;
  start?: number;
  end?: number;
  /** Seconds between plain progress lines when not on a terminal; 0 or absent: none. */
  progressInterval?: number;
}

export type CheckName =
  | "missing"
  | "unreadable"
  | "size"
  | "checksum"
  | "row_count"
  | "ledger_range"
  | "xdr_sha256"
  | "chain"
  | "chain_link"
  | "first_previous_ledger_hash"
  | "last_ledger_hash";

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

export interface VerifyResult {
  partitions: number;
  passed: number;
  failed: number;
  ledgers: number;
  /** Bytes of partition files read. */
  bytes: number;
  seconds: number;
  failures: VerifyFailure[];
}

/** Columns verify reads; the rest of the row is not needed to check it. */
const COLUMNS = [
  "ledger_sequence",
  "ledger_hash",
  "previous_ledger_hash",
  "xdr_bytes",
  "xdr_sha256",
];

interface CheckRow {
  ledger_sequence: bigint;
  ledger_hash: string;
  previous_ledger_hash: string;
  xdr_bytes: Uint8Array;
  xdr_sha256: string;
}

export async function verify(opts: VerifyOptions, log: Logger): Promise<VerifyResult> {
  const catalog = await openReadyCatalog({
    dsn: opts.catalog,
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
  };
  const stores = new Map<string, ObjectStore>();
  const storeFor = (root: string) => {
    let s = stores.get(root);
    if (!s) stores.set(root, s = openStore(root));
    return s;
  };
  const tmpDir = join(opts.stateDir, "tmp");
  const progress = new Progress(log, opts.progressInterval ?? 0);
  try {
    const writer = new CatalogWriter(catalog);
    const datasets = await findDatasets(catalog.pool, {
      network: opts.networkFilter,
      eraId: opts.eraFilter,
      version: opts.versionFilter,
      dataset: opts.datasetFilter,
    });
    const work: { label: string; datasetId: number; rows: LineageRow[] }[] = [];
    for (const ds of datasets) {
      const rows = await writer.listLineage(ds.id, { start: opts.start, end: opts.end });
      if (rows.length) work.push({ label: ds.label, datasetId: ds.id, rows });
    }
    progress.begin(work.reduce((n, w) => n + w.rows.reduce((m, r) => m + r.rowCount, 0), 0));
    await mkdir(tmpDir, { recursive: true });
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
        const { store, key } = locate(row, opts.storageRoot, storeFor);
        const uri = objectUrl(store, key);
        const failures: VerifyFailure[] = [];
        const fail = (check: CheckName, ledger: number | null, what: string) => {
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
        if (failures.length) {
          result.failed++;
          result.failures.push(...failures);
          log.warn(
            "verify",
            `partition ${row.ledgerStart}-${row.ledgerEnd} of ${label} (${uri}) failed ${failures.length} check(s): ${
              [...new Set(failures.map((f) => f.check))].join(", ")
            }`,
          );
        } else {
          result.passed++;
        }
        await recordVerifyQuality(catalog.pool, row.id, failures.length);
        prev = row;
      }
    }
  } finally {
    progress.end();
    for (const s of stores.values()) await s.close?.();
    await catalog.close();
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

/** Quality rows of one verification: verify_passed (1/0) and verify_failures (count). */
export async function recordVerifyQuality(
  db: { query(sql: string, params: unknown[]): Promise<unknown> },
  lineageId: number,
  failures: number,
): Promise<void> {
  await db.query(
    `INSERT INTO _meta_quality (lineage_id, metric_name, metric_value)
     VALUES ($1, 'verify_passed', $2), ($1, 'verify_failures', $3)`,
    [lineageId, failures === 0 ? 1 : 0, failures],
  );
}

/**
 * Where a lineage row's file is: under `--storage` at its storage_path, else at its storage_uri
 * (the root being the URI without the storage_path suffix).
 */
function locate(
  row: LineageRow,
  storageRoot: string | undefined,
  storeFor: (root: string) => ObjectStore,
): { store: ObjectStore; key: string } {
  if (storageRoot !== undefined) return { store: storeFor(storageRoot), key: row.storagePath };
  const uri = row.storageUri;
  if (uri.endsWith(`/${row.storagePath}`)) {
    return { store: storeFor(uri.slice(0, -row.storagePath.length - 1)), key: row.storagePath };
  }
  const cut = uri.lastIndexOf("/");
  return { store: storeFor(uri.slice(0, cut)), key: uri.slice(cut + 1) };
}

/** Runs every file check of one partition; returns the bytes read. */
async function checkPartition(
  row: LineageRow,
  store: ObjectStore,
  key: string,
  tmpDir: string,
  fail: (check: CheckName, ledger: number | null, what: string) => void,
  progress: Progress,
): Promise<number> {
  const head = await store.head(key);
  if (head === null) {
    fail("missing", null, "file not found");
    return 0;
  }
  // A local file is read in place; anything else is streamed to a temp file first.
  const local = store instanceof FileStore ? store.path(key) : null;
  const path = local ?? join(tmpDir, `verify-${Deno.pid}-${row.id}-${crypto.randomUUID()}.parquet`);
  try {
    const { sha256, bytes } = await hashObject(store, key, local ? null : path);
    progress.add(0, bytes);
    if (bytes !== row.byteSize) {
      fail("size", null, `file is ${bytes} bytes, lineage records ${row.byteSize}`);
    }
    if (`sha256:${sha256}` !== row.checksum) {
      fail("checksum", null, `file hashes to sha256:${sha256}, lineage records ${row.checksum}`);
    }
    await checkRows(row, path, fail, progress);
    return bytes;
  } finally {
    if (!local) await rm(path, { force: true });
  }
}

async function checkRows(
  row: LineageRow,
  path: string,
  fail: (check: CheckName, ledger: number | null, what: string) => void,
  progress: Progress,
): Promise<void> {
  let expected = row.ledgerStart;
  let lastHash: string | null = null;
  let rows = 0;
  let metadata: FileMetaData;
  const fh = await open(path, "r");
  try {
    const file = await fileBuffer(fh);
    try {
      metadata = await parquetMetadataAsync(file);
    } catch (err) {
      fail("unreadable", null, `not a readable Parquet file (${(err as Error).message})`);
      return;
    }
    const total = Number(metadata.num_rows);
    if (total !== row.rowCount) {
      fail("row_count", null, `file holds ${total} rows, lineage records ${row.rowCount}`);
    }
    try {
      for await (const group of rowGroups(file, metadata)) {
        for (const r of group) {
          const seq = Number(r.ledger_sequence);
          if (seq !== expected) {
            fail(
              "ledger_range",
              seq,
              rows === 0
                ? `first ledger_sequence is ${seq}, lineage starts at ${row.ledgerStart}`
                : `ledger_sequence ${seq} follows ${expected - 1} (expected ${expected})`,
            );
            expected = seq;
          }
          const digest = createHash("sha256").update(r.xdr_bytes).digest("hex");
          if (digest !== r.xdr_sha256) {
            fail(
              "xdr_sha256",
              seq,
              `xdr_sha256 ${r.xdr_sha256} does not match its xdr_bytes (sha256 ${digest})`,
            );
          }
          if (lastHash === null) {
            if (r.previous_ledger_hash !== row.firstPreviousLedgerHash) {
              fail(
                "first_previous_ledger_hash",
                seq,
                `previous_ledger_hash ${r.previous_ledger_hash} differs from lineage ` +
                  `first_previous_ledger_hash ${row.firstPreviousLedgerHash}`,
              );
            }
          } else if (r.previous_ledger_hash !== lastHash) {
            fail(
              "chain",
              seq,
              `previous_ledger_hash ${r.previous_ledger_hash} does not match ledger_hash ` +
                `${lastHash} of ledger ${seq - 1}`,
            );
          }
          lastHash = r.ledger_hash;
          expected++;
          rows++;
        }
        progress.add(group.length, 0);
      }
    } catch (err) {
      fail("unreadable", expected, `Parquet data cannot be decoded (${(err as Error).message})`);
      return;
    }
    const last = expected - 1;
    if (rows > 0 && last !== row.ledgerEnd) {
      fail(
        "ledger_range",
        last,
        `last ledger_sequence is ${last}, lineage ends at ${row.ledgerEnd}`,
      );
    }
    if (lastHash !== null && lastHash !== row.lastLedgerHash) {
      fail(
        "last_ledger_hash",
        last,
        `ledger_hash ${lastHash} differs from lineage last_ledger_hash ${row.lastLedgerHash}`,
      );
    }
  } finally {
    await fh.close();
  }
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** hyparquet's AsyncBuffer over a local file: positional reads, safe when issued concurrently. */
export async function fileBuffer(fh: FileHandle): Promise<AsyncBuffer> {
  const { size } = await fh.stat();
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      const buf = new Uint8Array(Math.max(0, Math.min(end, size) - start));
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new Error(`unexpected end of file at byte ${start + off}`);
        off += bytesRead;
      }
      return buf.buffer;
    },
  };
}

/**
 * The rows of a Parquet file, one row group at a time: only one group's column chunks are ever in
 * memory (the writer bounds a group to 64 MB of XDR).
 */
export async function* rowGroups(
  file: AsyncBuffer,
  metadata: FileMetaData,
): AsyncGenerator<CheckRow[]> {
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const n = Number(rg.num_rows);
    const rows = await parquetReadObjects({
      file,
      metadata,
      rowStart,
      rowEnd: rowStart + n,
      columns: COLUMNS,
      ...READ_OPTIONS,
    });
    rowStart += n;
    yield rows as unknown as CheckRow[];
  }
}
