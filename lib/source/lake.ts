/**
 * Reads ledgers out of a Galexie data lake (SEP-54): `.config.json`, the object-key grid, zstd
 * batches of LedgerCloseMetaBatch XDR. Yields each ledger's exact LedgerCloseMeta bytes in
 * sequence; decoding the row is lib/ledger.ts's job.
 */
import { constants as zlib, zstdDecompressSync } from "node:zlib";
import { BronzeError } from "../runtime/errors.ts";
import { splitLedgers } from "./ledger.ts";
import { type Network, passphraseOf } from "./network.ts";
import { NotFoundError, type ObjectStore } from "../blob/store.ts";
import { objectUrl } from "../blob/keys.ts";
import { readU32, XdrCorruptError } from "./_xdr.ts";
import { ZstdDecompressor } from "../runtime/zstd.ts";
import { BatchBuffers } from "./_buffers.ts";
import {
  type LedgerSource,
  MissingLedgerError,
  type RawLedger,
  type StreamOptions,
} from "./source.ts";

export interface LakeConfig {
  networkPassphrase: string;
  version: string;
  compression: "zstd";
  ledgersPerBatch: number;
  batchesPerPartition: number;
}

export type { RawLedger, StreamOptions };

export interface Lake extends LedgerSource {
  readonly type: "archive";
  readonly config: LakeConfig;
  /** Key (relative to the lake root) of the object holding `seq`, with the preferred extension. */
  keyFor(seq: number): string;
  close(): Promise<void>;
}

export const CONFIG_KEY = ".config.json";
/** One engine per thread: a build worker reads one batch at a time. */
const zstd = new ZstdDecompressor();
export const DEFAULT_PREFETCH = 8;
const EXTENSIONS = ["zst", "zstd"] as const;
/** `[%08X--<pstart>-<pend>/]%08X--<start>[-<end>].xdr.<ext>`: groups are start and ext. */
const BATCH_KEY = /^(?:[0-9A-F]{8}--\d+-\d+\/)?[0-9A-F]{8}--(\d+)(?:-\d+)?\.xdr\.(zstd?)$/;
/** Non-batch keys head() passes over before giving up (one S3 list page). */
const HEAD_MAX_SKIPPED = 1000;
type Ext = typeof EXTENSIONS[number];

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function parseConfig(bytes: Uint8Array, where: string): LakeConfig {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new BronzeError(`${where}: not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new BronzeError(`${where}: expected a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const bad = (field: string, want: string) =>
    new BronzeError(`${where}: field ${field} must be ${want}, got ${JSON.stringify(o[field])}`);
  if (typeof o.networkPassphrase !== "string" || !o.networkPassphrase) {
    throw bad("networkPassphrase", "a non-empty string");
  }
  if (o.compression !== "zstd") throw bad("compression", `"zstd"`);
  for (const f of ["ledgersPerBatch", "batchesPerPartition"]) {
    const v = o[f];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw bad(f, "a positive integer");
  }
  if (o.version !== undefined && typeof o.version !== "string") throw bad("version", "a string");
  return {
    networkPassphrase: o.networkPassphrase,
    version: (o.version as string | undefined) ?? "",
    compression: "zstd",
    ledgersPerBatch: o.ledgersPerBatch as number,
    batchesPerPartition: o.batchesPerPartition as number,
  };
}

/** SEP-54 hex prefix: 0xFFFFFFFF - n, upper case, 8 digits (newest sorts first). */
function prefix(n: number): string {
  return (0xFFFFFFFF - n).toString(16).toUpperCase().padStart(8, "0");
}

/** The object key for the batch starting at `batchStart`, per SEP-54. */
export function objectKey(config: LakeConfig, batchStart: number, ext: Ext): string {
  const lpb = config.ledgersPerBatch;
  const file = lpb > 1
    ? `${prefix(batchStart)}--${batchStart}-${batchStart + lpb - 1}.xdr.${ext}`
    : `${prefix(batchStart)}--${batchStart}.xdr.${ext}`;
  if (config.batchesPerPartition === 1) return file;
  const size = lpb * config.batchesPerPartition;
  const pstart = Math.floor(batchStart / size) * size;
  return `${prefix(pstart)}--${pstart}-${pstart + size - 1}/${file}`;
}

export async function openLake(store: ObjectStore, network: Network): Promise<Lake> {
  const where = objectUrl(store, CONFIG_KEY);
  let bytes: Uint8Array;
  try {
    bytes = await store.get(CONFIG_KEY);
  } catch (e) {
    if (e instanceof NotFoundError) {
      throw new BronzeError(`${where}: not found (is ${store.url} a Galexie data lake?)`);
    }
    throw e;
  }
  const config = parseConfig(bytes, where);
  const expected = passphraseOf(network);
  if (config.networkPassphrase !== expected) {
    throw new BronzeError(
      `lake ${store.url} is for network passphrase "${config.networkPassphrase}", ` +
        `but ${network} is "${expected}"`,
    );
  }
  return new GalexieLake(store, network, config);
}

interface Batch {
  url: string;
  /** Decompressed batch; ledgers are views into it. */
  data: Uint8Array;
  /** [sequence, start, end] of each LedgerCloseMeta in `data`. */
  ledgers: Array<[number, number, number]>;
}

class GalexieLake implements Lake {
  readonly url: string;
  readonly type = "archive";
  // Real lakes mix .zst and .zstd; whichever worked last is tried first.
  #ext: Ext = "zst";
  readonly #buffers = new BatchBuffers();

  constructor(
    private readonly store: ObjectStore,
    readonly network: Network,
    readonly config: LakeConfig,
  ) {
    this.url = store.url;
  }

  /** Closes the store the lake was opened on (its SDK client, for gs:// and s3://). */
  async close(): Promise<void> {
    await this.store.close?.();
  }

  /**
   * The newest ledger, found without listing the lake: SEP-54 keys sort newest first (and the
   * newest partition's folder first), so the first batch key in list order is the newest batch.
   */
  async head(): Promise<number> {
    await this.#checkConfig();
    let skipped = 0;
    for await (const { key } of this.store.list("")) {
      const start = this.#batchStartOf(key);
      if (start !== null) return await this.#lastLedgerIn(key, start);
      // Bounded whatever the lake's size: in practice only .config.json precedes the newest batch.
      if (++skipped >= HEAD_MAX_SKIPPED) {
        throw new BronzeError(
          `lake ${this.url}: no ledger batch among its first ${skipped} objects`,
        );
      }
    }
    throw new BronzeError(`lake ${this.url} holds no ledgers`);
  }

  /** A follower reads the head again and again: the lake must still be the one it opened. */
  async #checkConfig(): Promise<void> {
    const where = objectUrl(this.store, CONFIG_KEY);
    const now = parseConfig(await this.store.get(CONFIG_KEY), where);
    const changed = (Object.keys(now) as (keyof LakeConfig)[])
      .filter((k) => now[k] !== this.config[k])
      .map((k) => `${k} ${JSON.stringify(this.config[k])} → ${JSON.stringify(now[k])}`);
    if (changed.length) {
      throw new BronzeError(
        `${where} changed while bronze was reading the lake: ${changed.join(", ")}`,
      );
    }
  }

  /** The grid start of the batch a key names, or null for a key that is no batch (.config.json). */
  #batchStartOf(key: string): number | null {
    const m = BATCH_KEY.exec(key);
    if (!m) return null;
    const start = Number(m[1]);
    // A batch key off this lake's grid means the config does not describe the objects.
    if (key !== objectKey(this.config, start, m[2] as Ext)) {
      const { ledgersPerBatch: lpb, batchesPerPartition: bpp } = this.config;
      throw new BronzeError(
        `${objectUrl(this.store, key)} does not fit the layout of lake ${this.url} ` +
          `(ledgersPerBatch ${lpb}, batchesPerPartition ${bpp})`,
      );
    }
    return start;
  }

  /**
   * The last ledger the batch at `key` holds. With one ledger per batch the key says it. A larger
   * batch may hold less than its key names (#split allows a sub-range; Galexie itself only
   * uploads full batches), so its header's endSequence says, read from the first compressed block
   * of the object, not the whole object.
   */
  async #lastLedgerIn(key: string, start: number): Promise<number> {
    const keyEnd = start + this.config.ledgersPerBatch - 1;
    if (this.config.ledgersPerBatch === 1) return keyEnd;
    const url = objectUrl(this.store, key);
    const reader = (await this.store.getStream(key)).getReader();
    try {
      let compressed: Uint8Array = new Uint8Array(0);
      for (;;) {
        const { done, value } = await reader.read();
        if (value) compressed = concat(compressed, value);
        let head: Uint8Array;
        try {
          // Decompresses what has arrived so far; `continue` does not insist the frame ends.
          head = zstdDecompressSync(compressed, {
            finishFlush: done ? zlib.ZSTD_e_end : zlib.ZSTD_e_continue,
          });
        } catch (e) {
          throw new BronzeError(
            `${url}: corrupt zstd (ledger ${keyEnd}): ${oneLine((e as Error).message)}`,
          );
        }
        if (head.byteLength >= 8) {
          const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
          const [first, last] = [view.getUint32(0), view.getUint32(4)];
          if (first < start || last > keyEnd || last < first) {
            throw new BronzeError(
              `${url}: batch holds ledgers ${first}-${last}, but its key says ${start}-${keyEnd}`,
            );
          }
          return last;
        }
        if (done) {
          throw new BronzeError(`${url}: corrupt XDR: batch of ${head.byteLength} byte(s)`);
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  release(xdr: Uint8Array): void {
    this.#buffers.release(xdr);
  }

  keyFor(seq: number): string {
    return objectKey(this.config, this.#batchStart(seq), this.#ext);
  }

  #batchStart(seq: number): number {
    const lpb = this.config.ledgersPerBatch;
    return Math.floor(seq / lpb) * lpb;
  }

  async *stream(start: number, end: number, opts: StreamOptions = {}): AsyncIterable<RawLedger> {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
      throw new BronzeError(`lake ${this.url}: bad ledger range ${start}-${end}`);
    }
    const prefetch = Math.max(1, opts.prefetch ?? DEFAULT_PREFETCH);
    const signal = opts.signal;
    const lpb = this.config.ledgersPerBatch;
    // A store that reads synchronously gains nothing from reading ahead: each batch is read when
    // its turn comes, without a promise per batch (a tenth of a 2 KB ledger's cost).
    const now = this.store.getSync !== undefined;
    let next = this.#batchStart(start);
    const queue: Promise<Batch>[] = [];
    const fill = () => {
      while (!now && queue.length < prefetch && next <= end) {
        const firstWanted = Math.max(next, start);
        const p = this.#fetch(next, firstWanted);
        // Prefetched batches may fail before they are awaited (or never be, after a break).
        p.catch(() => {});
        queue.push(p);
        next += lpb;
      }
    };
    fill();
    let expect = start;
    while (now ? next <= end : queue.length) {
      signal?.throwIfAborted();
      let batch: Batch;
      if (now) {
        batch = this.#fetchNow(next, Math.max(next, start));
        next += lpb;
      } else {
        batch = await queue.shift()!;
        fill();
      }
      this.#buffers.hold(
        batch.data,
        batch.ledgers.filter(([seq]) => seq >= start && seq <= end).length,
      );
      for (const [seq, from, to] of batch.ledgers) {
        if (seq < start || seq > end) continue;
        if (seq !== expect) throw this.#gap(expect, batch.url);
        yield { sequence: seq, key: batch.url, xdr: batch.data.subarray(from, to) };
        expect++;
      }
      signal?.throwIfAborted();
    }
    // A batch holding a sub-range of its key (only a lake's first should) must not hide a gap.
    if (expect <= end) throw this.#gap(expect, objectUrl(this.store, this.keyFor(expect)));
  }

  #gap(seq: number, url: string): BronzeError {
    return new MissingLedgerError(
      `ledger ${seq} is missing from lake ${this.url}: ${url} does not hold it`,
      seq,
    );
  }

  /**
   * The batch object at `batchStart`, under whichever extension it has. With a store that reads
   * synchronously (local disk: cheaper than a hop through the runtime's I/O threads, and a build
   * worker has nothing else to do meanwhile) no await comes between the read and the caller's
   * decompression, so the bytes may be the store's reused buffer.
   */
  #get(
    batchStart: number,
    firstWanted: number,
  ): [string, Uint8Array] | Promise<[string, Uint8Array]> {
    const order: Ext[] = this.#ext === "zst" ? ["zst", "zstd"] : ["zstd", "zst"];
    const found = (ext: Ext, key: string, data: Uint8Array): [string, Uint8Array] => {
      this.#ext = ext;
      return [objectUrl(this.store, key), data];
    };
    const missing = () => {
      const [a, b] = order.map((ext) => objectKey(this.config, batchStart, ext));
      return new MissingLedgerError(
        `ledger ${firstWanted} is missing from lake ${this.url}: neither ${a} nor ${b} exists`,
        firstWanted,
      );
    };
    const getSync = this.store.getSync?.bind(this.store);
    if (getSync) {
      for (const ext of order) {
        const key = objectKey(this.config, batchStart, ext);
        try {
          return found(ext, key, getSync(key));
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
      }
      throw missing();
    }
    return (async () => {
      for (const ext of order) {
        const key = objectKey(this.config, batchStart, ext);
        try {
          return found(ext, key, await this.store.get(key));
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
        }
      }
      throw missing();
    })();
  }

  async #fetch(batchStart: number, firstWanted: number): Promise<Batch> {
    const got = this.#get(batchStart, firstWanted);
    return this.#unpack(got instanceof Promise ? await got : got, batchStart, firstWanted);
  }

  /** #fetch() with a store that reads synchronously. */
  #fetchNow(batchStart: number, firstWanted: number): Batch {
    return this.#unpack(
      this.#get(batchStart, firstWanted) as [string, Uint8Array],
      batchStart,
      firstWanted,
    );
  }

  #unpack([url, compressed]: [string, Uint8Array], batchStart: number, firstWanted: number): Batch {
    let data: Uint8Array;
    try {
      data = zstd.decompress(compressed, (n) => this.#buffers.take(n));
    } catch (e) {
      throw new BronzeError(
        `${url}: corrupt zstd (ledger ${firstWanted}): ${oneLine((e as Error).message)}`,
      );
    }
    const ledgers = this.#split(url, data, batchStart, firstWanted);
    return { url, data, ledgers };
  }

  /** Extents of each LedgerCloseMeta in a LedgerCloseMetaBatch, checked against the key. */
  #split(url: string, data: Uint8Array, batchStart: number, firstWanted: number) {
    const keyEnd = batchStart + this.config.ledgersPerBatch - 1;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let first: number, last: number, count: number;
    try {
      first = readU32(view, 0);
      last = readU32(view, 4);
      count = readU32(view, 8);
    } catch (e) {
      if (!(e instanceof XdrCorruptError)) throw e;
      throw new BronzeError(`${url}: corrupt XDR (ledger ${firstWanted}): ${oneLine(e.message)}`);
    }
    // Galexie may start a lake's first batch mid-grid, so a batch may hold a sub-range.
    if (first < batchStart || last > keyEnd || last < first) {
      throw new BronzeError(
        `${url}: batch holds ledgers ${first}-${last}, but its key says ${batchStart}-${keyEnd}` +
          ` (ledger ${firstWanted})`,
      );
    }
    if (count !== last - first + 1) {
      throw new BronzeError(
        `${url}: batch ${first}-${last} should hold ${last - first + 1} ledgers but holds ` +
          `${count} (ledger ${firstWanted})`,
      );
    }
    return splitLedgers(data, 12, first, count, url);
  }
}
