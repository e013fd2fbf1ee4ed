/**
 * Reads ledgers out of a Galexie data lake (SEP-54): finds the newest batch, fetches the batch
 * objects a range needs (reading ahead where the store is remote) and yields each ledger's exact
 * LedgerCloseMeta bytes in sequence; decoding the row is ledger.ts's job. Where each batch lives
 * is lake_layout.ts's (the key grid, `.config.json`); what a batch object holds and how it is
 * checked, _lake_batch.ts's.
 */
import { BronzeError } from "../runtime/errors.ts";
import { type Network, passphraseOf } from "./network.ts";
import { NotFoundError, type ObjectStore } from "../blob/store.ts";
import { objectUrl } from "../blob/keys.ts";
import { BatchBuffers } from "./_buffers.ts";
import { type Batch, lastLedgerOf, unpackBatch } from "./_lake_batch.ts";
import {
  batchStartOf,
  CONFIG_KEY,
  type Ext,
  type LakeConfig,
  objectKey,
  parseBatchKey,
  parseConfig,
} from "./lake_layout.ts";
import {
  type LedgerSource,
  MissingLedgerError,
  type RawLedger,
  type StreamOptions,
} from "./source.ts";

export type { RawLedger, StreamOptions };

export interface Lake extends LedgerSource {
  readonly type: "archive";
  readonly config: LakeConfig;
  /** Key (relative to the lake root) of the object holding `seq`, with the preferred extension. */
  keyFor(seq: number): string;
  close(): Promise<void>;
}

export const DEFAULT_PREFETCH = 8;
/** Non-batch keys head() passes over before giving up (one S3 list page). */
const HEAD_MAX_SKIPPED = 1000;

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
    const batch = parseBatchKey(key);
    if (!batch) return null;
    // A batch key off this lake's grid means the config does not describe the objects.
    if (key !== objectKey(this.config, batch.start, batch.ext)) {
      const { ledgersPerBatch: lpb, batchesPerPartition: bpp } = this.config;
      throw new BronzeError(
        `${objectUrl(this.store, key)} does not fit the layout of lake ${this.url} ` +
          `(ledgersPerBatch ${lpb}, batchesPerPartition ${bpp})`,
      );
    }
    return batch.start;
  }

  /**
   * The last ledger the batch at `key` holds. With one ledger per batch the key says it. A larger
   * batch may hold less than its key names (a lake's first batch may start mid-grid; Galexie
   * itself only uploads full batches), so its header says (_lake_batch.ts).
   */
  async #lastLedgerIn(key: string, start: number): Promise<number> {
    const keyEnd = start + this.config.ledgersPerBatch - 1;
    if (this.config.ledgersPerBatch === 1) return keyEnd;
    const url = objectUrl(this.store, key);
    return await lastLedgerOf(await this.store.getStream(key), url, start, keyEnd);
  }

  release(xdr: Uint8Array): void {
    this.#buffers.release(xdr);
  }

  keyFor(seq: number): string {
    return objectKey(this.config, this.#batchStart(seq), this.#ext);
  }

  #batchStart(seq: number): number {
    return batchStartOf(this.config, seq);
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

  #unpack(got: [string, Uint8Array], batchStart: number, firstWanted: number): Batch {
    return unpackBatch(got, this.config, batchStart, firstWanted, (n) => this.#buffers.take(n));
  }
}
