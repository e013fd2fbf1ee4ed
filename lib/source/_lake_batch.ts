/**
 * Decoding a lake's batch object: a zstd frame holding one LedgerCloseMetaBatch, whose header
 * (first ledger, last ledger, count) is checked against what the object's key says before its
 * ledgers are split out. Apart from the lake (lake.ts: which object, in what order, read ahead)
 * because the bytes' format is one concern and finding and fetching the objects another.
 */
import { constants as zlib, zstdDecompressSync } from "node:zlib";
import { BronzeError } from "../runtime/errors.ts";
import { oneLine } from "../runtime/format.ts";
import { ZstdDecompressor } from "../runtime/zstd.ts";
import { readU32, XdrCorruptError } from "./_xdr.ts";
import type { LakeConfig } from "./lake_layout.ts";
import { splitLedgers } from "./ledger.ts";

/** One engine per thread: a build worker reads one batch at a time. */
const zstd = new ZstdDecompressor();

export interface Batch {
  url: string;
  /** Decompressed batch; ledgers are views into it. */
  data: Uint8Array;
  /** [sequence, start, end] of each LedgerCloseMeta in `data`. */
  ledgers: Array<[number, number, number]>;
}

/**
 * The batch object `url` (grid start `batchStart`) decompressed into a buffer from `take` and
 * split into its ledgers; `firstWanted` is the ledger a problem names.
 */
export function unpackBatch(
  [url, compressed]: [string, Uint8Array],
  config: LakeConfig,
  batchStart: number,
  firstWanted: number,
  take: (size: number) => Uint8Array,
): Batch {
  let data: Uint8Array;
  try {
    data = zstd.decompress(compressed, take);
  } catch (e) {
    throw new BronzeError(
      `${url}: corrupt zstd (ledger ${firstWanted}): ${oneLine((e as Error).message)}`,
    );
  }
  const ledgers = _split(url, data, config, batchStart, firstWanted);
  return { url, data, ledgers };
}

/** Extents of each LedgerCloseMeta in a LedgerCloseMetaBatch, checked against the key. */
function _split(
  url: string,
  data: Uint8Array,
  config: LakeConfig,
  batchStart: number,
  firstWanted: number,
) {
  const keyEnd = batchStart + config.ledgersPerBatch - 1;
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

/**
 * The last ledger a batch object holds, from its header alone: read from the first compressed
 * block of `stream`, not the whole object (a batch may hold less than its key, `start`-`keyEnd`,
 * names). The stream is cancelled once the header is read.
 */
export async function lastLedgerOf(
  stream: ReadableStream<Uint8Array>,
  url: string,
  start: number,
  keyEnd: number,
): Promise<number> {
  const reader = stream.getReader();
  try {
    let compressed: Uint8Array = new Uint8Array(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (value) compressed = _concat(compressed, value);
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

function _concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
