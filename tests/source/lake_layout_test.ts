/** lib/source/lake_layout.ts: where each batch of a SEP-54 lake lives, and what a key says. */
import assert from "node:assert/strict";
import {
  batchStartOf,
  type LakeConfig,
  objectKey,
  parseBatchKey,
  parseConfig,
} from "../../lib/source/lake_layout.ts";

const config = (lpb: number, bpp: number): LakeConfig => ({
  networkPassphrase: "x",
  version: "1.0",
  compression: "zstd",
  ledgersPerBatch: lpb,
  batchesPerPartition: bpp,
});

Deno.test("SEP-54 keys: prefix, partition folder, batch range", () => {
  assert.equal(
    objectKey(config(1, 64000), 1410367, "zst"),
    "FFEA83FF--1408000-1471999/FFEA7AC0--1410367.xdr.zst",
  );
  assert.equal(
    objectKey(config(1, 64000), 999, "zstd"),
    "FFFFFFFF--0-63999/FFFFFC18--999.xdr.zstd",
  );
  assert.equal(objectKey(config(64, 1), 128, "zst"), "FFFFFF7F--128-191.xdr.zst");
  assert.equal(
    objectKey(config(64, 10), 640, "zst"),
    "FFFFFD7F--640-1279/FFFFFD7F--640-703.xdr.zst",
  );
  assert.equal(objectKey(config(1, 1), 5, "zst"), "FFFFFFFA--5.xdr.zst");
});

Deno.test("batch keys read back: start and extension of every shape objectKey writes; other objects are no batch", () => {
  for (const [lpb, bpp] of [[1, 64000], [64, 1], [64, 10], [1, 1]]) {
    for (const seq of [0, 5, 999, 1410367]) {
      const start = batchStartOf(config(lpb, bpp), seq);
      assert.ok(start <= seq && seq < start + lpb, `${seq} lies in the batch from ${start}`);
      for (const ext of ["zst", "zstd"] as const) {
        assert.deepEqual(parseBatchKey(objectKey(config(lpb, bpp), start, ext)), { start, ext });
      }
    }
  }
  for (
    const key of [".config.json", "FFFFFFFA--5.xdr", "FFFFFFFA--5.xdr.gz", "x/FFFFFFFA--5.xdr.zst"]
  ) {
    assert.equal(parseBatchKey(key), null, key);
  }
});

Deno.test(".config.json: the fields checked, each problem one line naming the object and the field", () => {
  const where = "lake/.config.json";
  const parse = (v: unknown) => parseConfig(new TextEncoder().encode(JSON.stringify(v)), where);
  const good = { ...config(64, 10), version: undefined };
  assert.deepEqual(parse(good), { ...config(64, 10), version: "" });
  assert.throws(
    () => parseConfig(new TextEncoder().encode("{\n  oops"), where),
    (e: Error) => e.message.startsWith(`${where}: not valid JSON (`) && !e.message.includes("\n"),
  );
  assert.throws(() => parse([1]), { message: `${where}: expected a JSON object` });
  assert.throws(() => parse({ ...good, compression: "gzip" }), {
    message: `${where}: field compression must be "zstd", got "gzip"`,
  });
  assert.throws(() => parse({ ...good, ledgersPerBatch: 0 }), {
    message: `${where}: field ledgersPerBatch must be a positive integer, got 0`,
  });
});
