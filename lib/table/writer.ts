/**
 * The `ledgers_lcm_raw` Parquet writer: streams rows into a local file one row group at a time,
 * hashing the bytes as they are written, so memory is bounded by the row-group budget and the
 * file's sha256 is known the moment it is finished.
 */
import { createHash, type Hash } from "node:crypto";
import { ByteWriter, type ColumnSource, ParquetWriter } from "hyparquet-writer";
import type { LedgerRow } from "../source/ledger.ts";
import { ZstdCompressor } from "../runtime/zstd.ts";
import { COLUMN_NAMES, CREATED_BY, type PartitionMeta, SCHEMA, ZSTD_LEVEL } from "./schema.ts";

/** Row-group budget in LedgerCloseMeta XDR bytes: bounds the writer's memory. */
export const DEFAULT_ROW_GROUP_BYTES = 64 * 1024 * 1024;
/** Row cap per row group, so tiny ledgers do not pile up millions of JS objects. */
export const DEFAULT_ROW_GROUP_ROWS = 100_000;
/** Encoded bytes the file sink holds before it writes them out. */
const SPILL_BYTES = 4 << 20;

export interface PartitionFileInfo {
  /** Plain lowercase hex sha256 of the file's bytes; callers add any "sha256:" prefix. */
  sha256: string;
  bytes: number;
  rows: number;
}

// One engine per thread (a build worker writes one file at a time), the same bytes as
// zstdCompressSync's. hyparquet-writer appends a page's compressed bytes to the file sink before it
// compresses another, so a view of the engine's buffer serves; the page itself is garbage once
// compressed, and its buffer goes back to the pool below.
const zstd = new ZstdCompressor(ZSTD_LEVEL);
const compressZstd = (input: Uint8Array): Uint8Array => {
  const out = zstd.compressView(input);
  recycle(input.buffer as ArrayBuffer);
  return out;
};

// Unique per row (hashes, XDR): dictionary sampling can only lose, and hashing megabytes of XDR
// to find that out is slow. Statistics on raw XDR are meaningless.
const PLAIN = new Set([
  "ledger_hash",
  "previous_ledger_hash",
  "tx_set_hash",
  "xdr_bytes",
  "xdr_sha256",
]);

// hyparquet-writer encodes every page into a fresh ByteWriter that starts at 1 KiB and doubles:
// each ~1 MiB page of XDR is copied about ten times on its way to zstd (a tenth of a build's CPU
// in profiles). Growing straight to 1 MiB makes that one copy at most, and the buffers come from
// a small pool of pages already compressed (a fresh one costs the kernel's page faults and V8's
// zero fill, per MiB). The bytes written are the same; only the scratch buffers differ. (The
// package is pinned at 0.17.0; re-check on upgrade: nothing may read a page after compressing it.)
const MIN_GROWTH = 1 << 20;
const POOL_MAX = 4;
const pool: ArrayBuffer[] = [];

function recycle(buffer: ArrayBuffer): void {
  if (buffer.byteLength >= MIN_GROWTH && pool.length < POOL_MAX && !pool.includes(buffer)) {
    pool.push(buffer);
  }
}

function take(size: number): ArrayBuffer {
  const i = pool.findIndex((b) => b.byteLength >= size);
  return i < 0 ? new ArrayBuffer(size) : pool.splice(i, 1)[0];
}

ByteWriter.prototype.ensure = function (this: ByteWriter, size: number): void {
  if (this.index + size <= this.buffer.byteLength) return;
  const grown = take(Math.max(this.buffer.byteLength * 2, this.index + size, MIN_GROWTH));
  new Uint8Array(grown).set(new Uint8Array(this.buffer, 0, this.index));
  recycle(this.buffer);
  this.buffer = grown;
  this.view = new DataView(grown);
};

/**
 * hyparquet-writer's ByteWriter that writes to the file as it goes: whenever its buffer would grow
 * past SPILL_BYTES, and after each row group, it hashes and appends what it holds and starts over.
 * hyparquet-writer only ever appends (offsets it records are `offset`, never rewritten), so at
 * most a few MiB of encoded pages are held, not a whole encoded row group beside its rows.
 */
class FileSink extends ByteWriter {
  readonly hash: Hash = createHash("sha256");

  constructor(private readonly file: Deno.FsFile) {
    super(SPILL_BYTES);
  }

  override ensure(size: number): void {
    if (this.index + size <= this.buffer.byteLength) return;
    if (this.index > 0) this.flush();
    if (size > this.buffer.byteLength) {
      this.buffer = new ArrayBuffer(size);
      this.view = new DataView(this.buffer);
    }
  }

  /** Hashes and writes what the buffer holds (synchronously: encoding waits for nothing else). */
  flush(): void {
    const chunk = new Uint8Array(this.buffer, 0, this.index);
    this.hash.update(chunk);
    let written = 0;
    while (written < chunk.length) written += this.file.writeSync(chunk.subarray(written));
    this.index = 0;
  }

  // No fsync here: the file is a build's temp file, and publishing it is the durable step (the
  // file store fsyncs it before any name points at it; a bucket gets it uploaded). An fsync here
  // would hold a build worker idle while its successor could be building.
  override finish(): void {
    this.flush();
  }
}

export class PartitionFileWriter {
  #rows: LedgerRow[] = [];
  #groupBytes = 0;
  #total = 0;
  #lastSeq = -1;
  #done = false;

  private constructor(
    readonly path: string,
    private readonly meta: PartitionMeta,
    private readonly file: Deno.FsFile,
    private readonly sink: FileSink,
    private readonly pq: ParquetWriter,
    private readonly rowGroupBytes: number,
    private readonly rowGroupRows: number,
    private readonly onWritten?: (rows: readonly LedgerRow[]) => void,
  ) {}

  /** Creates (or truncates) `path`. */
  static async create(
    path: string,
    meta: PartitionMeta,
    opts: {
      rowGroupBytes?: number;
      rowGroupRows?: number;
      /** Each row group's rows, once written: their XDR is no longer read. */
      onWritten?: (rows: readonly LedgerRow[]) => void;
    } = {},
  ): Promise<PartitionFileWriter> {
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const sink = new FileSink(file);
    const pq = new ParquetWriter({
      writer: sink,
      schema: SCHEMA,
      codec: "ZSTD",
      compressors: { ZSTD: compressZstd },
      createdBy: CREATED_BY,
    });
    return new PartitionFileWriter(
      path,
      meta,
      file,
      sink,
      pq,
      opts.rowGroupBytes ?? DEFAULT_ROW_GROUP_BYTES,
      opts.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS,
      opts.onWritten,
    );
  }

  /** Appends one ledger; rows must arrive in strictly increasing ledger_sequence. */
  async write(row: LedgerRow): Promise<void> {
    if (this.#done) throw new Error(`${this.path}: write after finish/abort`);
    if (row.ledgerSequence <= this.#lastSeq) {
      throw new Error(
        `${this.path}: ledger ${row.ledgerSequence} written after ledger ${this.#lastSeq}`,
      );
    }
    this.#lastSeq = row.ledgerSequence;
    this.#rows.push(row);
    this.#groupBytes += row.xdrByteLength;
    if (this.#groupBytes >= this.rowGroupBytes || this.#rows.length >= this.rowGroupRows) {
      await this.#flushGroup();
    }
  }

  async #flushGroup(): Promise<void> {
    const rows = this.#rows;
    if (!rows.length) return;
    this.#rows = [];
    this.#groupBytes = 0;
    this.#total += rows.length;
    await this.pq.write({ columnData: this.#columns(rows), rowGroupSize: rows.length });
    this.onWritten?.(rows);
  }

  #columns(rows: LedgerRow[]): ColumnSource[] {
    const n = rows.length;
    const col = <T>(f: (r: LedgerRow) => T) => rows.map(f);
    const i32 = (f: (r: LedgerRow) => number) => Int32Array.from(rows, f);
    const i64 = (f: (r: LedgerRow) => bigint) => BigInt64Array.from(rows, f);
    const data: Record<string, ColumnSource["data"]> = {
      ledger_sequence: i64((r) => BigInt(r.ledgerSequence)),
      ledger_hash: col((r) => r.ledgerHash),
      previous_ledger_hash: col((r) => r.previousLedgerHash),
      close_time: i64((r) => BigInt(r.closeTimeMs)),
      protocol_version: i32((r) => r.protocolVersion),
      total_coins: i64((r) => r.totalCoins),
      fee_pool: i64((r) => r.feePool),
      tx_set_hash: col((r) => r.txSetHash),
      tx_count: i32((r) => r.txCount),
      operation_count: i32((r) => r.operationCount),
      xdr_bytes: col((r) => r.xdr),
      xdr_byte_length: i32((r) => r.xdrByteLength),
      xdr_sha256: col((r) => r.xdrSha256),
      bronze_version: new Array(n).fill(this.meta.bronzeVersion),
      era_id: new Array(n).fill(this.meta.eraId),
      network: new Array(n).fill(this.meta.network),
    };
    return COLUMN_NAMES.map((name) =>
      PLAIN.has(name)
        ? { name, data: data[name], encoding: "PLAIN", statistics: name !== "xdr_bytes" }
        : { name, data: data[name] }
    );
  }

  /** Writes the last row group and the footer, closes the file. */
  async finish(): Promise<PartitionFileInfo> {
    if (this.#done) throw new Error(`${this.path}: finish after finish/abort`);
    try {
      await this.#flushGroup();
      await this.pq.finish();
    } catch (e) {
      await this.abort();
      throw e;
    }
    this.#done = true;
    this.file.close();
    return { sha256: this.sink.hash.digest("hex"), bytes: this.sink.offset, rows: this.#total };
  }

  /** Drops the partial file. */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#rows = [];
    try {
      this.file.close();
    } catch { /* already closed */ }
    await Deno.remove(this.path).catch(() => {});
  }
}
