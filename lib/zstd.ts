/**
 * zstd for the hot path: one node:zlib engine per thread, reused for every call, instead of
 * zstdCompressSync/zstdDecompressSync, which build a stream object and a native context per call,
 * collect the output in fresh 16 KiB chunks and concatenate them (in profiles, a tenth of a
 * build's CPU besides zstd itself, and most of a 2 KB ledger's cost).
 *
 * The bytes are the same as theirs: zstd's output depends on the calls it sees, so the engine is
 * driven exactly as node:zlib drives it (the whole input with ZSTD_e_end, output offered in
 * 16 KiB windows); only where the output lands differs (one growing buffer, copied out once).
 * tests/zstd_test.ts holds both equal.
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

  constructor(private readonly make: () => Engine) {}

  /** The whole of `input` through the engine with ZSTD_e_end; a copy of what came out. */
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
        handle.writeSync(constants.ZSTD_e_end, input, inOff, inAvail, this.#out, outOff, WINDOW);
        const [outLeft, inLeft] = [state[0], state[1]];
        outOff += WINDOW - outLeft;
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
    return this.#out.slice(0, outOff);
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
    this.#engine = new Reused(() =>
      createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: level } }) as Engine
    );
  }

  compress(input: Uint8Array): Uint8Array {
    return this.#engine.run(input);
  }
}

/** Decompresses like `zstdDecompressSync(input)`: the first frame; anything after it is ignored. */
export class ZstdDecompressor {
  readonly #engine = new Reused(() => createZstdDecompress() as Engine);

  decompress(input: Uint8Array): Uint8Array {
    return this.#engine.run(input);
  }
}
