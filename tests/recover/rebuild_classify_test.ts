/**
 * lib/recover/rebuild_classify.ts, the pure middle of `catalog rebuild`: stored partitions against
 * the catalog's rows, without storage or a catalog (rebuild_test.ts drives the same cases through
 * real ones).
 */
import assert from "node:assert/strict";
import { classify } from "../../lib/recover/rebuild_classify.ts";
import type { Sound } from "../../lib/recover/rebuild_check.ts";
import type { LineageRow } from "../../lib/metadata/writer.ts";

const DS = {
  domain: "bronze",
  dataset: "ledgers_lcm_raw",
  network: "testnet",
  eraId: "e",
  version: "v1",
};
const LABEL = "bronze.ledgers_lcm_raw (testnet/e/v1)";
const sum = (c: string) => `sha256:${c.repeat(64)}`;

function stored(start: number, end: number, c = "a"): Sound {
  const key = `testnet/e/v1/ledgers_lcm_raw/range=${start}-${end}/part-${start}-${end}.parquet`;
  return {
    ds: DS,
    uri: `/data/${key}`,
    manifestKey: key.replace(/part-.*$/, "_manifest.json"),
    schemaHash: "f".repeat(64),
    derived: [],
    row: {
      ledgerStart: start,
      ledgerEnd: end,
      rowCount: end - start + 1,
      byteSize: 100,
      checksum: sum(c),
      storagePath: key,
      storageUri: `/data/${key}`,
      firstPreviousLedgerHash: "0".repeat(64),
      lastLedgerHash: "1".repeat(64),
      producerVersion: "0.1.0",
      producerGitSha: null,
      sourceType: "archive",
      sourceLocation: "/lake",
    },
  };
}

let nextId = 1;
function held(start: number, end: number, c = "a"): LineageRow {
  const { row } = stored(start, end, c);
  return {
    ...row,
    id: nextId++,
    datasetId: 1,
    createdAt: new Date(0),
    supersededBy: null,
    supersededAt: null,
  };
}

const ranges = (xs: { row: { ledgerStart: number; ledgerEnd: number } }[]) =>
  xs.map((s) => `${s.row.ledgerStart}-${s.row.ledgerEnd}`);

Deno.test("classify: into an empty catalog every partition is added, in ledger order", () => {
  const plan = classify([stored(129, 192), stored(1, 64), stored(65, 128)], []);
  assert.deepEqual(ranges(plan.add), ["1-64", "65-128", "129-192"]);
  assert.equal(plan.present, 0);
  assert.deepEqual(plan.conflicts, []);
  assert.deepEqual(plan.compacted, []);
});

Deno.test("classify: the same range with the same checksum is present; with another checksum, or overlapping another range, a conflict", () => {
  const catalog = [held(1, 64), held(65, 128, "b"), held(129, 160)];
  const plan = classify(
    [stored(1, 64), stored(65, 128), stored(150, 192), stored(193, 256)],
    catalog,
  );
  assert.equal(plan.present, 1);
  assert.deepEqual(ranges(plan.add), ["193-256"]);
  assert.deepEqual(plan.conflicts.map((c) => c.message), [
    `partition 65-128 of ${LABEL} (${stored(65, 128).uri}): the catalog records this range with ` +
    `${sum("b")} (lineage id ${catalog[1].id}), the stored file and its manifest are ${sum("a")}`,
    `partition 150-192 of ${LABEL} (${stored(150, 192).uri}): overlaps recorded partition ` +
    `129-160 (lineage id ${catalog[2].id})`,
  ]);
});

Deno.test("classify: partials inside a recorded full partition that is stored are compacted, not conflicts", () => {
  const full = held(1, 64);
  const plan = classify([stored(1, 64), stored(1, 10), stored(11, 20)], [full]);
  assert.equal(plan.present, 1);
  assert.deepEqual(plan.add, []);
  assert.deepEqual(plan.conflicts, []);
  assert.deepEqual(plan.compacted.map((c) => [c.start, c.end]), [[1, 10], [11, 20]]);
  assert.match(
    plan.compacted[0].message,
    /: inside 1-64, the full partition a compaction replaced it with$/,
  );
  // The full row's file is not among the stored ones: the partials are conflicts instead.
  const lost = classify([stored(1, 10)], [held(1, 64, "c")]);
  assert.deepEqual(lost.compacted, []);
  assert.deepEqual(lost.conflicts.map((c) => [c.start, c.end]), [[1, 10]]);
});

Deno.test("classify: stored partitions that overlap each other: the one spanning the run is added and the rest compacted; without one, all are conflicts", () => {
  const spanned = classify([stored(1, 10), stored(1, 64), stored(11, 20), stored(65, 128)], []);
  assert.deepEqual(ranges(spanned.add), ["1-64", "65-128"]);
  assert.deepEqual(spanned.compacted.map((c) => [c.start, c.end]), [[1, 10], [11, 20]]);
  assert.deepEqual(spanned.conflicts, []);

  const tangled = classify([stored(1, 40), stored(30, 64)], []);
  assert.deepEqual(tangled.add, []);
  assert.deepEqual(tangled.conflicts.map((c) => c.message), [
    `partition 1-40 of ${LABEL} (${stored(1, 40).uri}): overlaps 30-64, also in storage with a ` +
    `manifest: the catalog can hold only one, and which is not known`,
    `partition 30-64 of ${LABEL} (${stored(30, 64).uri}): overlaps 1-40, also in storage with a ` +
    `manifest: the catalog can hold only one, and which is not known`,
  ]);
});
