/**
 * Waiting and timing: the one sleep (and its blocking twin, for workers) and the one stopwatch
 * every wing uses.
 */

/**
 * Waits `ms`, or less: an abort of `signal` ends the wait early and quietly (it resolves). A
 * caller that must not go on after an abort checks `signal.aborted` (or `throwIfAborted()`) next;
 * most callers are loops that look at their signal anyway.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Blocks the calling thread for `ms` (a worker's synchronous retry; never the main thread's). */
export function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A lap timer: each call returns the seconds since the last call (or since it was made). */
export function stopwatch(): () => number {
  let t = performance.now();
  return () => {
    const now = performance.now();
    const s = (now - t) / 1000;
    t = now;
    return s;
  };
}
