/** lib/runtime/pool.ts: bounded concurrency over a list, results in order, the first error thrown. */
import assert from "node:assert/strict";
import { pool } from "../../lib/runtime/pool.ts";

Deno.test("pool: never more than the limit at once; results in the items' order", async () => {
  let running = 0, most = 0;
  const gates: (() => void)[] = [];
  const out = pool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    running++;
    most = Math.max(most, running);
    await new Promise<void>((go) => gates.push(go));
    running--;
    return n * 10;
  });
  // Release one waiting item at a time, in reverse order of arrival, until all are done.
  for (let released = 0; released < 7; released++) {
    for (let spins = 0; gates.length === 0; spins++) {
      assert.ok(spins < 1000, `item ${released + 1} of 7 never started`);
      await Promise.resolve();
    }
    gates.pop()!();
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.deepEqual(await out, [10, 20, 30, 40, 50, 60, 70]);
  assert.equal(most, 3);
});

Deno.test("pool: the first error stops the taking of new items and is thrown once those in hand settle", async () => {
  const started: number[] = [];
  let settled = 0;
  await assert.rejects(
    pool([1, 2, 3, 4, 5, 6], 2, async (n) => {
      started.push(n);
      await Promise.resolve();
      settled++;
      if (n === 2) throw new Error("two failed");
      return n;
    }),
    /two failed/,
  );
  assert.deepEqual(started, [1, 2, 3], "item 3 was taken by the worker that finished 1 first");
  assert.equal(settled, started.length, "nothing was left running");
  assert.deepEqual(await pool([], 4, () => Promise.resolve(1)), []);
});
