/**
 * Is a long-running copier healthy? It is while it makes progress, or while it waits at the
 * source's head and that head keeps advancing. It is not when it has done nothing for
 * `stallAfterSeconds` (a hung build, upload or catalog call), when the head it waits at has not
 * advanced for `headStallAfterSeconds` (the source stopped growing, or polling it hangs), or
 * after it reported `failing(reason)` until it next makes progress or waits. While a burst of
 * retries lasts in some area (a store throttling, a source restarting) it is healthy but says
 * "degraded: retrying <area>"; a burst that outlasts the stall bound is a stall like any other.
 *
 * The copier reports events; `check()` only reads the clock. The clock is injectable so that tests
 * move time instead of sleeping.
 */
import { formatDuration } from "../runtime/format.ts";

export interface HealthOptions {
  /** Seconds without progress (while not waiting at the head) before unhealthy. Default 900. */
  stallAfterSeconds?: number;
  /** Seconds a waited-at head may stay the same before unhealthy. Default 600. */
  headStallAfterSeconds?: number;
  /** Milliseconds on a monotonic clock. Default performance.now. */
  now?: () => number;
}

/** `message` is one line: the reason when not ok. */
export interface HealthStatus {
  ok: boolean;
  message: string;
}

export class Health {
  readonly #stallAfterMs: number;
  readonly #headStallAfterMs: number;
  readonly #now: () => number;
  #mode: "working" | "waiting" | "failing" = "working";
  #failure = "";
  /** Last progress or wait: the copier was alive then. */
  #activeAt: number;
  #lastCommitted: number | undefined;
  #head: number | undefined;
  #headAdvancedAt = 0;
  /** Areas in a burst of retries now, in the order their bursts began. */
  readonly #retrying = new Set<string>();

  constructor(opts: HealthOptions = {}) {
    this.#stallAfterMs = (opts.stallAfterSeconds ?? 900) * 1000;
    this.#headStallAfterMs = (opts.headStallAfterSeconds ?? 600) * 1000;
    this.#now = opts.now ?? (() => performance.now());
    // Starting counts as activity: a copier that hangs before its first ledger goes unhealthy too.
    this.#activeAt = this.#now();
  }

  /** A ledger built or a partition committed (then `lastCommitted` is the ledger now held). */
  progress(lastCommitted?: number): void {
    this.#activeAt = this.#now();
    if (lastCommitted !== undefined) this.#lastCommitted = lastCommitted;
    this.#mode = "working";
  }

  /** The source's head as last polled; only a higher one counts as the head advancing. */
  sourceHead(ledger: number): void {
    if (this.#head === undefined || ledger > this.#head) {
      this.#head = ledger;
      this.#headAdvancedAt = this.#now();
    }
  }

  /** Caught up: the copier polls a source whose head is `head`. */
  waiting(head: number): void {
    this.sourceHead(head);
    this.#activeAt = this.#now();
    this.#mode = "waiting";
  }

  /** A burst of retries in `area` began (true) or ended (false). */
  retrying(area: string, active: boolean): void {
    if (active) this.#retrying.add(area);
    else this.#retrying.delete(area);
  }

  /** Unhealthy with this reason until the next progress() or waiting(). */
  failing(reason: string): void {
    this.#failure = reason.trim().replace(/\s*[\r\n]+\s*/g, " ") || "failing";
    this.#mode = "failing";
  }

  check(): HealthStatus {
    const now = this.#now();
    if (this.#mode === "failing") return { ok: false, message: this.#failure };
    if (this.#mode === "waiting") {
      const still = now - this.#headAdvancedAt;
      if (still > this.#headStallAfterMs) {
        return {
          ok: false,
          message: `source head ${this.#head} has not advanced for ${_since(still)}`,
        };
      }
    } else {
      const idle = now - this.#activeAt;
      if (idle > this.#stallAfterMs) {
        return { ok: false, message: `no progress for ${_since(idle)}; ${this.#committed()}` };
      }
    }
    const head = this.#head === undefined ? "head unknown" : `head ${this.#head}`;
    if (this.#retrying.size) {
      return {
        ok: true,
        message: `degraded: retrying ${
          [...this.#retrying].join(", ")
        }; ${this.#committed()}, ${head}`,
      };
    }
    return { ok: true, message: `ok: ${this.#committed()}, ${head}` };
  }

  #committed(): string {
    return this.#lastCommitted === undefined
      ? "no ledger committed yet"
      : `last committed ledger ${this.#lastCommitted}`;
  }
}

function _since(ms: number): string {
  return formatDuration(ms / 1000);
}
