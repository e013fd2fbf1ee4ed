import assert from "node:assert/strict";
import { encodeManifest, type Manifest, parseManifest } from "../../lib/table/manifest.ts";
import { BronzeError } from "../../lib/runtime/errors.ts";

const MANIFEST: Manifest = {
  manifest_version: 2,
  dataset: {
    domain: "bronze",
    dataset: "ledgers_lcm_raw",
    network: "testnet",
    era_id: "pre_p23",
    version: "v1",
    schema_hash: "ab".repeat(32),
  },
  partition: {
    start: 101,
    end: 200,
    table: "ledgers_lcm_raw",
    file: "part-101-200.parquet",
    storage_path: "testnet/pre_p23/v1/ledgers_lcm_raw/range=101-200/part-101-200.parquet",
    first_previous_ledger_hash: "01".repeat(32),
    last_ledger_hash: "02".repeat(32),
  },
  table: { checksum: `sha256:${"cd".repeat(32)}`, rows: 100, bytes: 5000 },
  quality: { tx_count: 7, row_count: 100 },
  source: { type: "archive", location: "/lake" },
  producer: { version: "bronze@0.1.0", git_sha: null },
  created_at: "2026-11-26T15:09:09.952Z",
};

/** The same manifest, every object's keys in reverse order. */
function reversed(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.entries(v).reverse().map(([k, x]) => [k, reversed(x)]),
  );
}

Deno.test("manifest: the bytes are fixed JSON, in the interface's field order whatever the object's order", () => {
  const text = new TextDecoder().decode(encodeManifest(MANIFEST));
  assert.deepEqual(encodeManifest(reversed(MANIFEST) as Manifest), encodeManifest(MANIFEST));
  assert.deepEqual(
    [...text.matchAll(/^ {2}"([a-z_]+)"/gm)].map((m) => m[1]),
    [
      "manifest_version",
      "dataset",
      "partition",
      "table",
      "quality",
      "source",
      "producer",
      "created_at",
    ],
  );
  // Quality metrics sorted by name; the whole object round-trips.
  assert.ok(text.indexOf('"row_count"') < text.indexOf('"tx_count"'));
  assert.deepEqual(parseManifest(encodeManifest(MANIFEST), "m"), {
    ...MANIFEST,
    quality: { row_count: 100, tx_count: 7 },
  });
  assert.ok(text.endsWith("}\n"));
});

Deno.test("manifest: bytes that are not a JSON object are one error naming the manifest", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.throws(
    () => parseManifest(enc("{oops"), "/data/x/_manifest.json"),
    (e: Error) =>
      e instanceof BronzeError && /^manifest \/data\/x\/_manifest\.json is not valid JSON \(/.test(
        e.message,
      ),
  );
  assert.throws(
    () => parseManifest(enc("[1]"), "/data/x/_manifest.json"),
    new BronzeError("manifest /data/x/_manifest.json is not a JSON object"),
  );
});
