/**
 * zstd for the hot path: one node:zlib engine per thread, reused for every call, instead of
 * zstdCompressSync/zstdDecompressSync, which build a stream object and a native context per call,
 * collect the output in fresh 16 KiB chunks and concatenate them (in profiles, a tenth of a
 * build's CPU besides zstd itself, and most of a 2 KB ledger's cost).
 *
 * The bytes are the same as theirs: zstd's compressed output depends on the calls it sees, so the
 * compressing engine is driven exactly as node:zlib drives it (the whole input with ZSTD_e_end,
 * output offered in 16 KiB windows); only where the output lands differs (one growing buffer).
 * Decompressed output does not depend on the windows. tests/zstd_test.ts holds both equal.
 */
import {
  constants,
  createZstdCompress,
  createZstdDecompress,
  type ZstdCompress,
  type ZstdDecompress,
} from "node:zlib";

/** node:zlib's default chunk size (Z_DEFAULT_CHUNK): the output window of each engine call. */
const WINDOW = 16 * 1024;

/** The native handle under a node:zlib engine: Node's (and Deno's) zlib binding. */
interface Handle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOff: number,
    inLen: number,
    out: Uint8Array,
    outOff: number,
    outLen: number,
  ): void;
  reset(): void;
  close(): void;
}

type Engine = (ZstdCompress | ZstdDecompress) & { _handle: Handle; _writeState: Uint32Array };

class Reused {
  #engine: Engine | null = null;
  #out = new Uint8Array(1 << 20);

  /** `window`: the output offered per engine call (null: all the room the buffer has). */
  constructor(private readonly make: () => Engine, private readonly window: number | null) {}

  /**
   * The whole of `input` through the engine with ZSTD_e_end; what came out, as a view of the
   * engine's buffer (valid until the next call).
   */
  run(input: Uint8Array): Uint8Array {
    const engine = this.#engine ??= this.make();
    const [handle, state] = [engine._handle, engine._writeState];
    let inOff = 0;
    let inAvail = input.byteLength;
    let outOff = 0;
    try {
      // Each call starts a new frame, whatever the last one left (a truncated input leaves the
      // engine inside a frame).
      handle.reset();
      for (;;) {
        if (this.#out.byteLength - outOff < WINDOW) this.#grow(outOff);
        const room = this.window ?? this.#out.byteLength - outOff;
        handle.writeSync(constants.ZSTD_e_end, input, inOff, inAvail, this.#out, outOff, room);
        const outLeft = state[0];
        const inLeft = state[1];
        outOff += room - outLeft;
        inOff += inAvail - inLeft;
        inAvail = inLeft;
        // As node:zlib: a full window means there may be more; otherwise the call is done
        // (input left over after the frame is ignored, as zstdDecompressSync ignores it).
        if (outLeft !== 0) break;
      }
    } catch (err) {
      // A failed engine is not reused: the next call gets a fresh one.
      this.#engine = null;
      try {
        handle.close();
      } catch { /* already closed */ }
      throw err;
    }
    return this.#out.subarray(0, outOff);
  }

  #grow(used: number): void {
    const bigger = new Uint8Array(Math.max(this.#out.byteLength * 2, used + WINDOW));
    bigger.set(this.#out.subarray(0, used));
    this.#out = bigger;
  }
}

/** Compresses like `zstdCompressSync(input, { params: { level } })`, byte for byte. */
export class ZstdCompressor {
  readonly #engine: Reused;

  constructor(level: number) {
    this.#engine = new Reused(
      () =>
        createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level } }) as Engine,
      WINDOW,
    );
  }

  compress(input: Uint8Array): Uint8Array {
    return this.#engine.run(input).slice();
  }

  /** compress(), without the copy: a view valid until the next call on this compressor. */
  compressView(input: Uint8Array): Uint8Array {
    return this.#engine.run(input);
  }
}

/** Decompresses like `zstdDecompressSync(input)`: the first frame; anything after it is ignored. */
export class ZstdDecompressor {
  // Decompression's output does not depend on the windows: offer all the room there is.
  readonly #engine = new Reused(() => createZstdDecompress() as Engine, null);

  /** `alloc(n)` gives the `n`-byte array the output is copied into (by default, a new one). */
  decompress(input: Uint8Array, alloc?: (n: number) => Uint8Array): Uint8Array {
    const out = this.#engine.run(input);
    if (!alloc) return out.slice();
    const into = alloc(out.byteLength);
    into.set(out);
    return into;
  }
}
