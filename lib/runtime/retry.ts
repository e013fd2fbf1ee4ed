/**
 * Retrying where the network is: one policy and one account of it for every object store, the RPC
 * source and the catalog. An operation that fails transiently (transient.ts decides, nowhere else)
 * is tried again after an exponential backoff with full jitter (a fleet never retries in step),
 * each attempt under a deadline (a stalled request is abandoned, not waited on forever), until the
 * whole has failed for `retryForMs`: then it stops with one line naming the operation and its last
 * error, exit 75 ("temporary: run again"). A final error ends it at once.
 *
 * Every retry is told to a RetryEvents listener; a RetryMonitor turns them into bursts (an area
 * is in a burst from its first retry until no operation of it is retrying any more): one log line
 * per burst, with its count and how long it lasted, `bronze_retries_total`, and /healthz's
 * "degraded: retrying <area>" while it lasts.
 *
 * For a loop that is not one call (a stream that resumes, a listing that continues, a catalog
 * that reconnects and re-claims), `begin()` gives the same accounting by hand: `failed(err)` says
 * how long to wait before the next try (or throws), `succeeded()` settles it.
 */
import { BronzeError, EXIT } from "./errors.ts";
import { formatDuration, oneLine } from "./format.ts";
import type { Logger } from "./log.ts";
import { sleep, sleepSync } from "./time.ts";
import { AttemptTimeoutError, type TransientReason, transientReason } from "./transient.ts";

/** Where a retry happens: a `bronze_retries_total` label and what /healthz names. */
export type RetryArea = "source" | "storage" | "checkpoint" | "catalog";
export const RETRY_AREAS: readonly RetryArea[] = ["source", "storage", "checkpoint", "catalog"];

export interface RetryPolicy {
  /** The bound: an operation still failing this long after its first failure stops (exit 75). */
  retryForMs: number;
  /** An attempt that has not settled by then is abandoned and retried (a stalled request). */
  attemptTimeoutMs: number;
  /** The first backoff's ceiling; it doubles per retry up to maxDelayMs (full jitter below it). */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Also stop after this many attempts (tests that want an exact count); unbounded when absent. */
  maxAttempts?: number;
}

/**
 * Five minutes of retrying rides out a service's restart or a throttling spell. An attempt gets 30
 * seconds to answer (a streamed read, 30 seconds between chunks; an upload, more for its size):
 * ample for a lake object or an RPC page on a slow link, and a stalled request costs no more.
 */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  retryForMs: 5 * 60_000,
  attemptTimeoutMs: 30_000,
  baseDelayMs: 100,
  maxDelayMs: 15_000,
};

/**
 * The policy a command runs with: `--retry-for` (seconds) over the defaults, and
 * BRONZE_ATTEMPT_TIMEOUT (a duration in ms or s: `2s`, `500ms`) for a network whose requests take
 * longer (or, in tests, to abandon a stalled request sooner).
 */
export function retryPolicy(
  retryForSeconds?: number,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): RetryPolicy {
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY };
  if (retryForSeconds !== undefined) policy.retryForMs = retryForSeconds * 1000;
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(env("BRONZE_ATTEMPT_TIMEOUT")?.trim() ?? "");
  if (m) policy.attemptTimeoutMs = Number(m[1]) * (m[2] === "s" ? 1000 : 1);
  // A short bound wants short waits too: never back off for more than a tenth of it.
  policy.maxDelayMs = Math.max(
    policy.baseDelayMs,
    Math.min(policy.maxDelayMs, policy.retryForMs / 10),
  );
  return policy;
}

/**
 * A run's retrier: `--retry-for` (seconds) over the defaults, each burst told as one line to
 * `log`. Listeners (metrics, health) can be added to its monitor.
 */
export function runRetrier(
  retryForSeconds: number | undefined,
  log?: Pick<Logger, "warn">,
): Retrier & { events: RetryMonitor } {
  return new Retrier(retryPolicy(retryForSeconds), new RetryMonitor(log)) as
    & Retrier
    & { events: RetryMonitor };
}

/** The bound ran out: one line naming the operation and its last error, exit 75. */
export class RetryExhaustedError extends BronzeError {
  /** Final: no outer retry loop tries it again (transient.ts). */
  readonly final = true;

  constructor(
    area: RetryArea,
    readonly lastError: unknown,
    readonly attempts: number,
    readonly seconds: number,
  ) {
    super(
      `${_oneLine(lastError)} (still failing after ${attempts} attempts over ` +
        `${formatDuration(seconds)}: a temporary failure that outlasted ${
          area === "catalog" ? "--catalog-retry-for" : "--retry-for"
        }; run again)`,
      EXIT.tempfail,
    );
    this.area = area;
  }
}

/** What a monitor hears. `op` tells one operation's retries from another's. */
export interface RetryEvents {
  /**
   * An attempt failed transiently; another follows after a wait. `since`: when the operation's
   * first failing attempt began (epoch ms: a worker's clock and the main thread's agree on it).
   */
  onRetry(e: RetryEvent): void;
  /** An operation that had retried is over: it succeeded, failed for good, or was given up. */
  onSettled(e: { op: string; area: RetryArea; outcome: "ok" | "failed" | "exhausted" }): void;
}

export interface RetryEvent {
  op: string;
  area: RetryArea;
  reason: TransientReason;
  message: string;
  since: number;
}

const SILENT: RetryEvents = { onRetry() {}, onSettled() {} };

export interface RunOptions {
  /**
   * What is being done to what ("s3 GetObject s3://b/k"), for the final line when the last error
   * does not say it (a deadline that passed). Errors that are BronzeErrors already do.
   */
  what?: string;
  /** Cancels the operation (and its waits): the caller's abort, not a transient failure. */
  signal?: AbortSignal;
  /** This attempt's deadline instead of the policy's (an upload of many megabytes). */
  attemptTimeoutMs?: number;
}

let opCounter = 0;

export class Retrier {
  constructor(
    readonly policy: Readonly<RetryPolicy> = DEFAULT_RETRY_POLICY,
    readonly events: RetryEvents = SILENT,
  ) {}

  /** The same accounting under another policy (the catalog's own bound, say). */
  with(policy: Partial<RetryPolicy>): Retrier {
    return new Retrier({ ...this.policy, ...policy }, this.events);
  }

  /**
   * Runs `attempt` until it succeeds, fails for good, or the bound runs out. Each attempt gets a
   * signal that aborts at its deadline (pass it to the request); an attempt that ignores it is
   * abandoned anyway, its late result dropped.
   */
  async run<T>(
    area: RetryArea,
    attempt: (signal: AbortSignal) => Promise<T>,
    opts: RunOptions = {},
  ): Promise<T> {
    const tries = this.begin(area, opts);
    const timeoutMs = opts.attemptTimeoutMs ?? this.policy.attemptTimeoutMs;
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        const result = await withDeadline(attempt, timeoutMs, opts.signal);
        tries.succeeded();
        return result;
      } catch (err) {
        const wait = tries.failed(err);
        await sleep(wait, opts.signal);
      }
    }
  }

  /** run() for a synchronous call (a build worker's local reads): waits by blocking the thread. */
  runSync<T>(area: RetryArea, attempt: () => T, what?: string): T {
    const tries = this.begin(area, { what });
    for (;;) {
      try {
        const result = attempt();
        tries.succeeded();
        return result;
      } catch (err) {
        sleepSync(tries.failed(err));
      }
    }
  }

  /** One operation's retries, accounted by hand (see the top of this file). */
  begin(area: RetryArea, opts: Pick<RunOptions, "signal" | "what"> = {}): Attempts {
    return new Attempts(this.policy, this.events, area, opts);
  }
}

/** One operation's attempts: see Retrier.begin. */
export class Attempts {
  readonly #op = `${++opCounter}`;
  #attempts = 0;
  #firstFailure: number | undefined;
  #retried = false;
  /** When the current attempt streak began: its first failure's attempt started then. */
  #since = Date.now();

  constructor(
    private readonly policy: Readonly<RetryPolicy>,
    private readonly events: RetryEvents,
    readonly area: RetryArea,
    private readonly opts: Pick<RunOptions, "signal" | "what"> = {},
  ) {}

  /**
   * An attempt failed with `err`: returns how long to wait before the next one, or throws: `err`
   * itself when it is final (or the caller aborted), a RetryExhaustedError when the bound is spent.
   */
  failed(err: unknown): number {
    this.#attempts++;
    // The caller stopped it: its reason, not the failure that came with it.
    if (this.opts.signal?.aborted) this.#settle("failed", this.opts.signal.reason);
    const transient = transientReason(err);
    if (!transient) this.#settle("failed", err);
    const now = performance.now();
    this.#firstFailure ??= now;
    const spent = now - this.#firstFailure;
    const { retryForMs, maxAttempts, baseDelayMs, maxDelayMs } = this.policy;
    if (spent >= retryForMs || (maxAttempts !== undefined && this.#attempts >= maxAttempts)) {
      const named = err instanceof BronzeError || !this.opts.what
        ? err
        : new Error(`${this.opts.what}: ${_oneLine(err)}`);
      const exhausted = new RetryExhaustedError(this.area, named, this.#attempts, spent / 1000);
      (exhausted as { cause?: unknown }).cause = err;
      this.#settle("exhausted", exhausted);
    }
    this.#retried = true;
    this.events.onRetry({
      op: this.#op,
      area: this.area,
      reason: transient!.reason,
      message: err instanceof BronzeError || !this.opts.what
        ? _oneLine(err)
        : `${this.opts.what}: ${_oneLine(err)}`,
      since: this.#since,
    });
    // Full jitter: anywhere from 0 to the doubling ceiling, so a fleet spreads its retries out.
    const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(30, this.#attempts - 1));
    const wait = Math.max(Math.random() * ceiling, transient!.retryAfterMs ?? 0);
    // Never wait past the bound: the last attempt is made when it runs out.
    return Math.max(0, Math.min(wait, retryForMs - spent));
  }

  /**
   * The operation succeeded (after retries or not). A long-lived one (a stream) that fails again
   * later starts a fresh count and bound.
   */
  succeeded(): void {
    if (this.#retried) this.events.onSettled({ op: this.#op, area: this.area, outcome: "ok" });
    this.#retried = false;
    this.#attempts = 0;
    this.#firstFailure = undefined;
    this.#since = Date.now();
  }

  /** How many attempts have failed so far. */
  get failures(): number {
    return this.#attempts;
  }

  #settle(outcome: "failed" | "exhausted", err: unknown): never {
    if (this.#retried) this.events.onSettled({ op: this.#op, area: this.area, outcome });
    this.#retried = false;
    throw err;
  }
}

/**
 * Runs `attempt` with a signal that aborts after `ms`; if the attempt has not settled by then it
 * is abandoned (rejects with AttemptTimeoutError, its late result dropped). The caller's `outer`
 * abort rejects with its reason.
 */
export async function withDeadline<T>(
  attempt: (signal: AbortSignal) => Promise<T>,
  ms: number,
  outer?: AbortSignal,
): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new AttemptTimeoutError(ms)), ms);
  const onOuter = () => ac.abort(outer!.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  let stop: () => void = () => {};
  const abandoned = new Promise<never>((_, reject) => {
    const onAbort = () => reject(ac.signal.reason);
    ac.signal.addEventListener("abort", onAbort, { once: true });
    stop = () => ac.signal.removeEventListener("abort", onAbort);
  });
  abandoned.catch(() => {});
  try {
    const running = attempt(ac.signal);
    running.catch(() => {}); // abandoned: whatever it says later is nobody's
    return await Promise.race([running, abandoned]);
  } catch (err) {
    // The request's own error after our deadline fired (an AbortError) is the deadline's doing.
    if (ac.signal.reason instanceof AttemptTimeoutError && !outer?.aborted) throw ac.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
    stop();
    outer?.removeEventListener("abort", onOuter);
  }
}

/**
 * Turns retry events into bursts, one per area: a burst starts with the area's first retry and
 * ends when no operation of the area is retrying. One log line per burst, when it ends (its
 * count, how long it lasted, the last error); a burst that ends because an operation gave up
 * logs nothing more (the run's own error line says it). Listeners hear every retry (metrics) and
 * every burst's start and end (health).
 */
export class RetryMonitor implements RetryEvents {
  readonly #bursts = new Map<
    RetryArea,
    { ops: Set<string>; retries: number; started: number; last: string; gaveUp: boolean }
  >();
  readonly #listeners: RetryListener[] = [];

  constructor(private readonly log?: Pick<Logger, "warn">) {}

  listen(listener: RetryListener): void {
    this.#listeners.push(listener);
  }

  /** The areas in a burst now. */
  get bursts(): RetryArea[] {
    return [...this.#bursts.keys()];
  }

  onRetry(e: RetryEvent): void {
    let burst = this.#bursts.get(e.area);
    if (!burst) {
      burst = { ops: new Set(), retries: 0, started: e.since, last: "", gaveUp: false };
      this.#bursts.set(e.area, burst);
      for (const l of this.#listeners) l.burst?.(e.area, true);
    }
    burst.started = Math.min(burst.started, e.since);
    burst.ops.add(e.op);
    burst.retries++;
    burst.last = e.message;
    for (const l of this.#listeners) l.retried?.(e.area, e.reason);
  }

  onSettled(e: { op: string; area: RetryArea; outcome: "ok" | "failed" | "exhausted" }): void {
    const burst = this.#bursts.get(e.area);
    if (!burst || !burst.ops.delete(e.op)) return;
    if (e.outcome === "exhausted") burst.gaveUp = true;
    if (burst.ops.size) return;
    this.#bursts.delete(e.area);
    const seconds = (Date.now() - burst.started) / 1000;
    if (!burst.gaveUp) {
      const n = burst.retries;
      this.log?.warn(
        "retry",
        `${e.area}: ${n} ${n === 1 ? "retry" : "retries"} over ${formatDuration(seconds)}, ` +
          `${e.outcome === "ok" ? "recovered" : "then a final error"} (last: ${burst.last})`,
        { area: e.area, retries: n, seconds },
      );
    }
    for (const l of this.#listeners) l.burst?.(e.area, false, e.outcome === "ok" && !burst.gaveUp);
  }
}

export interface RetryListener {
  /** One retry in `area`, for `reason`. */
  retried?(area: RetryArea, reason: TransientReason): void;
  /**
   * A burst of `area` began (true) or ended (false); an ended one `recovered` when its last
   * operation succeeded (for the catalog: it was reached again, a reconnect).
   */
  burst?(area: RetryArea, active: boolean, recovered?: boolean): void;
}

function _oneLine(err: unknown): string {
  return oneLine(err instanceof Error ? err.message : String(err));
}
