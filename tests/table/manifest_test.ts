/**
 * lib/table/manifest.ts (the bytes of `_manifest.json`) and, beside it, manifest_check.ts (a stored
 * manifest checked against the folder it lies in, typed when usable, what an older one lacks).
 */
import assert from "node:assert/strict";
import {
  encodeManifest,
  type Manifest,
  parseManifest,
  type StoredManifest,
} from "../../lib/table/manifest.ts";
import { checkManifest } from "../../lib/table/manifest_check.ts";
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

/** Where MANIFEST lies: the folder of its range, in its dataset. */
const PLACE = {
  ds: {
    domain: "bronze",
    dataset: "ledgers_lcm_raw",
    network: "testnet",
    eraId: "pre_p23",
    version: "v1",
  },
  range: { start: 101, end: 200 },
  key: MANIFEST.partition.storage_path,
};

// ---- table/manifest_check.ts: a stored manifest checked against the folder it lies in ----

Deno.test("checkManifest: a current manifest, typed; it lacks nothing", () => {
  assert.deepEqual(checkManifest(MANIFEST, PLACE), {
    table: { checksum: `sha256:${"cd".repeat(32)}`, rows: 100, bytes: 5000 },
    producer: { version: "bronze@0.1.0", gitSha: null },
    schemaHash: "ab".repeat(32),
    chain: { firstPreviousLedgerHash: "01".repeat(32), lastLedgerHash: "02".repeat(32) },
    quality: { tx_count: 7, row_count: 100 },
    source: { type: "archive", location: "/lake" },
    createdAt: new Date("2026-11-26T15:09:09.952Z"),
    lacks: [],
  });
});

Deno.test("checkManifest: one written before manifest_version 2 is usable, and says what it lacks", () => {
  const v1: StoredManifest = {
    partition: { start: 101, end: 200, table: "ledgers_lcm_raw", file: "part-101-200.parquet" },
    table: MANIFEST.table,
    producer: { version: "bronze@0.0.9" },
  };
  const checked = checkManifest(v1, PLACE);
  assert.ok(!("problem" in checked));
  assert.deepEqual(checked.lacks, [
    "dataset",
    "storage_path",
    "schema_hash",
    "hash_chain",
    "quality",
    "source",
    "created_at",
  ]);
  assert.equal(checked.producer.gitSha, null);
  assert.equal(checked.chain, null);
});

Deno.test("checkManifest: what makes one unusable for its folder or the catalog's columns, in one phrase", () => {
  const problem = (m: StoredManifest) => {
    const r = checkManifest(m, PLACE);
    return "problem" in r ? r.problem : null;
  };
  assert.equal(
    problem({ ...MANIFEST, partition: { ...MANIFEST.partition, start: 1 } }),
    "describes partition 1-200, not the range=101-200 it lies in",
  );
  assert.equal(
    problem({ ...MANIFEST, dataset: { ...MANIFEST.dataset, network: "pubnet" } }),
    "names dataset bronze.ledgers_lcm_raw (pubnet/pre_p23/v1), not the " +
      "bronze.ledgers_lcm_raw (testnet/pre_p23/v1) it lies in",
  );
  assert.equal(
    problem({ ...MANIFEST, table: { ...MANIFEST.table, rows: 99 } }),
    "records 99 rows for the 100 ledgers of its range",
  );
  assert.equal(
    problem({ ...MANIFEST, quality: { tx_count: "many" as unknown as number } }),
    'records quality metric tx_count that is not a number: "many"',
  );
  assert.equal(
    problem({ ...MANIFEST, source: null as unknown as Manifest["source"] }),
    "records a source that is not {type, location} strings: null",
  );
  assert.equal(problem(MANIFEST), null);
});
