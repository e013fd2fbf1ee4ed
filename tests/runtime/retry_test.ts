/**
 * The retry primitive: what it retries and what it does not, the deadline per attempt, the bound
 * on the whole (exit 75), full-jitter backoff, Retry-After, the caller's abort, and the monitor's
 * bursts (one log line each, listeners for metrics and health).
 */
import assert from "node:assert/strict";
import { BronzeError, EXIT } from "../../lib/runtime/errors.ts";
import { memoryLogger } from "../../lib/runtime/log.ts";
import {
  DEFAULT_RETRY_POLICY,
  Retrier,
  type RetryEvents,
  RetryExhaustedError,
  RetryMonitor,
  type RetryPolicy,
  retryPolicy,
  withDeadline,
} from "../../lib/runtime/retry.ts";
import { AttemptTimeoutError, HttpStatusError } from "../../lib/runtime/transient.ts";

/** No waiting between attempts: tests count attempts, never time them. */
const QUICK: RetryPolicy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, maxDelayMs: 1 };

/** Every event, in order. */
function recorder(): RetryEvents & { events: string[] } {
  const events: string[] = [];
  return {
    events,
    onRetry: (e) => events.push(`retry ${e.area} ${e.reason}: ${e.message}`),
    onSettled: (e) => events.push(`settled ${e.area} ${e.outcome}`),
  };
}

const reset = () => Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });

Deno.test("retry: transient failures are retried until the call succeeds; the retries are told", async () => {
  const told = recorder();
  const retry = new Retrier(QUICK, told);
  let calls = 0;
  const got = await retry.run("storage", () => {
    calls++;
    if (calls === 1) throw reset();
    if (calls === 2) throw new HttpStatusError(503, "Slow Down");
    return Promise.resolve("bytes");
  });
  assert.equal(got, "bytes");
  assert.equal(calls, 3);
  assert.deepEqual(told.events, [
    "retry storage connection: read ECONNRESET",
    "retry storage server: HTTP 503 Slow Down",
    "settled storage ok",
  ]);
  // A call that succeeds at once is told to nobody.
  await retry.run("source", () => Promise.resolve(1));
  assert.equal(told.events.length, 3);
});

Deno.test("retry: a final error ends it at once, as it was", async () => {
  const told = recorder();
  let calls = 0;
  const final = new BronzeError("object not found: s3://b/k");
  await assert.rejects(
    new Retrier(QUICK, told).run("storage", () => {
      calls++;
      throw final;
    }),
    (e) => e === final,
  );
  assert.equal(calls, 1);
  assert.deepEqual(told.events, []);
  // After retries, the final error still ends it, and the burst is settled.
  calls = 0;
  await assert.rejects(
    new Retrier(QUICK, told).run("storage", () => {
      if (++calls === 1) throw reset();
      throw final;
    }),
    (e) => e === final,
  );
  assert.deepEqual(told.events, [
    "retry storage connection: read ECONNRESET",
    "settled storage failed",
  ]);
});

Deno.test("retry: past --retry-for, one line naming the operation and its last error, exit 75", async () => {
  const told = recorder();
  const retry = new Retrier({ ...QUICK, retryForMs: 30 }, told);
  let calls = 0;
  const err = await retry.run("source", () => {
    calls++;
    throw new BronzeError("s3 GetObject s3://lake/a.xdr.zst failed: SlowDown: Please reduce");
  }).catch((e) => e);
  // A BronzeError that is not transient would not be retried: this one's cause says SlowDown.
  assert.equal(calls, 1, "a BronzeError without a transient cause is final");
  assert.ok(!(err instanceof RetryExhaustedError));

  const cause = Object.assign(new Error("SlowDown"), {
    name: "SlowDown",
    $metadata: { httpStatusCode: 503 },
  });
  calls = 0;
  const exhausted = await retry.run("source", () => {
    calls++;
    const e = new BronzeError("s3 GetObject s3://lake/a.xdr.zst failed: SlowDown: Please reduce");
    (e as { cause?: unknown }).cause = cause;
    throw e;
  }, { what: "s3://lake/a.xdr.zst: read" }).catch((e) => e);
  assert.ok(exhausted instanceof RetryExhaustedError, String(exhausted));
  assert.equal(exhausted.exitCode, EXIT.tempfail);
  assert.equal(exhausted.exitCode, 75);
  assert.equal(exhausted.area, "source");
  assert.ok(calls >= 2, `${calls} attempts`);
  assert.match(
    exhausted.message,
    new RegExp(
      `^s3 GetObject s3://lake/a\\.xdr\\.zst failed: SlowDown: Please reduce ` +
        `\\(still failing after ${calls} attempts over [^)]+: a temporary failure that outlasted ` +
        `--retry-for; run again\\)$`,
    ),
  );
  assert.equal(exhausted.message.split("\n").length, 1);
  assert.equal(told.events.at(-1), "settled source exhausted");
});

Deno.test("retry: maxAttempts bounds the count exactly; an error that names nothing is named by `what`", async () => {
  let calls = 0;
  const err = await new Retrier({ ...QUICK, maxAttempts: 4 }).run("storage", () => {
    calls++;
    throw new AttemptTimeoutError(2000);
  }, { what: "gs://b/k: read" }).catch((e) => e);
  assert.equal(calls, 4);
  assert.ok(err instanceof RetryExhaustedError);
  assert.match(
    err.message,
    /^gs:\/\/b\/k: read: no answer within 2s \(still failing after 4 attempts/,
  );
});

Deno.test("retry: an attempt that does not settle is abandoned at its deadline, its signal aborted, and retried", async () => {
  const signals: AbortSignal[] = [];
  let calls = 0;
  const got = await new Retrier({ ...QUICK, attemptTimeoutMs: 50 }).run("storage", (signal) => {
    signals.push(signal);
    // The first attempt hangs for good (a stalled request); the second answers.
    return ++calls === 1 ? new Promise<string>(() => {}) : Promise.resolve("answer");
  });
  assert.equal(got, "answer");
  assert.equal(calls, 2);
  assert.ok(signals[0].aborted, "the stalled attempt's signal was aborted");
  assert.ok(signals[0].reason instanceof AttemptTimeoutError);
  assert.ok(!signals[1].aborted);
  // A request that reacts to the abort with an error of its own: the deadline is still the reason.
  await assert.rejects(
    withDeadline(
      (signal) =>
        new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))
        ),
      20,
    ),
    AttemptTimeoutError,
  );
});

Deno.test("retry: the caller's abort ends it (not a transient failure), waits included", async () => {
  const ac = new AbortController();
  const told = recorder();
  let calls = 0;
  const done = new Retrier(
    { ...DEFAULT_RETRY_POLICY, baseDelayMs: 60_000, maxDelayMs: 60_000 },
    told,
  )
    .run("source", () => {
      calls++;
      // Aborted while the retrier waits out a long backoff.
      queueMicrotask(() => ac.abort(new Error("stopped by the caller")));
      throw reset();
    }, { signal: ac.signal });
  await assert.rejects(done, { message: "stopped by the caller" });
  assert.equal(calls, 1);
});

Deno.test("retry: backoff is full jitter under a doubling ceiling; Retry-After is honoured; never past the bound", () => {
  const policy = {
    ...DEFAULT_RETRY_POLICY,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    retryForMs: 60_000,
  };
  const tries = new Retrier(policy).begin("storage");
  const waits = Array.from({ length: 8 }, () => tries.failed(reset()));
  waits.forEach((w, i) => {
    const ceiling = Math.min(1000, 100 * 2 ** i);
    assert.ok(w >= 0 && w <= ceiling, `wait ${i}: ${w} ms under ${ceiling}`);
  });
  const after = new Retrier(policy).begin("source").failed(new HttpStatusError(429, "", 5000));
  assert.equal(after, 5000, "the service's Retry-After is waited out");
  const near = new Retrier({ ...policy, retryForMs: 1 }).begin("source");
  near.failed(reset());
  assert.throws(() => {
    for (let i = 0; i < 1e6; i++) near.failed(reset()); // the bound runs out (1 ms)
  }, RetryExhaustedError);
});

Deno.test("retry: runSync retries a synchronous call (a worker's local reads)", () => {
  let calls = 0;
  const got = new Retrier(QUICK).runSync("source", () => {
    if (++calls < 3) throw Object.assign(new Error("Stale file handle"), { code: "ESTALE" });
    return calls;
  });
  assert.equal(got, 3);
});

Deno.test("retry policy: --retry-for and BRONZE_ATTEMPT_TIMEOUT over the defaults", () => {
  const none = () => undefined;
  assert.deepEqual(retryPolicy(undefined, none), DEFAULT_RETRY_POLICY);
  const p = retryPolicy(20, (n) => n === "BRONZE_ATTEMPT_TIMEOUT" ? "1.5s" : undefined);
  assert.equal(p.retryForMs, 20_000);
  assert.equal(p.attemptTimeoutMs, 1500);
  assert.equal(p.maxDelayMs, 2000, "a short bound waits at most a tenth of it");
  assert.equal(retryPolicy(undefined, () => "250ms").attemptTimeoutMs, 250);
});

Deno.test("monitor: one log line per burst, with its count; listeners hear retries and bursts", async () => {
  const log = memoryLogger();
  const monitor = new RetryMonitor(log);
  const heard: string[] = [];
  monitor.listen({
    retried: (area, reason) => heard.push(`${area} ${reason}`),
    burst: (area, active) => heard.push(`${area} burst ${active ? "on" : "off"}`),
  });
  const retry = new Retrier(QUICK, monitor);
  // Two operations of one area retrying at once: one burst.
  let a = 0, b = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const first = retry.run("storage", async () => {
    if (++a <= 2) throw reset();
    await gate; // still in the burst while the second one retries
    return "a";
  });
  const second = retry.run("storage", () => {
    if (++b <= 1) throw new HttpStatusError(503, "Slow Down");
    release();
    return Promise.resolve("b");
  });
  assert.deepEqual(await Promise.all([first, second]), ["a", "b"]);
  assert.deepEqual(monitor.bursts, []);
  assert.equal(log.lines.length, 1, log.lines.join("\n"));
  assert.match(
    log.lines[0],
    /^\[warn\] retry: storage: 3 retries over \d+ms, recovered \(last: (read ECONNRESET|HTTP 503 Slow Down)\)$/,
  );
  assert.deepEqual(heard.filter((h) => h.includes("burst")), [
    "storage burst on",
    "storage burst off",
  ]);
  assert.equal(heard.filter((h) => !h.includes("burst")).length, 3);

  // A burst that ends because the bound ran out logs nothing: the run's error line says it.
  const bounded = new Retrier({ ...QUICK, maxAttempts: 2 }, monitor);
  await assert.rejects(bounded.run("source", () => Promise.reject(reset())), RetryExhaustedError);
  assert.equal(log.lines.length, 1);
  assert.deepEqual(monitor.bursts, []);
});
