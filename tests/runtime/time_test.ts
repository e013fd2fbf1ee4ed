/** lib/runtime/time.ts: the one sleep (an abort ends it early, quietly) and the one stopwatch. */
import assert from "node:assert/strict";
import { sleep, stopwatch } from "../../lib/runtime/time.ts";

Deno.test("sleep: an abort ends a long wait at once and resolves (no rejection)", async () => {
  const ac = new AbortController();
  const waiting = sleep(3_600_000, ac.signal); // an hour: only the abort can end it
  ac.abort(new Error("stop"));
  assert.equal(await waiting, undefined);
});

Deno.test("sleep: an already aborted signal does not wait; no signal waits the time", async () => {
  const ac = new AbortController();
  ac.abort();
  await sleep(3_600_000, ac.signal);
  const lap = stopwatch();
  await sleep(20);
  assert.ok(lap() > 0, "some time passed");
});

Deno.test("stopwatch: each lap counts from the previous one", () => {
  let now = 1000;
  const real = performance.now;
  performance.now = () => now;
  try {
    const lap = stopwatch();
    now += 1500;
    assert.equal(lap(), 1.5);
    now += 250;
    assert.equal(lap(), 0.25);
    assert.equal(lap(), 0);
  } finally {
    performance.now = real;
  }
});
