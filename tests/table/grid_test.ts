import assert from "node:assert/strict";
import { cellOf, gaps } from "../../lib/table/grid.ts";
import { datasetPrefix, manifestKey, partitionKey, rangeOfKey } from "../../lib/table/layout.ts";

Deno.test("cellOf: cell k holds k*S+1 .. (k+1)*S", () => {
  assert.deepEqual(cellOf(1, 10_000), { start: 1, end: 10_000 });
  assert.deepEqual(cellOf(10_000, 10_000), { start: 1, end: 10_000 });
  assert.deepEqual(cellOf(10_001, 10_000), { start: 10_001, end: 20_000 });
  assert.deepEqual(cellOf(59_957_913, 10_000), { start: 59_950_001, end: 59_960_000 });
});

Deno.test("gaps: what `held` leaves of a range, at the front, middle and end", () => {
  const held = [{ start: 5, end: 10 }, { start: 12, end: 12 }, { start: 30, end: 40 }];
  assert.deepEqual(gaps({ start: 1, end: 35 }, held), [
    { start: 1, end: 4 },
    { start: 11, end: 11 },
    { start: 13, end: 29 },
  ]);
  assert.deepEqual(gaps({ start: 6, end: 9 }, held), []);
  assert.deepEqual(gaps({ start: 41, end: 50 }, held), [{ start: 41, end: 50 }]);
});

Deno.test("layout: keys of a partition and its manifest; rangeOfKey reads only partition files", () => {
  const ds = { network: "pubnet", eraId: "pre_p23", version: "v1" };
  const r = { start: 59_950_001, end: 59_960_000 };
  assert.equal(datasetPrefix(ds), "pubnet/pre_p23/v1/ledgers_lcm_raw/");
  assert.equal(
    partitionKey(ds, r),
    "pubnet/pre_p23/v1/ledgers_lcm_raw/range=59950001-59960000/part-59950001-59960000.parquet",
  );
  assert.equal(
    manifestKey(ds, r),
    "pubnet/pre_p23/v1/ledgers_lcm_raw/range=59950001-59960000/_manifest.json",
  );
  assert.deepEqual(rangeOfKey(partitionKey(ds, r)), r);
  assert.equal(rangeOfKey(manifestKey(ds, r)), null);
  assert.equal(rangeOfKey("x/range=1-10/part-1-11.parquet"), null);
  assert.equal(rangeOfKey("x/range=10-1/part-10-1.parquet"), null);
});
