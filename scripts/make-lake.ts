/**
 * Writes a synthetic Galexie data lake: `.config.json` plus zstd LedgerCloseMetaBatch objects,
 * through an ObjectStore (a directory or a bucket). Deterministic for a seed. Headers form a valid
 * hash chain; transaction sets mix v0, v1 and fee-bump envelopes and, for LedgerCloseMeta v2, a
 * parallel Soroban phase, so operation counting is exercised; transaction meta carries
 * ContractCode entries of mixed bytes to reach the target size with realistic compressibility.
 *
 * Speed comes from templates: each transaction-set variant is XDR-encoded once with the SDK, and
 * per ledger only the header fields, the set's previousLedgerHash and the filler bytes change.
 *
 *   deno run -A scripts/make-lake.ts --out <dir|url> --network testnet --start 1 --count 30000 \
 *     --lcm-version 2 --ledger-bytes 2048 [--ledgers-per-batch 1 --batches-per-partition 64000]
 *
 * With `--rate` it is a lake that grows, as Galexie's does: it first writes whatever of the range
 * is missing, then appends ledgers at that rate (the hash chain runs on: ledger n is the same
 * for the same options whenever it is written), each object published whole, until `--count`
 * ledgers exist or it is stopped (Ctrl+C). `--help` lists every option.
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { constants, zstdCompressSync } from "node:zlib";
import { xdr } from "@stellar/stellar-sdk";
import type { ObjectStore } from "../lib/blob/store.ts";
import { dirname } from "node:path";
import { CONFIG_KEY, type LakeConfig, objectKey } from "../lib/source/lake_layout.ts";
import { type Network, parseNetwork, passphraseOf } from "../lib/source/network.ts";
import { sleep } from "../lib/runtime/time.ts";

export interface MakeLakeOptions {
  /** Where to write: an open store, or a URL/path for openStore. */
  store?: ObjectStore;
  url?: string;
  network: Network;
  start: number;
  count: number;
  lcmVersion: 0 | 1 | 2;
  /** Approximate size of each LedgerCloseMeta (default 2048). */
  ledgerBytes?: number;
  ledgersPerBatch?: number;
  batchesPerPartition?: number;
  ext?: "zst" | "zstd";
  seed?: number;
  /**
   * Grow: ledgers a second. The objects already in the lake are compared with what these options
   * generate (a different seed or size would break the hash chain) and kept; the rest are
   * appended at this pace, each published whole (put-if-absent), until `count` ledgers exist.
   */
  rate?: number;
  /** Ends a growing lake between two objects. */
  signal?: AbortSignal;
  /** Told of each ledger as it is written (appended) or found already in the lake. */
  onLedger?: (sequence: number, appended: boolean) => void;
}

// Wire objects are the SDK's plain `toXdrObject()` shapes; typing each one buys nothing here.
// deno-lint-ignore no-explicit-any
type Wire = any;
interface Encoder {
  encode(value: unknown): Uint8Array;
}
const enc = (type: { readonly schema: unknown }) => type.schema as Encoder;

/** mulberry32: small, fast, deterministic. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const bytes = (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const r = next();
      out[i] = r;
      if (i + 1 < n) out[i + 1] = r >>> 8;
      if (i + 2 < n) out[i + 2] = r >>> 16;
      if (i + 3 < n) out[i + 3] = r >>> 24;
    }
    return out;
  };
  const int = (lo: number, hi: number) => lo + (next() % (hi - lo + 1));
  return { next, bytes, int };
}
type Rng = ReturnType<typeof prng>;

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  const first = needle[0];
  outer: for (let i = hay.indexOf(first, from); i >= 0; i = hay.indexOf(first, i + 1)) {
    if (i + needle.length > hay.length) return -1;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Contract-code-like bytes: mostly phrases from a shared vocabulary, one run in eight random.
 * With the random hashes and signatures around it a ledger compresses about 2-3x (small) to 5x
 * (large), like the real samples.
 */
class Filler {
  readonly vocab: Uint8Array;
  constructor(rng: Rng) {
    this.vocab = rng.bytes(4096);
  }
  fill(rng: Rng, out: Uint8Array, from: number, to: number): void {
    const v = this.vocab;
    let i = from;
    while (i < to) {
      const r = rng.next();
      if ((r & 7) === 0) {
        // A fresh value (a key, an amount): 16 random bytes.
        const n = Math.min(16, to - i);
        for (let j = 0; j < n; j += 4) {
          const x = rng.next();
          for (let k = 0; k < 4 && j + k < n; k++) out[i + j + k] = x >>> (k * 8);
        }
        i += n;
      } else {
        // A recurring phrase (code, a common constant): 16-63 bytes from the shared vocabulary.
        const n = Math.min(16 + ((r >>> 3) & 47), to - i);
        const at = (r >>> 9) % (v.length - 64);
        out.set(v.subarray(at, at + n), i);
        i += n;
      }
    }
  }
}

type TxKind = "v0" | "v1" | "feeBump" | "soroban";

interface Variant {
  /** Encoded transaction set; its previousLedgerHash is patched per ledger at `prevHashAt`. */
  txSet: Uint8Array;
  prevHashAt: number;
  /** Encoded fields after the tx set (txProcessing ..), with filler regions to refresh. */
  tail: Uint8Array;
  filler: Array<[number, number]>;
  fees: bigint;
}

const PROTOCOL: Record<0 | 1 | 2, number> = { 0: 19, 1: 21, 2: 23 };

class LedgerFactory {
  readonly rng: Rng;
  readonly filler: Filler;
  readonly accounts: Uint8Array[];
  readonly contracts: Uint8Array[];
  readonly variants: Variant[] = [];

  constructor(readonly version: 0 | 1 | 2, readonly ledgerBytes: number, seed: number) {
    this.rng = prng(seed);
    this.filler = new Filler(this.rng);
    this.accounts = Array.from({ length: 64 }, () => this.rng.bytes(32));
    this.contracts = Array.from({ length: 8 }, () => this.rng.bytes(32));
    for (let i = 0; i < 16; i++) this.variants.push(this.#variant(i));
  }

  #pick<T>(xs: T[]): T {
    return xs[this.rng.next() % xs.length];
  }

  #muxed(): Wire {
    return { type: 0, ed25519: this.#pick(this.accounts) };
  }

  #signatures(n: number): Wire[] {
    return Array.from(
      { length: n },
      () => ({ hint: this.rng.bytes(4), signature: this.rng.bytes(64) }),
    );
  }

  #ops(kind: TxKind, n: number): Wire[] {
    if (kind === "soroban") {
      return [{
        sourceAccount: null,
        body: {
          type: 24,
          invokeHostFunctionOp: {
            hostFunction: {
              type: 0,
              invokeContract: {
                contractAddress: { type: 1, contractId: this.#pick(this.contracts) },
                functionName: new TextEncoder().encode("transfer"),
                args: [],
              },
            },
            auth: [],
          },
        },
      }];
    }
    return Array.from({ length: n }, () => ({
      sourceAccount: null,
      body: {
        type: 1,
        paymentOp: {
          destination: this.#muxed(),
          asset: { type: 0 },
          amount: BigInt(this.rng.int(1, 1_000_000_000)),
        },
      },
    }));
  }

  #tx(ops: Wire[]): Wire {
    return {
      sourceAccount: this.#muxed(),
      fee: 100 * ops.length,
      seqNum: BigInt(this.rng.next()) * 4096n,
      cond: { type: 0 },
      memo: { type: 0 },
      operations: ops,
      ext: { v: 0 },
    };
  }

  #envelope(kind: TxKind, ops: Wire[]): Wire {
    switch (kind) {
      case "v0":
        return {
          type: 0,
          v0: {
            tx: {
              sourceAccountEd25519: this.#pick(this.accounts),
              fee: 100 * ops.length,
              seqNum: BigInt(this.rng.next()) * 4096n,
              timeBounds: null,
              memo: { type: 0 },
              operations: ops,
              ext: { v: 0 },
            },
            signatures: this.#signatures(1),
          },
        };
      case "feeBump":
        return {
          type: 5,
          feeBump: {
            tx: {
              feeSource: this.#muxed(),
              fee: BigInt(400 * ops.length),
              innerTx: { type: 2, v1: { tx: this.#tx(ops), signatures: this.#signatures(1) } },
              ext: { v: 0 },
            },
            signatures: this.#signatures(1),
          },
        };
      default:
        return { type: 2, v1: { tx: this.#tx(ops), signatures: this.#signatures(1) } };
    }
  }

  #opResult(kind: TxKind): Wire {
    return kind === "soroban"
      ? {
        code: 0,
        tr: { type: 24, invokeHostFunctionResult: { code: 0, success: this.rng.bytes(32) } },
      }
      : { code: 0, tr: { type: 1, paymentResult: { code: 0 } } };
  }

  /** TransactionResultMeta(V1) whose meta creates a ContractCode entry of `code`. */
  #resultMeta(kind: TxKind, nOps: number, fee: bigint, code: Uint8Array): Wire {
    const results = Array.from({ length: nOps }, () => this.#opResult(kind));
    const result = kind === "feeBump"
      ? {
        code: 1,
        innerResultPair: {
          transactionHash: this.rng.bytes(32),
          result: { feeCharged: fee, result: { code: 0, results }, ext: { v: 0 } },
        },
      }
      : { code: 0, results };
    const codeEntry = {
      type: 0,
      created: {
        lastModifiedLedgerSeq: 0,
        data: { type: 7, contractCode: { ext: { v: 0 }, hash: sha256(code), code } },
        ext: { v: 0 },
      },
    };
    const meta = {
      result: {
        transactionHash: this.rng.bytes(32),
        result: { feeCharged: fee, result, ext: { v: 0 } },
      },
      feeProcessing: [],
      txApplyProcessing: {
        v: 2,
        v2: {
          txChangesBefore: [],
          operations: Array.from(
            { length: nOps },
            (_, i) => ({ changes: i === 0 ? [codeEntry] : [] }),
          ),
          txChangesAfter: [],
        },
      },
    };
    return this.version === 2 ? { ext: { v: 0 }, ...meta, postTxApplyFeeProcessing: [] } : meta;
  }

  #variant(index: number): Variant {
    // Transactions scale with the ledger size, as on the real networks (~1-2 KB per tx).
    const base = Math.max(2, Math.round(this.ledgerBytes / 1500));
    const nTx = Math.max(2, this.rng.int(Math.ceil(base / 2), base + 1));
    const kinds: TxKind[] = [];
    for (let i = 0; i < nTx; i++) {
      const r = (i + index) % 4;
      if (this.version === 0) kinds.push(r === 3 ? "feeBump" : r === 2 ? "v0" : "v1");
      else kinds.push(r === 0 ? "soroban" : r === 1 ? "feeBump" : r === 2 && i % 2 ? "v0" : "v1");
    }
    if (this.version > 0 && !kinds.includes("soroban")) kinds[0] = "soroban";
    const txs = kinds.map((kind) => {
      const nOps = kind === "soroban" ? 1 : this.rng.int(1, 3);
      const ops = this.#ops(kind, nOps);
      return { kind, nOps, envelope: this.#envelope(kind, ops), fee: BigInt(100 * nOps) };
    });

    // Two passes: measure the fixed overhead with empty filler, then size the filler to the target.
    const build = (codeBytes: number): Variant => {
      const rng = prng(index * 7919 + 17);
      const codes = txs.map(() => {
        const c = new Uint8Array(codeBytes);
        this.filler.fill(rng, c, 0, c.length);
        return c;
      });
      const txSet = this.#txSet(txs.map((t) => t.envelope), kinds, index);
      const processing = txs.map((t, i) => this.#resultMeta(t.kind, t.nOps, t.fee, codes[i]));
      const tail = this.#tail(processing);
      const filler: Array<[number, number]> = [];
      let from = 0;
      for (const c of codes) {
        if (c.length < 32) continue;
        const at = indexOfBytes(tail, c.subarray(0, 32), from);
        if (at < 0) throw new Error("make-lake: filler not found in encoded meta");
        filler.push([at, at + c.length]);
        from = at + c.length;
      }
      const fees = txs.reduce((s, t) => s + t.fee, 0n);
      return { txSet, prevHashAt: this.version === 0 ? 0 : 4, tail, filler, fees };
    };
    const probe = build(0);
    const overhead = 4 + 8 + 32 + HEADER_BYTES + 4 + probe.txSet.length + probe.tail.length;
    const per = Math.max(0, Math.floor((this.ledgerBytes - overhead) / txs.length / 4) * 4);
    return build(per);
  }

  #txSet(envelopes: Wire[], kinds: TxKind[], index: number): Uint8Array {
    const prev = new Uint8Array(32);
    if (this.version === 0) {
      return enc(xdr.TransactionSet).encode({ previousLedgerHash: prev, txs: envelopes });
    }
    const classic = envelopes.filter((_, i) => kinds[i] !== "soroban");
    const soroban = envelopes.filter((_, i) => kinds[i] === "soroban");
    const component = (txs: Wire[]) => ({
      type: 0,
      txsMaybeDiscountedFee: { baseFee: 100n, txs },
    });
    let sorobanPhase: Wire;
    if (this.version === 1) {
      sorobanPhase = { v: 0, v0Components: soroban.length ? [component(soroban)] : [] };
    } else {
      // executionStages[stage][cluster][tx]: spread the Soroban txs over 1-2 stages x 1-2 clusters.
      const stages = 1 + (index & 1);
      const clusters = 1 + ((index >> 1) & 1);
      const grid: Wire[][][] = Array.from(
        { length: stages },
        () => Array.from({ length: clusters }, () => [] as Wire[]),
      );
      soroban.forEach((tx, i) => grid[i % stages][Math.floor(i / stages) % clusters].push(tx));
      const executionStages = grid.map((s) => s.filter((c) => c.length)).filter((s) => s.length);
      sorobanPhase = { v: 1, parallelTxsComponent: { baseFee: 100n, executionStages } };
    }
    return enc(xdr.GeneralizedTransactionSet).encode({
      v: 1,
      v1TxSet: {
        previousLedgerHash: prev,
        phases: [{ v: 0, v0Components: classic.length ? [component(classic)] : [] }, sorobanPhase],
      },
    });
  }

  /** Every LedgerCloseMeta field after txSet, encoded with the SDK's own field schemas. */
  #tail(processing: Wire[]): Uint8Array {
    const type =
      [xdr.LedgerCloseMetaV0, xdr.LedgerCloseMetaV1, xdr.LedgerCloseMetaV2][this.version];
    const entries = (type.schema as unknown as { entries: [string, Encoder][] }).entries;
    const values: Record<string, Wire> = {
      txProcessing: processing,
      upgradesProcessing: [],
      scpInfo: [],
      totalByteSizeOfLiveSorobanState: 1_234_567n,
      evictedKeys: [],
      unused: [],
    };
    const after = entries.slice(entries.findIndex(([n]) => n === "txSet") + 1);
    return concat(after.map(([name, schema]) => {
      if (!(name in values)) {
        throw new Error(`make-lake: no value for LedgerCloseMeta field ${name}`);
      }
      return schema.encode(values[name]);
    }));
  }
}

// LedgerHeader with no upgrades and a basic StellarValue has a fixed layout; these are offsets.
const HEADER_BYTES = 324;
const H_PREV = 4;
const H_TXSET_HASH = 36;
const H_CLOSE_TIME = 68;
const H_RESULT_HASH = 84;
const H_BUCKET_HASH = 116;
const H_SEQ = 148;
const H_TOTAL_COINS = 152;
const H_FEE_POOL = 160;
const H_ID_POOL = 172;

function headerTemplate(protocol: number): Uint8Array {
  const zero = new Uint8Array(32);
  const bytes = enc(xdr.LedgerHeader).encode({
    ledgerVersion: protocol,
    previousLedgerHash: zero,
    scpValue: { txSetHash: zero, closeTime: 0n, upgrades: [], ext: { v: 0 } },
    txSetResultHash: zero,
    bucketListHash: zero,
    ledgerSeq: 0,
    totalCoins: 0n,
    feePool: 0n,
    inflationSeq: 0,
    idPool: 0n,
    baseFee: 100,
    baseReserve: 5_000_000,
    maxTxSetSize: 1000,
    skipList: [zero, zero, zero, zero],
    ext: { v: 0 },
  });
  if (bytes.length !== HEADER_BYTES) throw new Error(`make-lake: header is ${bytes.length} bytes`);
  return bytes;
}

/** Yields each ledger's LedgerCloseMeta XDR, in sequence, chaining header hashes. */
export function* syntheticLedgers(
  opts: Pick<MakeLakeOptions, "start" | "count" | "lcmVersion" | "ledgerBytes" | "seed">,
): Generator<{ sequence: number; xdr: Uint8Array; hash: Uint8Array }> {
  const version = opts.lcmVersion;
  const seed = opts.seed ?? 1;
  const gen = new LedgerFactory(version, opts.ledgerBytes ?? 2048, seed);
  const rng = prng(seed ^ 0x5EED);
  const header = headerTemplate(PROTOCOL[version]);
  const hv = new DataView(header.buffer);
  // Ledger 1's predecessor does not exist; any other start pretends one did.
  let prevHash = opts.start <= 1 ? new Uint8Array(32) : sha256(rng.bytes(32));
  let feePool = 4_156_666_436_836n;
  const totalCoins = 1_054_439_020_873_472_865n; // ~pubnet today: above 2^53 on purpose
  const prefix = version === 0 ? [0, 0, 0, 0] : [0, 0, 0, version, 0, 0, 0, 0]; // v, ext v0
  for (let i = 0; i < opts.count; i++) {
    const seq = opts.start + i;
    const variant = gen.variants[rng.next() % gen.variants.length];
    const txSet = variant.txSet.slice();
    txSet.set(prevHash, variant.prevHashAt);
    const tail = variant.tail.slice();
    for (const [from, to] of variant.filler) gen.filler.fill(rng, tail, from, to);
    feePool += variant.fees;

    header.set(prevHash, H_PREV);
    header.set(sha256(txSet), H_TXSET_HASH);
    hv.setBigUint64(H_CLOSE_TIME, 1_700_000_000n + BigInt(seq) * 5n + BigInt(rng.next() & 1));
    header.set(rng.bytes(32), H_RESULT_HASH);
    header.set(rng.bytes(32), H_BUCKET_HASH);
    hv.setUint32(H_SEQ, seq);
    hv.setBigInt64(H_TOTAL_COINS, totalCoins);
    hv.setBigInt64(H_FEE_POOL, feePool);
    hv.setBigUint64(H_ID_POOL, BigInt(seq) * 3n);
    const hash = sha256(header);

    const lcm = concat([
      new Uint8Array(prefix),
      hash,
      header,
      new Uint8Array(4), // LedgerHeaderHistoryEntry ext v0
      txSet,
      tail,
    ]);
    yield { sequence: seq, xdr: lcm, hash };
    prevHash = hash;
  }
}

// Stores make each put durable (fsyncs, or a network round trip): overlap many of them.
const PUT_CONCURRENCY = 256;

function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** Writes the lake; returns the last ledger it holds (less than asked when stopped early). */
export async function makeLake(opts: MakeLakeOptions): Promise<number> {
  if (!opts.store && !opts.url) throw new Error("makeLake: give store or url");
  // Loaded only for a URL, so tests that pass a store don't pull in the cloud SDKs.
  const store: ObjectStore = opts.store ??
    await (await import("../lib/blob/mod.ts")).openStore(opts.url!);
  try {
    const config: LakeConfig = {
      networkPassphrase: passphraseOf(opts.network),
      version: "1.0",
      compression: "zstd",
      ledgersPerBatch: opts.ledgersPerBatch ?? 1,
      batchesPerPartition: opts.batchesPerPartition ?? 64000,
    };
    const json = new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n");
    if (await store.putIfAbsent(CONFIG_KEY, json) === "exists") {
      const have = new TextDecoder().decode(await store.get(CONFIG_KEY));
      if (JSON.stringify(JSON.parse(have)) !== JSON.stringify(config)) {
        throw new Error(`${store.url}/${CONFIG_KEY} exists with a different configuration`);
      }
    }
    const lpb = config.ledgersPerBatch;
    const ext = opts.ext ?? "zst";
    const zstd = { params: { [constants.ZSTD_c_compressionLevel]: 3 } };
    const write = opts.rate === undefined
      ? fixtureWriter(store)
      : growingWriter(store, opts.rate, opts.signal);
    const inFlight = new Set<Promise<unknown>>();
    let last = opts.start - 1;
    const put = async (batchStart: number, ledgers: Uint8Array[], first: number) => {
      const body = concat([
        u32be(first),
        u32be(first + ledgers.length - 1),
        u32be(ledgers.length),
        ...ledgers,
      ]);
      const key = objectKey(config, batchStart, ext);
      const p = write(key, zstdCompressSync(body, zstd)).then((outcome) => {
        if (outcome === "stopped") return;
        for (let i = 0; i < ledgers.length; i++) {
          opts.onLedger?.(first + i, outcome === "written");
        }
        last = Math.max(last, first + ledgers.length - 1);
      });
      inFlight.add(p);
      p.finally(() => inFlight.delete(p)).catch(() => {});
      if (inFlight.size >= (opts.rate === undefined ? PUT_CONCURRENCY : 1)) {
        await Promise.race(inFlight);
      }
    };
    let batch: Uint8Array[] = [];
    let batchStart = -1;
    let first = -1;
    for (const { sequence, xdr } of syntheticLedgers(opts)) {
      if (opts.signal?.aborted) break;
      const bs = Math.floor(sequence / lpb) * lpb;
      if (bs !== batchStart && batch.length) {
        await put(batchStart, batch, first);
        batch = [];
      }
      if (!batch.length) {
        batchStart = bs;
        first = sequence;
      }
      batch.push(xdr);
    }
    if (batch.length && !opts.signal?.aborted) await put(batchStart, batch, first);
    await Promise.all(inFlight);
    return last;
  } finally {
    if (!opts.store) await (store as ObjectStore).close?.();
  }
}

/** Writes one object: written, kept (already there, the same bytes) or stopped (not written). */
type Write = (key: string, bytes: Uint8Array) => Promise<"written" | "kept" | "stopped">;

/**
 * A generated lake is a fixture: on local disk it is written without the store's two fsyncs per
 * object (30,000 objects took 22 s that way, 3 s without), and simply made again if lost.
 */
function fixtureWriter(store: ObjectStore): Write {
  const localPath = store.localPath?.bind(store);
  if (!localPath) {
    return async (key, bytes) => {
      if (await store.putIfAbsent(key, bytes) === "created") return "written";
      throw new Error(`${store.url}/${key} already exists`);
    };
  }
  return async (key, bytes) => {
    const path = localPath(key);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(path, bytes, { createNew: true });
    return "written";
  };
}

/**
 * A lake that grows while copiers read it: an object already there must be exactly what these
 * options generate (else the hash chain would break where the old part ends); a new one waits
 * for its time, then is published whole, as Galexie publishes (a reader never sees half of it).
 */
function growingWriter(store: ObjectStore, rate: number, signal?: AbortSignal): Write {
  let next = performance.now();
  return async (key, bytes) => {
    const have = await store.getVersioned(key);
    if (have) {
      if (!sameBytes(have.data, bytes)) {
        throw new Error(
          `${store.url}/${key} is not what these options generate: the lake was made with ` +
            `another --seed, --ledger-bytes, --lcm-version or --start, and growing it would ` +
            `break the hash chain`,
        );
      }
      return "kept";
    }
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait, signal);
    if (signal?.aborted) return "stopped";
    next = Math.max(next, performance.now()) + 1000 / rate;
    // Another writer may have published it meanwhile: then it must be these bytes too.
    if (await store.putIfAbsent(key, bytes) === "created") return "written";
    const now = await store.get(key);
    if (!sameBytes(now, bytes)) {
      throw new Error(`${store.url}/${key} was written by another writer`);
    }
    return "kept";
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The command line: every option, its default, and what it does (`--help` prints this). */
const OPTIONS = {
  out: {
    type: "string",
    help: "where to write: a directory, file://, gs:// or s3:// URL (required)",
  },
  network: { type: "string", default: "testnet", help: "pubnet, testnet or futurenet" },
  start: { type: "string", default: "1", help: "first ledger" },
  count: {
    type: "string",
    default: "1000",
    help: "ledgers in the lake; with --rate, 0 means no end (until Ctrl+C)",
  },
  "lcm-version": { type: "string", default: "2", help: "LedgerCloseMeta version: 0, 1 or 2" },
  "ledger-bytes": { type: "string", default: "2048", help: "approximate size of each ledger" },
  "ledgers-per-batch": { type: "string", default: "1", help: "ledgers per lake object" },
  "batches-per-partition": { type: "string", default: "64000", help: "objects per lake folder" },
  ext: { type: "string", default: "zst", help: "object extension: zst, or zstd (older lakes)" },
  seed: { type: "string", default: "1", help: "the generator's seed (same seed, same ledgers)" },
  rate: {
    type: "string",
    help: "grow: append this many ledgers a second (e.g. 0.2 for Stellar's pace), after " +
      "writing what is missing; stops at --count ledgers (0: never)",
  },
  help: { type: "boolean", help: "print this and exit" },
} as const;

function usage(): string {
  const lines = Object.entries(OPTIONS).map(([name, o]) => {
    const left = `  --${name}${o.type === "string" ? " <value>" : ""}`;
    const def = "default" in o ? ` (default ${o.default})` : "";
    return `${left.padEnd(34)}${o.help}${def}`;
  });
  return [
    "usage: deno run -A scripts/make-lake.ts --out <dir|url> [options]",
    "",
    "Writes a synthetic Galexie data lake with a valid hash chain (deterministic for a seed).",
    "",
    ...lines,
  ].join("\n");
}

/** Parses the command line, or prints one line naming the problem and exits 2. */
function parseCommandLine(args: string[]) {
  const fail = (problem: string): never => {
    console.error(`make-lake: ${problem} (--help lists the options)`);
    Deno.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: OPTIONS as never, strict: true }).values;
  } catch (e) {
    return fail((e as Error).message.replace(/^Unknown option/, "unknown option"));
  }
  if (values.help) {
    console.log(usage());
    Deno.exit(0);
  }
  if (!values.out) fail("--out is required");
  const int = (name: keyof typeof OPTIONS) => {
    const v = String(values[name]);
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
      fail(`--${name} must be a non-negative integer, got "${v}"`);
    }
    return n;
  };
  const lcmVersion = int("lcm-version");
  if (lcmVersion > 2) fail("--lcm-version must be 0, 1 or 2");
  if (values.ext !== "zst" && values.ext !== "zstd") fail("--ext must be zst or zstd");
  let rate: number | undefined;
  if (values.rate !== undefined) {
    rate = Number(values.rate);
    if (!(rate > 0) || !Number.isFinite(rate)) {
      fail(`--rate must be a number of ledgers a second above 0, got "${values.rate}"`);
    }
  }
  let network: Network;
  try {
    network = parseNetwork(String(values.network), "--network");
  } catch (e) {
    return fail((e as Error).message);
  }
  const count = int("count");
  if (count === 0 && rate === undefined) fail("--count 0 needs --rate (a lake that grows)");
  const opts: MakeLakeOptions = {
    url: String(values.out),
    network,
    start: int("start") || fail("--start must be at least 1"),
    count: count === 0 ? Infinity : count,
    lcmVersion: lcmVersion as 0 | 1 | 2,
    ledgerBytes: int("ledger-bytes"),
    ledgersPerBatch: int("ledgers-per-batch") || fail("--ledgers-per-batch must be at least 1"),
    batchesPerPartition: int("batches-per-partition") ||
      fail("--batches-per-partition must be at least 1"),
    ext: values.ext as "zst" | "zstd",
    seed: int("seed"),
  };
  return { opts, rate };
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`make-lake: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

async function main(): Promise<void> {
  const { opts, rate } = parseCommandLine(Deno.args);
  const t0 = performance.now();
  if (rate === undefined) {
    await makeLake(opts);
    const s = (performance.now() - t0) / 1000;
    console.log(`wrote ${opts.count} ledgers to ${opts.url} in ${s.toFixed(1)}s`);
  } else {
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    let had = 0;
    let appending = false;
    const last = await makeLake({
      ...opts,
      rate,
      signal: stop.signal,
      onLedger: (seq, appended) => {
        if (!appended) return void had++;
        if (!appending) {
          appending = true;
          console.log(
            `kept the ${had} ledgers already in ${opts.url}; appending from ${seq} at ${rate}/s`,
          );
        }
        console.log(`appended ledger ${seq}`);
      },
    });
    console.log(`${stop.signal.aborted ? "stopped" : "done"}: ${opts.url} ends at ledger ${last}`);
  }
}
