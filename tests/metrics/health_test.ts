import assert from "node:assert/strict";
import { Health } from "../../lib/metrics/health.ts";

/** A clock the test moves by hand: no sleeping, no timing. */
function clock() {
  let ms = 1_000_000;
  return { now: () => ms, advance: (seconds: number) => void (ms += seconds * 1000) };
}

Deno.test("health: ok while working; unhealthy once nothing happened for longer than stallAfter", () => {
  const t = clock();
  const h = new Health({ stallAfterSeconds: 300, headStallAfterSeconds: 600, now: t.now });
  assert.deepEqual(h.check(), { ok: true, message: "ok: no ledger committed yet, head unknown" });
  t.advance(301);
  assert.deepEqual(h.check(), {
    ok: false,
    message: "no progress for 5m01s; no ledger committed yet",
  }, "a copier that hangs before its first ledger is unhealthy too");

  h.progress(123); // a partition committed through ledger 123
  h.sourceHead(900);
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 123, head 900" });
  t.advance(300);
  assert.equal(h.check().ok, true, "exactly stallAfter is still healthy");
  t.advance(12);
  assert.deepEqual(h.check(), {
    ok: false,
    message: "no progress for 5m12s; last committed ledger 123",
  });
  h.progress(); // a ledger built: alive again, the last committed ledger is unchanged
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 123, head 900" });
});

Deno.test("health: waiting at the head is ok while the head advances, not once it stops", () => {
  const t = clock();
  const h = new Health({ stallAfterSeconds: 60, headStallAfterSeconds: 600, now: t.now });
  h.progress(500);
  h.waiting(500);
  t.advance(590);
  h.waiting(501);
  t.advance(590); // far past stallAfter: waiting is not stalling
  h.waiting(501); // polled again, the same head
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 500, head 501" });
  t.advance(10);
  assert.equal(h.check().ok, true, "exactly headStallAfter is still healthy");
  t.advance(1);
  assert.deepEqual(h.check(), {
    ok: false,
    message: "source head 501 has not advanced for 10m01s",
  });
  h.waiting(499); // a lagging replica's lower head is no advance
  assert.deepEqual(h.check(), {
    ok: false,
    message: "source head 501 has not advanced for 10m01s",
  });
  h.waiting(502);
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 500, head 502" });

  // The head moved on: the copier builds again, and a build that hangs is a stall.
  h.progress();
  t.advance(61);
  assert.deepEqual(h.check(), {
    ok: false,
    message: "no progress for 1m01s; last committed ledger 500",
  });
});

Deno.test("health: failing(reason) is unhealthy with that one line until the next progress or wait", () => {
  const t = clock();
  const h = new Health({ now: t.now });
  h.progress(7);
  h.failing("catalog: connection refused\n  at somewhere");
  assert.deepEqual(h.check(), { ok: false, message: "catalog: connection refused at somewhere" });
  t.advance(3600);
  assert.deepEqual(h.check(), { ok: false, message: "catalog: connection refused at somewhere" });
  h.waiting(7);
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 7, head 7" });
  h.failing("source: lake unreachable");
  h.progress();
  assert.equal(h.check().ok, true);
});

Deno.test("health: default thresholds are 15 minutes of no progress and 10 minutes of a still head", () => {
  const t = clock();
  const h = new Health({ now: t.now });
  t.advance(900);
  assert.equal(h.check().ok, true);
  t.advance(1);
  assert.equal(h.check().message, "no progress for 15m01s; no ledger committed yet");
  h.waiting(10);
  t.advance(601);
  assert.equal(h.check().message, "source head 10 has not advanced for 10m01s");
});

Deno.test("health: degraded while a burst of retries lasts, healthy still; a long burst is a stall", () => {
  const t = clock();
  const h = new Health({ stallAfterSeconds: 300, now: t.now });
  h.progress(123);
  h.sourceHead(900);
  h.retrying("storage", true);
  assert.deepEqual(h.check(), {
    ok: true,
    message: "degraded: retrying storage; last committed ledger 123, head 900",
  });
  h.retrying("source", true);
  assert.equal(
    h.check().message,
    "degraded: retrying storage, source; last committed ledger 123, head 900",
  );
  h.retrying("storage", false);
  h.retrying("source", false);
  assert.deepEqual(h.check(), { ok: true, message: "ok: last committed ledger 123, head 900" });
  h.retrying("storage", true);
  t.advance(301);
  assert.deepEqual(h.check(), {
    ok: false,
    message: "no progress for 5m01s; last committed ledger 123",
  }, "retrying without progress for longer than stallAfter is a stall");
});
