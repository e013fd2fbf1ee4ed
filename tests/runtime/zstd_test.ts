/**
 * lib/zstd.ts against node:zlib's one-shot functions: the same compressed bytes, for every size
 * around its 16 KiB output window, at more than one level, call after call on one engine; the
 * same decompressed bytes, after a truncated or corrupt input too.
 */
import assert from "node:assert/strict";
import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { ZstdCompressor, ZstdDecompressor } from "../../lib/runtime/zstd.ts";

/** Bytes that compress somewhat (as ledgers do): a repeating pattern with noise. */
function sample(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 64 < 40 ? (i * 31) & 0xff : x >>> 24;
  }
  return out;
}

const SIZES = [0, 1, 100, 16_383, 16_384, 16_385, 65_536, 300_001, 2_500_000];
const level = (l: number) => ({ params: { [constants.ZSTD_c_compressionLevel]: l } });

for (const l of [3, 9]) {
  Deno.test(`compress at level ${l}: byte-identical to zstdCompressSync, call after call`, () => {
    const z = new ZstdCompressor(l);
    for (const [i, n] of SIZES.entries()) {
      const input = sample(n, i);
      const want = new Uint8Array(zstdCompressSync(input, level(l)));
      assert.deepEqual(z.compress(input), want, `${n} bytes`);
      assert.deepEqual(z.compress(input), want, `${n} bytes, again`);
    }
  });
}

Deno.test("the level holds across calls: level 9 differs from level 3 where zstd's does", () => {
  const input = sample(300_001, 7);
  assert.notDeepEqual(
    new Uint8Array(zstdCompressSync(input, level(3))),
    new Uint8Array(zstdCompressSync(input, level(9))),
  );
  const z = new ZstdCompressor(9);
  z.compress(sample(1000, 1));
  assert.deepEqual(z.compress(input), new Uint8Array(zstdCompressSync(input, level(9))));
});

Deno.test("decompress: the frame's bytes; a truncated frame gives what zstdDecompressSync gives; bytes after the frame are ignored", () => {
  const d = new ZstdDecompressor();
  for (const [i, n] of SIZES.entries()) {
    const raw = sample(n, i);
    const frame = new Uint8Array(zstdCompressSync(raw));
    assert.deepEqual(d.decompress(frame), raw, `${n} bytes`);
    // What arrived of a cut object (the lake's split step then finds the batch short).
    const truncated = frame.subarray(0, Math.max(0, frame.length - 10));
    assert.deepEqual(
      d.decompress(truncated),
      new Uint8Array(zstdDecompressSync(truncated)),
      `${n} bytes, truncated`,
    );
    // node:zlib itself ignores them too, unless the frame's output ends on its 16 KiB window.
    assert.deepEqual(d.decompress(new Uint8Array([...frame, 1, 2, 3, 4])), raw, `${n} + garbage`);
    assert.deepEqual(d.decompress(new Uint8Array([...frame, ...frame])), raw, `${n} twice`);
    // Earlier results stay intact while later ones are made.
    const kept = d.decompress(frame);
    for (let k = 0; k < 5; k++) d.decompress(frame);
    assert.deepEqual(kept, raw, `${n} bytes, kept`);
  }
});

Deno.test("decompress: corrupt input throws zstdDecompressSync's message; the next call works", () => {
  const d = new ZstdDecompressor();
  const corrupt = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5, 6, 7, 8]);
  let message = "";
  try {
    zstdDecompressSync(corrupt);
  } catch (e) {
    message = (e as Error).message;
  }
  assert.ok(message, "zstdDecompressSync refuses it");
  assert.throws(() => d.decompress(corrupt), { message });
  const raw = sample(50_000, 3);
  assert.deepEqual(d.decompress(new Uint8Array(zstdCompressSync(raw))), raw);
});
