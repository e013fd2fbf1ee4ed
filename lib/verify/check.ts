/**
 * The checks of one stored partition against its lineage row: the object exists; its size and
 * sha256 match; its Parquet row count and ledger range match (first/last ledger_sequence,
 * contiguous); every row's xdr_sha256 is the sha256 of its xdr_bytes; each ledger's
 * previous_ledger_hash is the ledger before's ledger_hash; the file's first previous hash and
 * last hash are the row's first_previous_ledger_hash and last_ledger_hash.
 *
 * Memory stays bounded whatever the file size: a remote object is streamed to a temp file (a
 * local one is read in place), hashed as it streams, and the Parquet file is read one row group
 * at a time through positional reads.
 */
import { createHash } from "node:crypto";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { hashObject, type ObjectStore, OutsideRootError } from "../blob/mod.ts";
import type { LineageRow } from "../metadata/writer.ts";
import type { Progress } from "../runtime/progress.ts";
import { fileBuffer, type FileMetaData, parquetMetadataAsync, rowGroups } from "../table/reader.ts";

export type CheckName =
  | "missing"
  /** The file's path leads out of the storage root (a symbolic link): reported, not read. */
  | "outside"
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

/** Records one failed check: the ledger at fault (null: the whole file) and what is wrong. */
export type Fail = (check: CheckName, ledger: number | null, what: string) => void;

/** Columns verify reads; the rest of the row is not needed to check it. */
const COLUMNS = [
  "ledger_sequence",
  "ledger_hash",
  "previous_ledger_hash",
  "xdr_bytes",
  "xdr_sha256",
] as const;

/** Runs every file check of one partition; returns the bytes read. */
export async function checkPartition(
  row: LineageRow,
  store: ObjectStore,
  key: string,
  tmpDir: string,
  fail: Fail,
  progress: Progress,
): Promise<number> {
  let head;
  try {
    head = await store.head(key);
  } catch (err) {
    if (!(err instanceof OutsideRootError)) throw err;
    fail("outside", null, err.message);
    return 0;
  }
  if (head === null) {
    fail("missing", null, "file not found");
    return 0;
  }
  // A local file is read in place; anything else is streamed to a temp file first.
  const local = store.localPath?.(key) ?? null;
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
  fail: Fail,
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
      fail("unreadable", null, `not a readable Parquet file (${shown((err as Error).message)})`);
      return;
    }
    const total = Number(metadata.num_rows);
    if (total !== row.rowCount) {
      fail("row_count", null, `file holds ${total} rows, lineage records ${row.rowCount}`);
    }
    try {
      for await (const group of rowGroups(file, metadata, COLUMNS)) {
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
              `xdr_sha256 ${shown(r.xdr_sha256)} does not match its xdr_bytes (sha256 ${digest})`,
            );
          }
          if (lastHash === null) {
            if (r.previous_ledger_hash !== row.firstPreviousLedgerHash) {
              fail(
                "first_previous_ledger_hash",
                seq,
                `previous_ledger_hash ${shown(r.previous_ledger_hash)} differs from lineage ` +
                  `first_previous_ledger_hash ${row.firstPreviousLedgerHash}`,
              );
            }
          } else if (r.previous_ledger_hash !== lastHash) {
            fail(
              "chain",
              seq,
              `previous_ledger_hash ${shown(r.previous_ledger_hash)} does not match ledger_hash ` +
                `${shown(lastHash)} of ledger ${seq - 1}`,
            );
          }
          lastHash = r.ledger_hash;
          expected++;
          rows++;
        }
        progress.add(group.length, 0);
      }
    } catch (err) {
      fail(
        "unreadable",
        expected,
        `Parquet data cannot be decoded (${shown((err as Error).message)})`,
      );
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
        `ledger_hash ${
          shown(lastHash)
        } differs from lineage last_ledger_hash ${row.lastLedgerHash}`,
      );
    }
  } finally {
    await fh.close();
  }
}

/**
 * A value read from a file, safe to print in one line: hex (what a sound file holds) as it is,
 * anything else quoted with every control and non-ASCII character escaped, and cut short. A
 * corrupt file must never write raw bytes to the user's terminal.
 */
export function shown(value: unknown): string {
  const text = String(value);
  if (/^[0-9a-f]{1,128}$/.test(text)) return text;
  const escaped = text.slice(0, 80).replace(
    /[^\x20-\x7e]|["\\]/g,
    (c) =>
      c === '"' || c === "\\" ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `"${escaped}"${text.length > 80 ? "…" : ""}`;
}
